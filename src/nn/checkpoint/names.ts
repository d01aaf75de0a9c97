/**
 * The Hugging Face tensor names and shapes of a Qwen2/Qwen3 decoder, from its config. The
 * transformer maps its parameters through these, so a checkpoint written here loads in
 * `transformers` (Qwen3ForCausalLM / Qwen2ForCausalLM) and the other way round.
 *
 * Shapes follow PyTorch's `nn.Linear`: a weight is `[out_features, in_features]`, and `y = x Wᵀ`.
 *
 * @module
 */
import type { QwenConfig } from "./config.ts";
import { CheckpointError } from "./fs.ts";

/** `model.embed_tokens.weight`, `[vocab_size, hidden_size]`. */
export const EMBED_TOKENS = "model.embed_tokens.weight";
/** `model.norm.weight`, the final RMSNorm, `[hidden_size]`. */
export const FINAL_NORM = "model.norm.weight";
/** `lm_head.weight`, `[vocab_size, hidden_size]`; absent when `tie_word_embeddings`. */
export const LM_HEAD = "lm_head.weight";

/** The names of one decoder block's tensors; optional ones depend on the config. */
export interface QwenLayerNames {
  /** RMSNorm before attention, `[H]`. */
  inputLayernorm: string;
  /** Query projection, `[heads·head_dim, H]`. */
  qProj: string;
  /** Key projection, `[kv_heads·head_dim, H]`. */
  kProj: string;
  /** Value projection, `[kv_heads·head_dim, H]`. */
  vProj: string;
  /** Output projection, `[H, heads·head_dim]`. */
  oProj: string;
  /** Per-head RMSNorm of queries, `[head_dim]` (qwen3 only). */
  qNorm?: string;
  /** Per-head RMSNorm of keys, `[head_dim]` (qwen3 only). */
  kNorm?: string;
  /** Query bias, `[heads·head_dim]` (when `attention_bias`). */
  qBias?: string;
  /** Key bias, `[kv_heads·head_dim]` (when `attention_bias`). */
  kBias?: string;
  /** Value bias, `[kv_heads·head_dim]` (when `attention_bias`). */
  vBias?: string;
  /**
   * Output projection bias, `[H]`: transformers' Qwen3 gives o_proj a bias with
   * `attention_bias` too (Qwen2's o_proj never has one).
   */
  oBias?: string;
  /** RMSNorm before the MLP, `[H]`. */
  postAttentionLayernorm: string;
  /** SwiGLU gate, `[intermediate, H]`. */
  gateProj: string;
  /** SwiGLU up projection, `[intermediate, H]`. */
  upProj: string;
  /** SwiGLU down projection, `[H, intermediate]`. */
  downProj: string;
}

/**
 * The tensor names of decoder block `i`.
 *
 * @example
 * ```ts
 * qwenLayerNames(cfg, 0).qProj; // "model.layers.0.self_attn.q_proj.weight"
 * ```
 */
export function qwenLayerNames(config: QwenConfig, i: number): QwenLayerNames {
  if (!Number.isInteger(i) || i < 0 || i >= config.num_hidden_layers) {
    throw new RangeError(`layer ${i} is outside [0, ${config.num_hidden_layers})`);
  }
  const p = `model.layers.${i}`;
  const names: QwenLayerNames = {
    inputLayernorm: `${p}.input_layernorm.weight`,
    qProj: `${p}.self_attn.q_proj.weight`,
    kProj: `${p}.self_attn.k_proj.weight`,
    vProj: `${p}.self_attn.v_proj.weight`,
    oProj: `${p}.self_attn.o_proj.weight`,
    postAttentionLayernorm: `${p}.post_attention_layernorm.weight`,
    gateProj: `${p}.mlp.gate_proj.weight`,
    upProj: `${p}.mlp.up_proj.weight`,
    downProj: `${p}.mlp.down_proj.weight`,
  };
  if (config.model_type === "qwen3") {
    names.qNorm = `${p}.self_attn.q_norm.weight`;
    names.kNorm = `${p}.self_attn.k_norm.weight`;
  }
  if (config.attention_bias) {
    names.qBias = `${p}.self_attn.q_proj.bias`;
    names.kBias = `${p}.self_attn.k_proj.bias`;
    names.vBias = `${p}.self_attn.v_proj.bias`;
    if (config.model_type === "qwen3") names.oBias = `${p}.self_attn.o_proj.bias`;
  }
  return names;
}

/** One expected tensor: its name and shape. */
export interface TensorSpec {
  /** Hugging Face name. */
  name: string;
  /** Shape. */
  shape: number[];
}

/**
 * Every tensor of the model in a fixed order (embedding, blocks in order, final norm, lm_head
 * unless tied), with shapes.
 *
 * @example
 * ```ts
 * for (const { name, shape } of qwenTensorSpecs(cfg)) params.set(name, zeros(shape));
 * ```
 */
export function qwenTensorSpecs(config: QwenConfig): TensorSpec[] {
  const H = config.hidden_size;
  const I = config.intermediate_size;
  const D = config.head_dim;
  const Q = config.num_attention_heads * D;
  const KV = config.num_key_value_heads * D;
  const specs: TensorSpec[] = [{ name: EMBED_TOKENS, shape: [config.vocab_size, H] }];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const n = qwenLayerNames(config, i);
    specs.push({ name: n.inputLayernorm, shape: [H] });
    specs.push({ name: n.qProj, shape: [Q, H] });
    if (n.qBias) specs.push({ name: n.qBias, shape: [Q] });
    specs.push({ name: n.kProj, shape: [KV, H] });
    if (n.kBias) specs.push({ name: n.kBias, shape: [KV] });
    specs.push({ name: n.vProj, shape: [KV, H] });
    if (n.vBias) specs.push({ name: n.vBias, shape: [KV] });
    specs.push({ name: n.oProj, shape: [H, Q] });
    if (n.oBias) specs.push({ name: n.oBias, shape: [H] });
    if (n.qNorm) specs.push({ name: n.qNorm, shape: [D] });
    if (n.kNorm) specs.push({ name: n.kNorm, shape: [D] });
    specs.push({ name: n.postAttentionLayernorm, shape: [H] });
    specs.push({ name: n.gateProj, shape: [I, H] });
    specs.push({ name: n.upProj, shape: [I, H] });
    specs.push({ name: n.downProj, shape: [H, I] });
  }
  specs.push({ name: FINAL_NORM, shape: [H] });
  if (!config.tie_word_embeddings) specs.push({ name: LM_HEAD, shape: [config.vocab_size, H] });
  return specs;
}

/** Number of parameters (elements of every tensor in `qwenTensorSpecs`). */
export function qwenParameterCount(config: QwenConfig): number {
  return qwenTensorSpecs(config).reduce((s, t) => s + t.shape.reduce((p, d) => p * d, 1), 0);
}

/**
 * Checks that `tensors` holds exactly the model's tensors with the right shapes; throws one
 * `CheckpointError` on `file` listing what is missing, unexpected, or misshapen (first few each).
 */
export function validateQwenTensors(
  config: QwenConfig,
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  file = "<memory>",
): void {
  const specs = qwenTensorSpecs(config);
  const expected = new Set(specs.map((s) => s.name));
  const missing = specs.filter((s) => !tensors.has(s.name)).map((s) => s.name);
  const unexpected = [...tensors.keys()].filter((k) => !expected.has(k));
  const misshapen: string[] = [];
  for (const s of specs) {
    const t = tensors.get(s.name);
    if (t && (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i]))) {
      misshapen.push(`'${s.name}' is [${t.shape}], config says [${s.shape}]`);
    }
  }
  const few = (xs: string[]) =>
    xs.slice(0, 3).join(", ") + (xs.length > 3 ? `, … (${xs.length} in all)` : "");
  const problems: string[] = [];
  if (missing.length) problems.push(`missing tensors ${few(missing.map((m) => `'${m}'`))}`);
  if (unexpected.length) {
    problems.push(`unexpected tensors ${few(unexpected.map((u) => `'${u}'`))}`);
  }
  if (misshapen.length) problems.push(`wrong shapes: ${few(misshapen)}`);
  if (problems.length) {
    throw new CheckpointError(file, `tensors do not match the config: ${problems.join("; ")}`);
  }
}

/** The q/k/v bias names of every layer (empty without `attention_bias`). */
export function qwenBiasNames(config: QwenConfig): string[] {
  const out: string[] = [];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const n = qwenLayerNames(config, i);
    for (const b of [n.qBias, n.kBias, n.vBias]) if (b !== undefined) out.push(b);
  }
  return out;
}

/**
 * The first o_proj bias of `tensors` (qwen3 with `attention_bias`) with a nonzero entry (its name
 * and largest |b|), or undefined when all are zero or absent. The transformer has no output bias:
 * it writes zeros there and can load only zeros.
 */
export function nonzeroOutputBiases(
  config: QwenConfig,
  tensors: ReadonlyMap<string, { data: ArrayLike<number> | BigInt64Array }>,
): string | undefined {
  const names = Array.from(
    { length: config.num_hidden_layers },
    (_, i) => qwenLayerNames(config, i).oBias,
  );
  return firstNonzero(names.filter((n): n is string => n !== undefined), tensors);
}

// The first of `names` in `tensors` with an entry that is not zero (NaN counts), described.
function firstNonzero(
  names: string[],
  tensors: ReadonlyMap<string, { data: ArrayLike<number> | BigInt64Array }>,
): string | undefined {
  for (const name of names) {
    const t = tensors.get(name);
    if (!t) continue;
    let max = 0;
    for (let i = 0; i < t.data.length; i++) {
      const v = Math.abs(Number(t.data[i]));
      max = Number.isNaN(v) ? NaN : Math.max(max, v);
    }
    if (max !== 0) return `'${name}' is not zero (max |b| = ${max.toPrecision(3)})`;
  }
  return undefined;
}

/**
 * The first q/k/v bias of `tensors` with a nonzero entry (its name and largest |b|), or undefined
 * when every bias the config names is zero or absent. A checkpoint whose biases are all zero (a
 * qwen2 one jackpot wrote for a model without `attentionBias`) computes the same thing without
 * them; `fromQwenConfig` gives a model with biases only when this names one.
 *
 * @example
 * ```ts
 * nonzeroBiases(cfg, tensors); // "'model.layers.0.self_attn.q_proj.bias' is not zero (max |b| = 0.31)"
 * ```
 */
export function nonzeroBiases(
  config: QwenConfig,
  tensors: ReadonlyMap<string, { data: ArrayLike<number> | BigInt64Array }>,
): string | undefined {
  return firstNonzero(qwenBiasNames(config), tensors);
}
