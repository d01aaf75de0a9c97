/**
 * The streamed loader (src/nn/load.ts) and the range reader under it: a folder loads into the
 * same parameters, bit for bit, as the whole-file path, in any chunking, dtype and sharding; bad
 * folders are refused before any weight is read; a read that fails midway frees the model.
 */
import assert from "node:assert/strict";
import { initTensors, readAll, runtime } from "../src/tensor/mod.ts";
import {
  CheckpointError,
  CheckpointReader,
  encodeSafetensors,
  type HostTensor,
  loadCheckpoint,
  readCheckpointWeights,
  saveCheckpoint,
} from "../src/nn/checkpoint/mod.ts";
import { type ModelConfig, validateModelConfig } from "../src/nn/config.ts";
import { loadTransformer, ModelCheckpoint } from "../src/nn/load.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";

const BASE = {
  vocabSize: 19,
  hidden: 16,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 4,
  intermediate: 24,
  maxSeqLen: 32,
  ropeTheta: 10000,
  normEps: 1e-6,
};

// A model with random values everywhere (norms and biases too: init's 1s and 0s would hide a
// swapped or dropped tensor), saved to `dir` with `options`.
async function savedModel(
  dir: string,
  cfg: ModelConfig,
  seed: number,
  options: Parameters<typeof saveCheckpoint>[2] = {},
): Promise<void> {
  const rng = new Rng(seed, 1);
  const fresh = Transformer.init(cfg, { seed, std: 0.4 });
  const ck = await fresh.toCheckpoint({ task: "arithmetic", step: 1 });
  fresh.dispose();
  for (const [name, t] of ck.tensors) {
    if (name.endsWith("norm.weight") || (name.endsWith(".bias") && cfg.attentionBias)) {
      (t.data as Float32Array).forEach((_, i, a) => a[i] = 0.5 + rng.normal());
    }
  }
  await saveCheckpoint(dir, ck, options);
}

// Every parameter of `model` by HF name, read back.
async function parameterValues(model: Transformer): Promise<Map<string, Float32Array>> {
  const named = [...model.namedParameters()];
  const values = await readAll(named.map(([, t]) => t));
  return new Map(named.map(([name], i) => [name, values[i] as Float32Array]));
}

Deno.test("load: streamed folders give bitwise the parameters of the whole-file load (dtypes, shards, chunking, biases, tied heads)", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir({ prefix: "jackpot-load-" });
  try {
    const cases = [
      { tiedEmbeddings: true, qkNorm: true, attentionBias: false, save: {}, chunk: 64 },
      {
        tiedEmbeddings: false,
        qkNorm: true,
        attentionBias: false,
        save: { dtype: "BF16" as const, maxShardBytes: 3000 },
        chunk: 100, // less than one row: one row per piece
      },
      {
        tiedEmbeddings: true,
        qkNorm: false,
        attentionBias: true, // qwen2 with nonzero biases
        save: { dtype: "F16" as const, maxShardBytes: 5000 },
        chunk: 1000,
      },
      { tiedEmbeddings: false, qkNorm: false, attentionBias: false, save: {}, chunk: 1 << 20 }, // qwen2, zero biases
    ];
    for (const [i, c] of cases.entries()) {
      const { tiedEmbeddings, qkNorm, attentionBias } = c;
      const cfg = validateModelConfig({ ...BASE, tiedEmbeddings, qkNorm, attentionBias });
      const path = `${dir}/case${i}`;
      await savedModel(path, cfg, 10 + i, c.save);
      const whole = await loadCheckpoint(path);
      const expected = Transformer.fromTensors(whole.config, whole.tensors);
      const want = await parameterValues(expected);
      expected.dispose();
      const reports: number[] = [];
      const ckpt = await ModelCheckpoint.open(path);
      assert.deepEqual(ckpt.config, cfg, `case ${i}: config`);
      const model = await ckpt.load({
        chunkBytes: c.chunk,
        settleBytes: 4096,
        onProgress: (done, total) => {
          assert.equal(total, ckpt.bytesToLoad);
          reports.push(done);
        },
      });
      ckpt.close();
      const got = await parameterValues(model);
      model.dispose();
      assert.deepEqual([...got.keys()], [...want.keys()], `case ${i}: names`);
      for (const [name, w] of want) {
        assert.deepEqual(got.get(name), w, `case ${i}: ${name} differs`);
      }
      // Progress rises to the total; chunks smaller than a tensor give several reports per tensor.
      assert.ok(reports.every((d, j) => j === 0 || d > reports[j - 1]), `case ${i}: progress`);
      assert.equal(reports.at(-1), ckpt.bytesToLoad);
      assert.ok(reports.length >= got.size, `case ${i}: ${reports.length} reports`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load: the range reader reads any block of rows as the whole-file decoder does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jackpot-load-rows-" });
  try {
    const rng = new Rng(5, 2);
    const tensors = new Map<string, HostTensor>([
      ["a", { shape: [7, 3], data: Float32Array.from({ length: 21 }, () => rng.normal()) }],
      ["b", { shape: [5], data: Float32Array.from({ length: 5 }, () => rng.normal()) }],
      ["c", { shape: [0, 4], data: new Float32Array(0) }],
      ["s", { shape: [], data: new Float32Array([rng.normal()]) }],
    ]);
    for (const floatDType of ["F32", "BF16", "F16"] as const) {
      await Deno.writeFile(
        `${dir}/model.safetensors`,
        encodeSafetensors(tensors, {}, { floatDType }),
      );
      const whole = await readCheckpointWeights(dir);
      const reader = await CheckpointReader.open(dir);
      try {
        assert.deepEqual([...reader.entries.keys()], [...whole.tensors.keys()]);
        for (const [name, t] of whole.tensors) {
          const rows = t.shape.length === 0 ? 1 : t.shape[0];
          const inner = rows === 0 ? 0 : t.data.length / rows;
          for (let r0 = 0; r0 <= rows; r0++) {
            for (let r1 = r0; r1 <= rows; r1++) {
              const part = await reader.read(name, r0, r1);
              assert.deepEqual(part, (t.data as Float32Array).slice(r0 * inner, r1 * inner));
            }
          }
        }
        // Reads issued together (one file position underneath) each get their own bytes.
        const names = [...whole.tensors.keys()];
        const together = await Promise.all(
          names.flatMap((n) => [
            reader.read(n),
            reader.read(n, 0, Math.min(1, reader.entries.get(n)!.shape[0] ?? 1)),
          ]),
        );
        names.forEach((n, i) => {
          const t = whole.tensors.get(n)!;
          const rows = t.shape.length === 0 ? 1 : t.shape[0];
          assert.deepEqual(together[2 * i], t.data, `${n} read together`);
          assert.deepEqual(
            together[2 * i + 1],
            (t.data as Float32Array).slice(0, rows === 0 ? 0 : t.data.length / rows),
          );
        });
        await assert.rejects(
          () => reader.read("a", 3, 8),
          /rows \[3, 8\) are not within the 7 rows of 'a'/,
        );
        await assert.rejects(() => reader.read("a", 2, 1), RangeError);
        await assert.rejects(() => reader.read("zz"), /no tensor 'zz'/);
      } finally {
        reader.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load: bad folders are refused at open, naming the file; a file cut short while loading frees the model", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir({ prefix: "jackpot-load-bad-" });
  try {
    const cfg = validateModelConfig({
      ...BASE,
      tiedEmbeddings: true,
      qkNorm: true,
      attentionBias: false,
    });
    const path = `${dir}/m`;
    await savedModel(path, cfg, 3, { maxShardBytes: 4000 });
    const shards = [...Deno.readDirSync(path)].map((e) => e.name).filter((n) =>
      n.startsWith("model-")
    ).sort();
    assert.ok(shards.length >= 3, `${shards.length} shards`);
    const victim = `${path}/${shards[1]}`;
    const bytes = await Deno.readFile(victim);

    // Truncated: the header's offsets run past the end, found before any weight is read.
    await Deno.writeFile(victim, bytes.subarray(0, bytes.length - 10));
    await assert.rejects(
      () => ModelCheckpoint.open(path),
      (e: unknown) =>
        e instanceof CheckpointError && e.message.includes(shards[1]) &&
        /truncated/.test(e.message),
    );
    // Missing folder: CheckpointError with notFound, which the CLI turns into a usage error.
    await assert.rejects(
      () => ModelCheckpoint.open(`${dir}/nothing`),
      (e: unknown) => e instanceof CheckpointError && e.notFound,
    );

    // Cut short after open: the load fails with the file named, and the model's buffers go back.
    await Deno.writeFile(victim, bytes);
    const ckpt = await ModelCheckpoint.open(path);
    const live = runtime().pool.stats().liveBytes;
    await Deno.writeFile(victim, bytes.subarray(0, bytes.length - 10));
    await assert.rejects(
      () => ckpt.load({ chunkBytes: 64 }),
      (e: unknown) =>
        e instanceof CheckpointError && e.message.includes(shards[1]) &&
        /truncated while reading/.test(e.message),
    );
    ckpt.close();
    assert.equal(runtime().pool.stats().liveBytes, live, "the partly loaded model was not freed");

    // Integer weights are refused by name.
    await Deno.writeFile(victim, bytes);
    const whole = await loadCheckpoint(path);
    const tensors = new Map<string, HostTensor>(whole.tensors);
    const norm = "model.norm.weight";
    tensors.set(norm, { shape: [BASE.hidden], data: new Int32Array(BASE.hidden) });
    const single = `${dir}/int`;
    await saveCheckpoint(single, { config: whole.config, tensors });
    await assert.rejects(
      () => loadTransformer(single),
      (e: unknown) => e instanceof CheckpointError && e.message.includes(`'${norm}' is I32`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
