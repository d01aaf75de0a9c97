// Sharded checkpoints (model.safetensors.index.json + shards, transformers' layout for large
// models): they load as the single file does, and every way an index and its shards can disagree
// is one CheckpointError naming the file.
import assert from "node:assert/strict";
import {
  CheckpointError,
  encodeSafetensors,
  type HostTensor,
  loadCheckpoint,
  makeQwenConfig,
  parseShardIndex,
  qwenConfigToJson,
  qwenTensorSpecs,
  WEIGHTS_INDEX_FILE,
} from "../src/nn/checkpoint/mod.ts";
import { Rng } from "../src/util/rng.ts";

const CONFIG = makeQwenConfig({
  vocab_size: 29,
  hidden_size: 8,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  tie_word_embeddings: false,
});

function weights(seed: number): Map<string, HostTensor> {
  const rng = new Rng(seed, 1);
  const out = new Map<string, HostTensor>();
  for (const { name, shape } of qwenTensorSpecs(CONFIG)) {
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    data.forEach((_, i) => data[i] = rng.normal());
    out.set(name, { shape, data });
  }
  return out;
}

/** Writes config.json, the shards (tensor i goes to shard `shardOf(i)`) and the index. */
async function writeSharded(
  dir: string,
  tensors: Map<string, HostTensor>,
  shards: number,
  edit: (map: Record<string, string>) => void = () => {},
): Promise<string[]> {
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(qwenConfigToJson(CONFIG)));
  const names = [...tensors.keys()];
  const files = Array.from(
    { length: shards },
    (_, s) =>
      `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`,
  );
  const map: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const part = new Map(names.filter((_, i) => i % shards === s).map((n) => [n, tensors.get(n)!]));
    for (const n of part.keys()) map[n] = files[s];
    await Deno.writeFile(`${dir}/${files[s]}`, encodeSafetensors(part, { format: "pt" }));
  }
  edit(map);
  await Deno.writeTextFile(
    `${dir}/${WEIGHTS_INDEX_FILE}`,
    JSON.stringify({ metadata: { total_size: 0 }, weight_map: map }),
  );
  return files;
}

async function inTempDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "jackpot-shards-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsWith(dir: string, file: RegExp, problem: RegExp): Promise<void> {
  await assert.rejects(() => loadCheckpoint(dir), (e: Error) => {
    assert.ok(e instanceof CheckpointError, `${e.name}: ${e.message}`);
    assert.match(e.file, file);
    assert.match(e.problem, problem);
    return true;
  });
}

Deno.test("shards: a checkpoint in 1, 2 or 3 shards loads bitwise as the tensors written", async () => {
  const tensors = weights(1);
  for (const shards of [1, 2, 3]) {
    await inTempDir(async (dir) => {
      await writeSharded(dir, tensors, shards);
      const loaded = await loadCheckpoint(dir);
      assert.deepEqual([...loaded.tensors.keys()].sort(), [...tensors.keys()].sort());
      for (const [name, t] of tensors) {
        assert.deepEqual(loaded.tensors.get(name)!.shape, t.shape, name);
        assert.deepEqual(loaded.tensors.get(name)!.data, t.data, name);
      }
      assert.equal(loaded.metadata.format, "pt");
    });
  }
});

Deno.test("shards: a missing shard, a tensor in the wrong shard, in no shard or in two are named", async () => {
  const tensors = weights(2);
  const embed = "model.embed_tokens.weight";
  await inTempDir(async (dir) => {
    const files = await writeSharded(dir, tensors, 2);
    await Deno.remove(`${dir}/${files[1]}`);
    await rejectsWith(
      dir,
      /index\.json$/,
      new RegExp(`lists shard '${files[1]}', which does not exist`),
    );
  });
  await inTempDir(async (dir) => {
    // The index puts the embedding in the other shard.
    const files = await writeSharded(dir, tensors, 2, (m) => {
      m[embed] = m[embed] === "model-00001-of-00002.safetensors"
        ? "model-00002-of-00002.safetensors"
        : "model-00001-of-00002.safetensors";
    });
    assert.equal(files.length, 2);
    await rejectsWith(
      dir,
      /\.safetensors$/,
      new RegExp(`'${embed}' is here, but .* says it is in`),
    );
  });
  await inTempDir(async (dir) => {
    await writeSharded(dir, tensors, 2, (m) => delete m[embed]);
    await rejectsWith(dir, /\.safetensors$/, new RegExp(`'${embed}' is not in .*weight_map`));
  });
  await inTempDir(async (dir) => {
    await writeSharded(dir, tensors, 2, (m) => m["model.extra.weight"] = m[embed]);
    await rejectsWith(
      dir,
      /index\.json$/,
      /lists tensor 'model\.extra\.weight' in .* which does not hold it/,
    );
  });
  await inTempDir(async (dir) => {
    // The same tensor written into both shards.
    const files = await writeSharded(dir, tensors, 2);
    const both = new Map(tensors);
    await Deno.writeFile(`${dir}/${files[1]}`, encodeSafetensors(both, { format: "pt" }));
    await rejectsWith(dir, /\.safetensors$/, /is also in|says it is in/);
  });
  await inTempDir(async (dir) => {
    // Neither the single file nor an index: one error, marked "not found" for the CLI's exit 2.
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(qwenConfigToJson(CONFIG)));
    await assert.rejects(() => loadCheckpoint(dir), (e: Error) => {
      assert.ok(e instanceof CheckpointError && e.notFound);
      assert.match(
        e.message,
        /model\.safetensors: neither this file nor model\.safetensors\.index\.json/,
      );
      return true;
    });
  });
});

Deno.test("shards: a bad index is refused with the key and value named", () => {
  const file = "ckpt/model.safetensors.index.json";
  assert.throws(() => parseShardIndex("{", file), /index\.json: not JSON/);
  assert.throws(() => parseShardIndex("{}", file), /has no 'weight_map' object/);
  assert.throws(() => parseShardIndex('{"weight_map": []}', file), /has no 'weight_map' object/);
  assert.throws(() => parseShardIndex('{"weight_map": {}}', file), /weight_map is empty/);
  for (const bad of ['"../x.safetensors"', '"/etc/passwd"', '".."', "3", '"a\\\\b"']) {
    assert.throws(
      () => parseShardIndex(`{"weight_map": {"w": ${bad}}}`, file),
      /weight_map\['w'\] is .*, not a file name in this folder/,
      bad,
    );
  }
  assert.deepEqual(
    parseShardIndex('{"weight_map": {"w": "model-00001-of-00002.safetensors"}}', file),
    new Map([["w", "model-00001-of-00002.safetensors"]]),
  );
});
