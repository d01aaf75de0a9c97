import assert from "node:assert/strict";
import { noGrad } from "../src/autograd/mod.ts";
import { initTensors, readAll, tensor, tidy } from "../src/tensor/mod.ts";
import {
  CheckpointError,
  loadCheckpoint,
  nonzeroBiases,
  parseQwenConfig,
  qwenConfigToJson,
  saveCheckpoint,
} from "../src/nn/checkpoint/mod.ts";
import {
  fromQwenConfig,
  type ModelConfig,
  ModelConfigError,
  toQwenConfig,
  validateModelConfig,
} from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { loadCheckpointOrExplain } from "../src/cli/commands/pretrain.ts";
import { Rng } from "../src/util/rng.ts";

const BASE = {
  vocabSize: 13,
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

Deno.test("checkpoint: a model saved and loaded gives bitwise the same logits (tied/untied, QK-norm on/off)", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir({ prefix: "jackpot-nn-ckpt-" });
  try {
    for (const tiedEmbeddings of [true, false]) {
      for (const qkNorm of [true, false]) {
        const cfg: ModelConfig = validateModelConfig({ ...BASE, tiedEmbeddings, qkNorm });
        // Random norm weights too (init sets them to 1, which would hide a swapped norm).
        const rng = new Rng(tiedEmbeddings ? 1 : 2, qkNorm ? 1 : 2);
        const fresh = Transformer.init(cfg, { seed: 3, std: 0.4 });
        const ck = await fresh.toCheckpoint({ task: "arithmetic", step: 7 });
        fresh.dispose();
        for (const [name, t] of ck.tensors) {
          if (name.endsWith("norm.weight")) {
            (t.data as Float32Array).forEach((_, i, a) => a[i] = 0.5 + rng.uniform());
          }
        }
        const saved = Transformer.fromTensors(ck.config, ck.tensors);
        const path = `${dir}/${tiedEmbeddings}-${qkNorm}`;
        await saveCheckpoint(path, await saved.toCheckpoint({ task: "arithmetic", step: 7 }));
        const loaded = await loadCheckpoint(path);
        assert.equal(loaded.tensors.has("lm_head.weight"), !tiedEmbeddings);
        assert.equal(loaded.tensors.has("model.layers.0.self_attn.q_norm.weight"), qkNorm);
        // qwen2 (no QK-norm): zero q/k/v biases, which transformers' Qwen2 attention always has.
        const bias = loaded.tensors.get("model.layers.1.self_attn.k_proj.bias");
        assert.equal(bias !== undefined, !qkNorm);
        if (bias) {
          assert.deepEqual(bias.shape, [BASE.kvHeads * BASE.headDim]);
          assert.ok(bias.data.every((v) => v === 0));
        }
        const model = Transformer.fromTensors(loaded.config, loaded.tensors);
        assert.deepEqual(model.config, cfg);
        assert.deepEqual(loaded.config.jackpot, { task: "arithmetic", step: 7 });
        const ids = Int32Array.from({ length: 2 * 9 }, () => rng.int(BASE.vocabSize));
        const [a, b] = await readAll(noGrad(() =>
          tidy(() => {
            const tokens = tensor(ids, [2, 9]);
            return [saved.forward(tokens), model.forward(tokens)];
          })
        ));
        assert.deepEqual(
          new Uint32Array(b.buffer),
          new Uint32Array(a.buffer),
          `tied ${tiedEmbeddings}, qkNorm ${qkNorm}: logits differ after the round trip`,
        );
        saved.dispose();
        model.dispose();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkpoint: config.json has what transformers' Qwen3Config/Qwen2Config read", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir({ prefix: "jackpot-nn-ckpt-" });
  try {
    for (const qkNorm of [true, false]) {
      const model = Transformer.init(
        validateModelConfig({ ...BASE, tiedEmbeddings: true, qkNorm }),
        { seed: 1 },
      );
      await saveCheckpoint(dir, await model.toCheckpoint({ step: 0 }));
      model.dispose();
      const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
      assert.equal(json.model_type, qkNorm ? "qwen3" : "qwen2");
      assert.deepEqual(json.architectures, [qkNorm ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM"]);
      // The weights are stored as F32; without torch_dtype transformers assumes its default.
      assert.equal(json.torch_dtype, "float32");
      assert.equal(json.hidden_act, "silu");
      const ints = [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
      ];
      for (const k of ints) assert.ok(Number.isInteger(json[k]) && json[k] > 0, k);
      assert.equal(typeof json.rms_norm_eps, "number");
      assert.equal(typeof json.rope_theta, "number");
      assert.equal(json.tie_word_embeddings, true);
      assert.equal(json.attention_bias, !qkNorm);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkpoint: configs this transformer would compute wrongly are refused", () => {
  const q = toQwenConfig(validateModelConfig({ ...BASE, tiedEmbeddings: true, qkNorm: true }));
  assert.throws(
    () => fromQwenConfig({ ...q, extra: { ...q.extra, hidden_act: "gelu" } }),
    /hidden_act 'gelu' is not implemented/,
  );
  assert.throws(
    () => fromQwenConfig({ ...q, extra: { ...q.extra, use_sliding_window: true } }),
    /sliding-window attention is not implemented/,
  );
  assert.deepEqual(
    fromQwenConfig({ ...q, extra: { ...q.extra, use_sliding_window: false } }).hidden,
    16,
  );
});

Deno.test("checkpoint: q/k/v biases load when zero and are refused, naming the tensor, when not", async () => {
  await initTensors();
  const cfg = validateModelConfig({ ...BASE, tiedEmbeddings: true, qkNorm: false });
  const model = Transformer.init(cfg, { seed: 5, std: 0.3 });
  const ck = await model.toCheckpoint();
  model.dispose();
  assert.equal(ck.config.attention_bias, true);
  // Zero biases (what a qwen2 model written here has): the same model.
  Transformer.fromTensors(ck.config, ck.tensors).dispose();
  const name = "model.layers.1.self_attn.v_proj.bias";
  const b = ck.tensors.get(name)!;
  for (const v of [0.25, -1e-30, NaN]) {
    const data = new Float32Array(b.data.length);
    data[data.length - 1] = v;
    const tensors = new Map(ck.tensors).set(name, { shape: b.shape, data });
    assert.ok(nonzeroBiases(ck.config, tensors)?.includes(name), `bias ${v} not reported`);
    assert.throws(
      () => Transformer.fromTensors(ck.config, tensors),
      (e: Error) =>
        e instanceof ModelConfigError && e.message.includes(name) &&
        /q\/k\/v biases are not implemented/.test(e.message),
    );
  }
  // The CLI's loader refuses such a folder with one error naming the file.
  const dir = await Deno.makeTempDir({ prefix: "jackpot-nn-bias-" });
  try {
    const data = new Float32Array(b.data.length).fill(0.5);
    await saveCheckpoint(dir, {
      ...ck,
      tensors: new Map(ck.tensors).set(name, { shape: b.shape, data }),
    });
    await assert.rejects(
      () => loadCheckpointOrExplain(dir, "--checkpoint"),
      (e: Error) => e instanceof CheckpointError && e.message.includes(name),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkpoint: a config saved by transformers 5 (rope_parameters, no rope_theta) loads; scaled RoPE is refused", () => {
  const q = toQwenConfig(validateModelConfig({ ...BASE, tiedEmbeddings: true, qkNorm: true }));
  const json = qwenConfigToJson(q);
  delete json.rope_theta;
  json.rope_parameters = { rope_theta: 250000, rope_type: "default" };
  const parsed = parseQwenConfig(json, "v5/config.json");
  assert.equal(parsed.rope_theta, 250000);
  assert.equal(fromQwenConfig(parsed).ropeTheta, 250000);
  // Both given and different: ambiguous.
  assert.throws(
    () => parseQwenConfig({ ...json, rope_theta: 10000 }, "v5/config.json"),
    /rope_theta \(10000\) and rope_parameters.rope_theta \(250000\) differ/,
  );
  const yarn = { ...json, rope_parameters: { rope_theta: 1e6, rope_type: "yarn", factor: 4 } };
  assert.throws(() => fromQwenConfig(parseQwenConfig(yarn)), /rope_type 'yarn' is not implemented/);
});
