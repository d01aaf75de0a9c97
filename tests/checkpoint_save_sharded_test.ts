// saveCheckpoint with { dtype, maxShardBytes }: BF16/F16 and sharded folders as transformers
// writes them (names, index, torch_dtype), read back by the existing loader, and folders rewritten
// one way then the other never left holding weights that the loader would pair with the wrong
// config.
import assert from "node:assert/strict";
import {
  bf16BitsToF32,
  CheckpointError,
  decodeSafetensorsHeader,
  f16BitsToF32,
  f32ArrayTo16Bits,
  type HostTensor,
  loadCheckpoint,
  makeQwenConfig,
  parseQwenConfig,
  planShards,
  type QwenConfig,
  qwenConfigToJson,
  qwenTensorSpecs,
  saveCheckpoint,
  shardFileName,
  storedByteLength,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from "../src/nn/checkpoint/mod.ts";
import { Rng } from "../src/util/rng.ts";

const CONFIG = makeQwenConfig({
  vocab_size: 61,
  hidden_size: 16,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  tie_word_embeddings: false,
});

function weights(config: QwenConfig, seed: number): Map<string, HostTensor> {
  const rng = new Rng(seed, 1);
  const out = new Map<string, HostTensor>();
  for (const { name, shape } of qwenTensorSpecs(config)) {
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    data.forEach((_, i) => data[i] = rng.normal() * 2 ** (rng.int(30) - 15));
    out.set(name, { shape, data });
  }
  return out;
}

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "jackpot-save-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/** What the loader must give back for `t` stored as `dtype`. */
function stored(t: HostTensor, dtype: "F32" | "BF16" | "F16"): Float32Array {
  const f = t.data as Float32Array;
  if (dtype === "F32") return f;
  const from = dtype === "BF16" ? bf16BitsToF32 : f16BitsToF32;
  return Float32Array.from(f32ArrayTo16Bits(f, dtype), from);
}

const TORCH = { F32: "float32", BF16: "bfloat16", F16: "float16" } as const;

Deno.test("save: F32, BF16 and F16, in one file or in shards, load back as the stored values", async () => {
  const tensors = weights(CONFIG, 1);
  const total = [...tensors.values()].reduce((s, t) => s + storedByteLength(t, "BF16"), 0);
  for (const dtype of ["F32", "BF16", "F16"] as const) {
    for (const maxShardBytes of [undefined, Math.floor(total / 4)]) {
      await withTempDir(async (dir) => {
        await saveCheckpoint(dir, { config: CONFIG, tensors }, { dtype, maxShardBytes });
        const sharded = maxShardBytes !== undefined;
        const names = await files(dir);
        assert.equal(names.includes(WEIGHTS_FILE), !sharded, names.join(" "));
        assert.equal(names.includes(WEIGHTS_INDEX_FILE), sharded, names.join(" "));
        const back = await loadCheckpoint(dir);
        assert.deepEqual([...back.tensors.keys()].sort(), [...tensors.keys()].sort());
        for (const [name, t] of tensors) {
          const got = back.tensors.get(name)!;
          assert.equal(got.dtype, dtype, name);
          assert.deepEqual(got.shape, t.shape, name);
          assert.deepEqual(got.data, stored(t, dtype), `${dtype} ${name}`);
        }
        assert.equal(back.metadata.format, "pt");
        const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
        assert.equal(json.torch_dtype, TORCH[dtype]);
        assert.equal(back.config.extra.torch_dtype, TORCH[dtype]);
      });
    }
  }
});

Deno.test("save: shards fill in checkpoint order up to the limit; a tensor over it is alone", () => {
  const tensors = weights(CONFIG, 2);
  const order = [...tensors.keys()];
  const sizes = new Map(order.map((n) => [n, storedByteLength(tensors.get(n)!, "BF16")]));
  const biggest = Math.max(...sizes.values());
  const limits = [1, 2, 31, 32, 33, 100, 1000, biggest - 1, biggest, biggest + 1, 3 * biggest];
  for (const limit of limits) {
    const plan = planShards(tensors, "BF16", limit);
    assert.deepEqual(plan.flatMap((s) => s.names), order, `limit ${limit}: order kept`);
    if (plan.length === 1) {
      assert.equal(plan[0].file, WEIGHTS_FILE);
      continue;
    }
    plan.forEach((s, i) => {
      assert.equal(s.file, shardFileName(i, plan.length));
      const bytes = s.names.reduce((sum, n) => sum + sizes.get(n)!, 0);
      assert.equal(s.bytes, bytes);
      if (bytes > limit) assert.equal(s.names.length, 1, `limit ${limit}: only one over the limit`);
      // greedy: the next shard's first tensor did not fit here (or one of the two is oversized)
      const next = plan[i + 1];
      if (next && bytes <= limit && sizes.get(next.names[0])! <= limit) {
        assert.ok(
          bytes + sizes.get(next.names[0])! > limit,
          `limit ${limit}: shard ${i} closed early`,
        );
      }
    });
  }
  assert.equal(shardFileName(0, 3), "model-00001-of-00003.safetensors");
  assert.equal(shardFileName(11, 12), "model-00012-of-00012.safetensors");
  // everything fits: one file, as transformers writes it
  assert.equal(planShards(tensors, "F32", 10 ** 9).length, 1);
  assert.equal(planShards(tensors, "F32").length, 1);
  // F32 sizes are twice BF16's: more shards at the same limit
  assert.ok(planShards(tensors, "F32", 4096).length > planShards(tensors, "BF16", 4096).length);
});

Deno.test("save: the index is transformers' (sorted weight_map, total_size) and matches the shard files", async () => {
  const tensors = weights(CONFIG, 3);
  await withTempDir(async (dir) => {
    await saveCheckpoint(dir, { config: CONFIG, tensors, metadata: { run: "x" } }, {
      dtype: "BF16",
      maxShardBytes: 3000,
    });
    const text = await Deno.readTextFile(`${dir}/${WEIGHTS_INDEX_FILE}`);
    const index = JSON.parse(text);
    assert.deepEqual(Object.keys(index), ["metadata", "weight_map"]);
    assert.deepEqual(Object.keys(index.metadata), ["total_size"]);
    const keys = Object.keys(index.weight_map);
    assert.deepEqual(keys, [...keys].sort(), "weight_map keys sorted");
    assert.deepEqual(keys.sort(), [...tensors.keys()].sort());
    assert.ok(text.endsWith("}\n") && text.includes('\n  "metadata": {\n    "total_size"'));
    const shardFiles = [...new Set(Object.values(index.weight_map) as string[])].sort();
    assert.ok(shardFiles.length >= 3, `${shardFiles.length} shards`);
    assert.deepEqual(await files(dir), [...shardFiles, "config.json", WEIGHTS_INDEX_FILE].sort());
    let dataBytes = 0;
    for (const f of shardFiles) {
      const bytes = await Deno.readFile(`${dir}/${f}`);
      const h = decodeSafetensorsHeader(bytes, f);
      dataBytes += bytes.length - h.dataStart;
      assert.deepEqual(h.metadata, { format: "pt", run: "x" });
      for (const [name, e] of h.entries) {
        assert.equal(index.weight_map[name], f, name);
        assert.equal(e.dtype, "BF16");
      }
      if (h.entries.size > 1) assert.ok(bytes.length - h.dataStart <= 3000, f);
    }
    assert.equal(index.metadata.total_size, dataBytes);
  });
});

Deno.test("save: shards over an old model.safetensors, and one file over old shards, leave no stale weights", async () => {
  const a = weights(CONFIG, 4), b = weights(CONFIG, 5), c = weights(CONFIG, 6);
  await withTempDir(async (dir) => {
    // one F32 file, then BF16 in 4+ shards: the single file (which the loader prefers) is gone
    await saveCheckpoint(dir, { config: CONFIG, tensors: a });
    await saveCheckpoint(dir, { config: CONFIG, tensors: b }, {
      dtype: "BF16",
      maxShardBytes: 2500,
    });
    let names = await files(dir);
    assert.ok(!names.includes(WEIGHTS_FILE), names.join(" "));
    const many = names.filter((n) => n.startsWith("model-")).length;
    assert.ok(many >= 4, names.join(" "));
    let back = await loadCheckpoint(dir);
    for (const [n, t] of b) assert.deepEqual(back.tensors.get(n)!.data, stored(t, "BF16"), n);
    // fewer, larger shards: the old ones the new index does not list are removed
    await saveCheckpoint(dir, { config: CONFIG, tensors: c }, {
      dtype: "F16",
      maxShardBytes: 6000,
    });
    names = await files(dir);
    const index = JSON.parse(await Deno.readTextFile(`${dir}/${WEIGHTS_INDEX_FILE}`));
    const listed = new Set(Object.values(index.weight_map) as string[]);
    assert.ok(listed.size < many);
    assert.deepEqual(names, [...listed, "config.json", WEIGHTS_INDEX_FILE].sort());
    back = await loadCheckpoint(dir);
    for (const [n, t] of c) assert.deepEqual(back.tensors.get(n)!.data, stored(t, "F16"), n);
    // and back to one F32 file: the index and every shard it listed are removed
    await saveCheckpoint(dir, { config: CONFIG, tensors: a });
    assert.deepEqual(await files(dir), ["config.json", WEIGHTS_FILE]);
    back = await loadCheckpoint(dir);
    for (const [n, t] of a) assert.deepEqual(back.tensors.get(n)!.data, t.data, n);
  });
});

Deno.test("save: a sharded save that fails midway leaves a folder the loader refuses, not the old weights", async () => {
  const big = makeQwenConfig({ ...CONFIG, hidden_size: 32, tie_word_embeddings: false });
  await withTempDir(async (dir) => {
    await saveCheckpoint(dir, { config: CONFIG, tensors: weights(CONFIG, 7) });
    const oldConfig = await Deno.readTextFile(`${dir}/config.json`);
    // a non-empty folder where the last shard goes: its rename fails, as a crash would stop there
    const plan = planShards(weights(big, 8), "BF16", 4000);
    const last = plan[plan.length - 1].file;
    await Deno.mkdir(`${dir}/${last}/blocker`, { recursive: true });
    await assert.rejects(
      () =>
        saveCheckpoint(dir, { config: big, tensors: weights(big, 8) }, {
          dtype: "BF16",
          maxShardBytes: 4000,
        }),
      CheckpointError,
    );
    const names = await files(dir);
    assert.ok(!names.includes(WEIGHTS_FILE), "the old single file went first");
    assert.ok(!names.includes(WEIGHTS_INDEX_FILE), "no index: nothing claims to be complete");
    assert.equal(await Deno.readTextFile(`${dir}/config.json`), oldConfig, "config untouched");
    await assert.rejects(
      () => loadCheckpoint(dir),
      (e: Error) =>
        e instanceof CheckpointError &&
        /neither this file nor model\.safetensors\.index\.json/.test(e.message) &&
        /shard files? such as 'model-00001-of-\d{5}\.safetensors' without an index/.test(e.message),
    );
  });
});

Deno.test("save: only .safetensors files an old index lists are removed", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/notes.txt`, "keep me");
    await Deno.writeTextFile(`${dir}/model-00001-of-00002.safetensors`, "old shard");
    await Deno.writeTextFile(
      `${dir}/${WEIGHTS_INDEX_FILE}`,
      JSON.stringify({
        metadata: {},
        weight_map: { a: "notes.txt", b: "model-00001-of-00002.safetensors" },
      }),
    );
    await saveCheckpoint(dir, { config: CONFIG, tensors: weights(CONFIG, 9) });
    assert.deepEqual(await files(dir), ["config.json", WEIGHTS_FILE, "notes.txt"]);
    // a corrupt old index is replaced without removing anything else
    await Deno.writeTextFile(`${dir}/${WEIGHTS_INDEX_FILE}`, "{not json");
    await saveCheckpoint(dir, { config: CONFIG, tensors: weights(CONFIG, 9) });
    assert.deepEqual(await files(dir), ["config.json", WEIGHTS_FILE, "notes.txt"]);
  });
});

Deno.test("save: torch_dtype (and transformers 5's dtype) follow the stored type; configs without it still load", async () => {
  const withBoth = parseQwenConfig({
    ...qwenConfigToJson(CONFIG),
    torch_dtype: "bfloat16",
    dtype: "bfloat16",
  });
  assert.equal(withBoth.extra.torch_dtype, "bfloat16");
  await withTempDir(async (dir) => {
    await saveCheckpoint(dir, { config: withBoth, tensors: weights(CONFIG, 10) }, { dtype: "F32" });
    const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.equal(json.torch_dtype, "float32");
    assert.equal(json.dtype, "float32");
    // a config.json without torch_dtype (written by hand, or an old jackpot) loads
    delete json.torch_dtype;
    delete json.dtype;
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(json));
    const back = await loadCheckpoint(dir);
    assert.equal(back.config.extra.torch_dtype, undefined);
  });
});

Deno.test("save: bad options are refused before anything is written, naming the option", async () => {
  await withTempDir(async (root) => {
    const dir = `${root}/never`;
    const ck = { config: CONFIG, tensors: weights(CONFIG, 11) };
    for (const dtype of ["bf16", "F64", "I32", 2]) {
      await assert.rejects(
        () => saveCheckpoint(dir, ck, { dtype: dtype as "F32" }),
        (e: Error) =>
          e instanceof RangeError && /option dtype must be "F32", "BF16", "F16"/.test(e.message),
      );
    }
    for (const max of [0, -1, 1.5, NaN, Infinity, "1GB"]) {
      await assert.rejects(
        () => saveCheckpoint(dir, ck, { maxShardBytes: max as number }),
        (e: Error) =>
          e instanceof RangeError &&
          /option maxShardBytes must be a positive integer/.test(e.message),
      );
    }
    // a tensor whose data does not match its shape: refused before any file is touched
    const bad = new Map(ck.tensors);
    bad.set("model.norm.weight", { shape: [16], data: new Float32Array(3) });
    await assert.rejects(
      () => saveCheckpoint(dir, { ...ck, tensors: bad }, { validate: false, maxShardBytes: 100 }),
      /model\.norm\.weight/,
    );
    await assert.rejects(() => Deno.stat(dir), Deno.errors.NotFound);
  });
});
