import assert from "node:assert/strict";
import { qwenParameterCount } from "../src/nn/checkpoint/mod.ts";
import { anchor, ANCHORS } from "../src/nn/anchors.ts";
import {
  fromQwenConfig,
  MODEL_PRESETS,
  modelConfig,
  ModelConfigError,
  parameterCount,
  parseModelSpec,
  toQwenConfig,
  validateModelConfig,
} from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";

Deno.test("config: Qwen round trip and parameter counts agree with the checkpoint layer", () => {
  for (const name of Object.keys(MODEL_PRESETS)) {
    for (
      const over of [
        {},
        { tiedEmbeddings: false },
        { qkNorm: false },
        { attentionBias: true },
        { qkNorm: false, attentionBias: true },
      ]
    ) {
      const c = modelConfig(name, 37, over);
      const q = toQwenConfig(c);
      if (c.qkNorm || !c.attentionBias) assert.deepEqual(fromQwenConfig(q), c);
      else {
        // qwen2 always names q/k/v biases: its tensors say whether the model has them
        const bias = { data: new Float32Array(c.heads * c.headDim).fill(0.25) };
        const tensors = new Map([["model.layers.0.self_attn.q_proj.bias", bias]]);
        assert.deepEqual(fromQwenConfig(q, tensors), c);
        assert.deepEqual(fromQwenConfig(q), { ...c, attentionBias: false });
        bias.data.fill(0);
        assert.deepEqual(fromQwenConfig(q, tensors), { ...c, attentionBias: false });
      }
      // The checkpoint of a qwen2 model without attentionBias also holds zero q/k/v biases, that
      // of a qwen3 model with it zero o_proj biases (transformers' Qwen3 has them).
      const biases = c.qkNorm
        ? (c.attentionBias ? c.layers * c.hidden : 0)
        : c.attentionBias
        ? 0
        : c.layers * (c.heads + 2 * c.kvHeads) * c.headDim;
      assert.equal(parameterCount(c) + biases, qwenParameterCount(toQwenConfig(c)));
      const shapes = Transformer.shapes(c);
      assert.equal(
        [...shapes.values()].reduce((s, sh) => s + sh.reduce((p, d) => p * d, 1), 0),
        parameterCount(c),
      );
    }
  }
});

Deno.test("config: the anchors have the sizes the torch scripts mirror", () => {
  const want: Record<string, [number, number]> = {
    "0.8M": [0.75e6, 0.9e6],
    "5M": [4.5e6, 5.5e6],
    "29M": [27e6, 31e6],
  };
  for (const a of ANCHORS) {
    const n = parameterCount(validateModelConfig(a.config));
    assert.ok(n >= want[a.name][0] && n <= want[a.name][1], `${a.name}: ${n}`);
  }
  // bench/torch/*.py hold the same numbers; a drift in either is caught here.
  const py = Deno.readTextFileSync(new URL("../bench/torch/anchors.py", import.meta.url));
  for (const a of ANCHORS) {
    const c = a.config;
    const line =
      `"${a.name}": dict(vocab=${c.vocabSize}, hidden=${c.hidden}, layers=${c.layers}, heads=${c.heads}, ` +
      `kv_heads=${c.kvHeads}, head_dim=${c.headDim}, intermediate=${c.intermediate}, B=${a.B}, T=${a.T})`;
    assert.ok(py.includes(line), `bench/torch/anchors.py lacks: ${line}`);
  }
  // The shared constants, and what train_step.py / generate.py hard-code (a tied classifier, the
  // per-head q/k RMSNorm of Qwen3).
  const constant = (name: string) => {
    const m = py.match(new RegExp(`^${name} = ([0-9.e+-]+)$`, "m"));
    assert.ok(m, `bench/torch/anchors.py lacks ${name}`);
    return Number(m[1]);
  };
  for (const a of ANCHORS) {
    assert.equal(a.config.ropeTheta, constant("ROPE_THETA"), `${a.name} ropeTheta`);
    assert.equal(a.config.normEps, constant("NORM_EPS"), `${a.name} normEps`);
    assert.equal(a.config.maxSeqLen, constant("MAX_POSITIONS"), `${a.name} maxSeqLen`);
    assert.equal(a.config.tiedEmbeddings, true, `${a.name}: the torch scripts tie the classifier`);
    assert.equal(a.config.qkNorm, true, `${a.name}: the torch scripts use QK-norm`);
  }
  const train = Deno.readTextFileSync(new URL("../bench/torch/train_step.py", import.meta.url));
  assert.match(train, /self\.norm\(x\) @ self\.embed_tokens\.weight\.t\(\)/);
  assert.match(train, /self\.q_norm = RMSNorm\(D\)/);
  const gen = Deno.readTextFileSync(new URL("../bench/torch/generate.py", import.meta.url));
  assert.match(gen, /tie_word_embeddings=True/);
  assert.match(gen, /Qwen3ForCausalLM/);
  assert.throws(() => anchor("7B"), /unknown anchor '7B'/);
});

Deno.test("config: bad configs and specs are refused with one clear sentence", () => {
  const c = modelConfig("tiny", 18);
  assert.throws(
    () => validateModelConfig({ ...c, kvHeads: 3 }),
    /kvHeads \(3\) must divide heads \(4\)/,
  );
  assert.throws(() => validateModelConfig({ ...c, headDim: 15 }), /headDim must be even/);
  assert.throws(
    () => validateModelConfig({ ...c, layers: 0 }),
    /layers must be a positive integer/,
  );
  assert.throws(() => validateModelConfig({ ...c, normEps: 0 }), /normEps/);
  assert.throws(
    () => modelConfig("huge", 18),
    /unknown model size 'huge'; known: tiny, actor, policy/,
  );
  assert.throws(() => parseModelSpec("tiny:layers", 18), ModelConfigError);
  assert.throws(() => parseModelSpec("tiny:depth=3", 18), /'depth=3' is not key=value/);
  assert.throws(() => parseModelSpec("tiny:qkNorm=yes", 18), /qkNorm must be true or false/);
  assert.equal(parseModelSpec("actor:layers=3,qkNorm=false", 18).layers, 3);
  // A key given twice (the last one used to win silently), and an empty override list.
  assert.throws(() => parseModelSpec("tiny:layers=1,layers=2", 18), /'layers' is given twice/);
  assert.throws(() => parseModelSpec("tiny:", 18), /'' is not key=value/);
  // qwen2 configs written here say attention_bias: true, as transformers' Qwen2 builds; qwen3
  // ones say what the model has (transformers' Qwen3 reads the key).
  assert.equal(fromQwenConfig({ ...toQwenConfig(c), attention_bias: true }).attentionBias, true);
  assert.equal(toQwenConfig({ ...c, qkNorm: false }).attention_bias, true);
  assert.equal(toQwenConfig({ ...c, qkNorm: true }).attention_bias, false);
  assert.equal(toQwenConfig({ ...c, qkNorm: true, attentionBias: true }).attention_bias, true);
  assert.equal(parseModelSpec("tiny:attentionBias=true", 18).attentionBias, true);
  assert.throws(() => parseModelSpec("tiny:attentionBias=1", 18), /attentionBias must be true/);
  assert.throws(
    () => validateModelConfig({ ...c, attentionBias: "yes" as unknown as boolean }),
    /attentionBias must be a boolean/,
  );
});
