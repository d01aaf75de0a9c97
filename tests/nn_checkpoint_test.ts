import assert from "node:assert/strict";
import { noGrad } from "../src/autograd/mod.ts";
import { initTensors, readAll, tensor, tidy } from "../src/tensor/mod.ts";
import {
  loadCheckpoint,
  nonzeroBiases,
  parseQwenConfig,
  qwenConfigToJson,
  saveCheckpoint,
} from "../src/nn/checkpoint/mod.ts";
import {
  fromQwenConfig,
  type ModelConfig,
  toQwenConfig,
  validateModelConfig,
} from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { loadCheckpointOrExplain } from "../src/cli/commands/pretrain.ts";
import { Rng } from "../src/util/rng.ts";

const BASE = {
  attentionBias: false,
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

Deno.test("checkpoint: a model saved and loaded gives bitwise the same logits (tied/untied, QK-norm on/off, q/k/v biases on/off)", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir({ prefix: "jackpot-nn-ckpt-" });
  try {
    const cases = [
      ...[true, false].flatMap((tiedEmbeddings) =>
        [true, false].map((qkNorm) => ({ tiedEmbeddings, qkNorm, attentionBias: false }))
      ),
      { tiedEmbeddings: true, qkNorm: false, attentionBias: true }, // qwen2 with biases
      { tiedEmbeddings: false, qkNorm: true, attentionBias: true }, // qwen3, attention_bias
    ];
    for (const { tiedEmbeddings, qkNorm, attentionBias } of cases) {
      const cfg: ModelConfig = validateModelConfig({
        ...BASE,
        tiedEmbeddings,
        qkNorm,
        attentionBias,
      });
      // Random norm weights and biases too (init sets them to 1 and 0, which would hide a
      // swapped norm or a dropped bias).
      const rng = new Rng(tiedEmbeddings ? 1 : 2, (qkNorm ? 1 : 2) + (attentionBias ? 2 : 0));
      const fresh = Transformer.init(cfg, { seed: 3, std: 0.4 });
      const ck = await fresh.toCheckpoint({ task: "arithmetic", step: 7 });
      fresh.dispose();
      for (const [name, t] of ck.tensors) {
        if (name.endsWith("norm.weight")) {
          (t.data as Float32Array).forEach((_, i, a) => a[i] = 0.5 + rng.uniform());
        }
        if (/[qkv]_proj\.bias$/.test(name) && attentionBias) {
          (t.data as Float32Array).forEach((_, i, a) => a[i] = 0.5 * rng.normal());
        }
      }
      const saved = Transformer.fromTensors(ck.config, ck.tensors);
      const path = `${dir}/${tiedEmbeddings}-${qkNorm}-${attentionBias}`;
      await saveCheckpoint(path, await saved.toCheckpoint({ task: "arithmetic", step: 7 }));
      const loaded = await loadCheckpoint(path);
      assert.equal(loaded.tensors.has("lm_head.weight"), !tiedEmbeddings);
      assert.equal(loaded.tensors.has("model.layers.0.self_attn.q_norm.weight"), qkNorm);
      assert.equal(loaded.config.attention_bias, !qkNorm || attentionBias);
      // qwen2 without attentionBias: zero q/k/v biases, which transformers' Qwen2 attention
      // always has; with it, the model's own, bit for bit.
      const bias = loaded.tensors.get("model.layers.1.self_attn.k_proj.bias");
      assert.equal(bias !== undefined, !qkNorm || attentionBias);
      if (bias) {
        assert.deepEqual(bias.shape, [BASE.kvHeads * BASE.headDim]);
        if (attentionBias) {
          for (const [name, t] of ck.tensors) {
            if (!/[qkv]_proj\.bias$/.test(name)) continue;
            const got = loaded.tensors.get(name)!.data as Float32Array;
            assert.deepEqual(
              new Uint32Array(got.buffer, got.byteOffset, got.length),
              new Uint32Array((t.data as Float32Array).buffer),
              name,
            );
          }
        } else assert.ok(bias.data.every((v) => v === 0));
      }
      // qwen3 with attention_bias: transformers' Qwen3 then has o_proj biases too, written as
      // zeros; a nonzero one is refused, naming it
      const oBias = loaded.tensors.get("model.layers.0.self_attn.o_proj.bias");
      assert.equal(oBias !== undefined, qkNorm && attentionBias);
      if (oBias) {
        assert.deepEqual(oBias.shape, [BASE.hidden]);
        assert.ok(oBias.data.every((v) => v === 0));
        const data = new Float32Array(BASE.hidden).fill(0.5);
        const tensors = new Map(loaded.tensors).set("model.layers.0.self_attn.o_proj.bias", {
          ...oBias,
          data,
        });
        assert.throws(
          () => Transformer.fromTensors(loaded.config, tensors),
          /'model\.layers\.0\.self_attn\.o_proj\.bias' is not zero .*o_proj biases .* are not implemented/,
        );
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
        `tied ${tiedEmbeddings}, qkNorm ${qkNorm}, bias ${attentionBias}: logits differ after the round trip`,
      );
      saved.dispose();
      model.dispose();
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

Deno.test("checkpoint: qwen2 q/k/v biases: zero ones load as a model without them, nonzero ones as a model with them; a missing or misshapen one is refused", async () => {
  await initTensors();
  const cfg = validateModelConfig({ ...BASE, tiedEmbeddings: true, qkNorm: false });
  const model = Transformer.init(cfg, { seed: 5, std: 0.3 });
  const ck = await model.toCheckpoint();
  model.dispose();
  assert.equal(ck.config.attention_bias, true);
  // Zero biases (what a qwen2 model without attentionBias writes): the same model, no biases.
  const plain = Transformer.fromTensors(ck.config, ck.tensors);
  assert.equal(plain.config.attentionBias, false);
  assert.equal(plain.blocks[0].bQkv, null);
  plain.dispose();
  const name = "model.layers.1.self_attn.v_proj.bias";
  const b = ck.tensors.get(name)!;
  for (const v of [0.25, -1e-30]) {
    const data = new Float32Array(b.data.length);
    data[data.length - 1] = v;
    const tensors = new Map(ck.tensors).set(name, { shape: b.shape, data });
    assert.ok(nonzeroBiases(ck.config, tensors)?.includes(name), `bias ${v} not reported`);
    const biased = Transformer.fromTensors(ck.config, tensors);
    assert.equal(biased.config.attentionBias, true);
    const [got] = await readAll([biased.namedParameters().get(name)!]);
    assert.deepEqual(got, data);
    biased.dispose();
  }
  // A bias of the wrong shape, or none where the config names one: one sentence naming it.
  const short = new Map(ck.tensors).set(name, { shape: [3], data: new Float32Array(3) });
  assert.throws(
    () => Transformer.fromTensors(ck.config, short),
    new RegExp(`${name.replaceAll(".", "\\.")} has shape \\[3\\], the config needs \\[8\\]`),
  );
  const missing = new Map(ck.tensors);
  missing.delete(name);
  assert.throws(() => Transformer.fromTensors(ck.config, missing), /v_proj\.bias is missing/);
  // The CLI's loader takes a folder with nonzero biases, and its model config has them.
  const dir = await Deno.makeTempDir({ prefix: "jackpot-nn-bias-" });
  try {
    const data = new Float32Array(b.data.length).fill(0.5);
    await saveCheckpoint(dir, {
      ...ck,
      tensors: new Map(ck.tensors).set(name, { shape: b.shape, data }),
    });
    const loaded = await loadCheckpointOrExplain(dir, "--checkpoint");
    assert.equal(fromQwenConfig(loaded.config, loaded.tensors).attentionBias, true);
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
