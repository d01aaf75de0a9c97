import assert from "node:assert/strict";
import {
  CheckpointError,
  decodeSafetensors,
  encodeSafetensors,
  type HostTensor,
  loadCheckpoint,
  makeQwenConfig,
  parseQwenConfig,
  type QwenConfig,
  qwenConfigToJson,
  qwenLayerNames,
  qwenParameterCount,
  qwenTensorSpecs,
  REQUIRED_CONFIG_KEYS,
  saveCheckpoint,
  validateQwenTensors,
} from "../src/nn/checkpoint/mod.ts";
import { Rng } from "../src/util/rng.ts";

const SMALL = {
  vocab_size: 37,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 24,
};

function randomWeights(config: QwenConfig, rng: Rng): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const { name, shape } of qwenTensorSpecs(config)) {
    const n = shape.reduce((p, d) => p * d, 1);
    out.set(name, { shape, data: Float32Array.from({ length: n }, () => rng.normal()) });
  }
  return out;
}

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "jackpot-ckpt-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("names: the Qwen tensor set and shapes follow the Hugging Face layout", () => {
  for (const model_type of ["qwen3", "qwen2"] as const) {
    for (const tie_word_embeddings of [true, false]) {
      const c = makeQwenConfig({ ...SMALL, model_type, tie_word_embeddings });
      const H = 16, I = 24, D = 4, V = 37;
      const want = new Map<string, number[]>([["model.embed_tokens.weight", [V, H]], [
        "model.norm.weight",
        [H],
      ]]);
      if (!tie_word_embeddings) want.set("lm_head.weight", [V, H]);
      for (let i = 0; i < 2; i++) {
        const p = `model.layers.${i}.`;
        want.set(p + "input_layernorm.weight", [H]);
        want.set(p + "post_attention_layernorm.weight", [H]);
        want.set(p + "self_attn.q_proj.weight", [4 * D, H]);
        want.set(p + "self_attn.k_proj.weight", [2 * D, H]);
        want.set(p + "self_attn.v_proj.weight", [2 * D, H]);
        want.set(p + "self_attn.o_proj.weight", [H, 4 * D]);
        want.set(p + "mlp.gate_proj.weight", [I, H]);
        want.set(p + "mlp.up_proj.weight", [I, H]);
        want.set(p + "mlp.down_proj.weight", [H, I]);
        if (model_type === "qwen3") {
          want.set(p + "self_attn.q_norm.weight", [D]);
          want.set(p + "self_attn.k_norm.weight", [D]);
        } else {
          want.set(p + "self_attn.q_proj.bias", [4 * D]);
          want.set(p + "self_attn.k_proj.bias", [2 * D]);
          want.set(p + "self_attn.v_proj.bias", [2 * D]);
        }
      }
      const specs = qwenTensorSpecs(c);
      assert.deepEqual(new Map(specs.map((s) => [s.name, s.shape])), want);
      assert.equal(specs.length, want.size, "no duplicates");
      const count = [...want.values()].reduce((s, sh) => s + sh.reduce((p, d) => p * d, 1), 0);
      assert.equal(qwenParameterCount(c), count);
      const layer = qwenLayerNames(c, 1);
      assert.equal(layer.qProj, "model.layers.1.self_attn.q_proj.weight");
      assert.equal(layer.qNorm !== undefined, model_type === "qwen3");
      assert.equal(layer.qBias !== undefined, model_type === "qwen2");
      assert.throws(() => qwenLayerNames(c, 2), /layer 2 is outside \[0, 2\)/);
    }
  }
});

Deno.test("checkpoint folder: save→load round-trips weights bitwise and the config exactly", async () => {
  await withTempDir(async (dir) => {
    const config: QwenConfig = {
      ...makeQwenConfig({ ...SMALL, tie_word_embeddings: false }),
      jackpot: { task: "wordsort:maxItems=6", step: 1200, role: "policy", seed: 7 },
    };
    config.extra.torch_dtype = "float32";
    config.extra.rope_scaling = null;
    const tensors = randomWeights(config, new Rng(1));
    const first = tensors.get("model.embed_tokens.weight")!.data as Float32Array;
    first.set([0, -0, 2 ** -149, -(2 ** -140), Infinity, -Infinity, 3.4028234663852886e38]);
    const path = `${dir}/step-1200`;
    await saveCheckpoint(path, { config, tensors, metadata: { run: "test" } });
    const loaded = await loadCheckpoint(path);
    assert.deepEqual(loaded.config, config);
    assert.deepEqual(loaded.metadata, { format: "pt", run: "test" });
    assert.equal(loaded.tensors.size, tensors.size);
    for (const [name, t] of tensors) {
      const b = loaded.tensors.get(name)!;
      assert.equal(b.dtype, "F32");
      assert.deepEqual(b.shape, [...t.shape]);
      assert.deepEqual(new Uint32Array(b.data.buffer), new Uint32Array(t.data.buffer), name);
    }
    // The config file is plain Hugging Face JSON.
    const json = JSON.parse(await Deno.readTextFile(`${path}/config.json`));
    assert.deepEqual(json.architectures, ["Qwen3ForCausalLM"]);
    for (const k of REQUIRED_CONFIG_KEYS) assert.equal(json[k], config[k], k);
    assert.equal(json.jackpot.step, 1200);
    assert.equal(json.torch_dtype, "float32");
    // Nothing else is left in the folder (no temporary files).
    const files = [];
    for await (const e of Deno.readDir(path)) files.push(e.name);
    assert.deepEqual(files.sort(), ["config.json", "model.safetensors"]);
  });
});

Deno.test("checkpoint folder: overwrites atomically and leaves the old files when a save fails", async () => {
  await withTempDir(async (dir) => {
    const config = makeQwenConfig(SMALL);
    await saveCheckpoint(dir, { config, tensors: randomWeights(config, new Rng(1)) });
    const before = await Deno.readFile(`${dir}/model.safetensors`);
    const second = randomWeights(config, new Rng(2));
    await saveCheckpoint(dir, { config, tensors: second });
    const after = decodeSafetensors(await Deno.readFile(`${dir}/model.safetensors`));
    assert.deepEqual(
      after.tensors.get("model.norm.weight")!.data,
      second.get("model.norm.weight")!.data,
    );
    assert.notDeepEqual(await Deno.readFile(`${dir}/model.safetensors`), before);
    // A save refused by validation writes nothing.
    const current = await Deno.readFile(`${dir}/model.safetensors`);
    const bad = new Map(second);
    bad.delete("model.norm.weight");
    await assert.rejects(
      () => saveCheckpoint(dir, { config, tensors: bad }),
      /missing tensors 'model.norm.weight'/,
    );
    assert.deepEqual(await Deno.readFile(`${dir}/model.safetensors`), current);
    // A failing rename (the target is a directory) is a CheckpointError and leaves no temp file.
    const blocked = `${dir}/blocked`;
    await Deno.mkdir(`${blocked}/model.safetensors`, { recursive: true });
    await assert.rejects(
      () => saveCheckpoint(blocked, { config, tensors: second }),
      (e: unknown) =>
        e instanceof CheckpointError && /blocked\/model.safetensors: cannot write/.test(e.message),
    );
    const left = [];
    for await (const e of Deno.readDir(blocked)) left.push(e.name);
    assert.deepEqual(left, ["model.safetensors"]);
  });
});

Deno.test("config: each missing required key is named, with the file", () => {
  const json = qwenConfigToJson(makeQwenConfig(SMALL));
  for (const key of REQUIRED_CONFIG_KEYS) {
    const partial = { ...json };
    delete partial[key];
    assert.throws(
      () => parseQwenConfig(partial, "ckpt/config.json"),
      new RegExp(`^CheckpointError: ckpt/config.json: missing config key '${key}'$`),
    );
  }
  const two = { ...json };
  delete two.vocab_size;
  delete two.rope_theta;
  assert.throws(() => parseQwenConfig(two), /missing config keys 'vocab_size', 'rope_theta'/);
});

Deno.test("config: head_dim and tie_word_embeddings default as in transformers when absent", () => {
  // Many Qwen2 configs on the Hub have neither: transformers takes hidden_size //
  // num_attention_heads and the Qwen classes' untied default.
  const json = qwenConfigToJson(
    makeQwenConfig({ ...SMALL, hidden_size: 50, num_attention_heads: 4, head_dim: 7 }),
  );
  delete json.head_dim;
  delete json.tie_word_embeddings;
  const parsed = parseQwenConfig(json);
  assert.equal(parsed.head_dim, 12);
  assert.equal(parsed.tie_word_embeddings, false);
  assert.equal(parseQwenConfig({ ...json, head_dim: 7, tie_word_embeddings: true }).head_dim, 7);
  assert.throws(
    () => parseQwenConfig({ ...json, tie_word_embeddings: "yes" }),
    /'tie_word_embeddings' must be true or false/,
  );
  assert.throws(
    () => parseQwenConfig({ ...json, num_attention_heads: 64, num_key_value_heads: 64 }),
    /'head_dim' must be a positive integer, got 0/,
  );
});

Deno.test("config: bad values are named; unknown keys survive a round trip", () => {
  const json = qwenConfigToJson(makeQwenConfig(SMALL));
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ hidden_size: 0 }, /'hidden_size' must be a positive integer, got 0/],
    [{ vocab_size: 3.5 }, /'vocab_size' must be a positive integer/],
    [{ num_hidden_layers: "2" }, /'num_hidden_layers' must be a positive integer, got "2"/],
    [{ rms_norm_eps: 0 }, /'rms_norm_eps' must be a positive number/],
    [{ tie_word_embeddings: 1 }, /'tie_word_embeddings' must be true or false/],
    [
      { num_key_value_heads: 3 },
      /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/,
    ],
    [{ model_type: "llama" }, /'model_type' must be 'qwen3' or 'qwen2'/],
    [{ jackpot: { step: -1 } }, /jackpot.step must be an integer >= 0/],
    [{ jackpot: { task: 3 } }, /jackpot.task must be a task spec string/],
    [{ jackpot: [] }, /'jackpot' must be an object/],
  ];
  for (const [change, pattern] of bad) {
    assert.throws(() => parseQwenConfig({ ...json, ...change }, "c.json"), pattern);
  }
  assert.throws(() => parseQwenConfig([1]), /config is not a JSON object/);
  const hub = { ...json, sliding_window: null, use_cache: true, transformers_version: "4.51.0" };
  const parsed = parseQwenConfig(hub);
  assert.deepEqual(parsed.extra, {
    sliding_window: null,
    use_cache: true,
    transformers_version: "4.51.0",
  });
  assert.deepEqual(qwenConfigToJson(parsed), hub);
  // qwen2 defaults to attention bias, qwen3 to none, as in transformers.
  assert.equal(
    parseQwenConfig({ ...json, model_type: "qwen2", attention_bias: undefined }).attention_bias,
    true,
  );
  assert.equal(makeQwenConfig(SMALL).attention_bias, false);
});

Deno.test("checkpoint folder: bad folders give one error naming the file", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      () => loadCheckpoint(`${dir}/none`),
      /none\/config.json: cannot read the file \(NotFound/,
    );
    const config = makeQwenConfig(SMALL);
    const tensors = randomWeights(config, new Rng(3));
    await saveCheckpoint(dir, { config, tensors });
    // Weights that do not match the config.
    const other = makeQwenConfig({
      ...SMALL,
      hidden_size: 20,
      num_attention_heads: 5,
      num_key_value_heads: 5,
    });
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(qwenConfigToJson(other)));
    await assert.rejects(
      () => loadCheckpoint(dir),
      /model.safetensors: tensors do not match the config: wrong shapes/,
    );
    assert.equal((await loadCheckpoint(dir, { validate: false })).tensors.size, tensors.size);
    const extra = new Map(tensors).set("model.extra.weight", {
      shape: [1],
      data: new Float32Array(1),
    });
    assert.throws(
      () => validateQwenTensors(config, extra, "f"),
      /unexpected tensors 'model.extra.weight'/,
    );
    // A config that is not JSON, and a truncated weights file.
    await Deno.writeTextFile(`${dir}/config.json`, "{ hidden_size: 16 ");
    await assert.rejects(() => loadCheckpoint(dir), /config.json: not JSON/);
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(qwenConfigToJson(config)));
    const bytes = encodeSafetensors(tensors);
    await Deno.writeFile(`${dir}/model.safetensors`, bytes.slice(0, bytes.length - 3));
    await assert.rejects(
      () => loadCheckpoint(dir),
      (e: unknown) =>
        e instanceof CheckpointError && e.file === `${dir}/model.safetensors` &&
        /out of range/.test(e.problem),
    );
  });
});
