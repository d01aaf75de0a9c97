/**
 * The transformer's configuration: short llm.c-style names (V, C, L, heads), validation with one
 * clear sentence per problem, the conversion to and from the Hugging Face {@link QwenConfig} that
 * checkpoints store, parameter and FLOP counts, and the named model sizes (`tiny`, `actor`,
 * `policy`) that the CLI accepts.
 *
 * @module
 */
import {
  makeQwenConfig,
  nonzeroBiases,
  nonzeroOutputBiases,
  type QwenConfig,
} from "./checkpoint/mod.ts";

/** A decoder-only Qwen-style transformer (RMSNorm, RoPE, GQA, SwiGLU). */
export interface ModelConfig {
  /** Vocabulary size V. */
  vocabSize: number;
  /** Residual width C. */
  hidden: number;
  /** Decoder blocks L. */
  layers: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads (grouped-query attention); divides `heads`. */
  kvHeads: number;
  /** Width of one head D. */
  headDim: number;
  /** SwiGLU hidden width. */
  intermediate: number;
  /** Longest sequence (the RoPE tables and the KV cache are sized by it). */
  maxSeqLen: number;
  /** RoPE base frequency. */
  ropeTheta: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** `lm_head` reuses the embedding table. */
  tiedEmbeddings: boolean;
  /** Per-head RMSNorm of queries and keys before RoPE (Qwen3). */
  qkNorm: boolean;
  /**
   * Biases on the q, k and v projections (Qwen2/Qwen2.5 checkpoints; a qwen3 one with
   * `attention_bias`), added to the projection before QK-norm and RoPE. Absent means false, so
   * configs written before the field existed keep their meaning.
   */
  attentionBias?: boolean;
}

/** The sizes a named preset fixes; the vocabulary comes from the task. */
export type ModelSizes = Omit<ModelConfig, "vocabSize">;

const BASE: Omit<
  ModelSizes,
  "hidden" | "layers" | "heads" | "kvHeads" | "headDim" | "intermediate"
> = {
  maxSeqLen: 256,
  ropeTheta: 10000,
  normEps: 1e-6,
  tiedEmbeddings: true,
  qkNorm: true,
  attentionBias: false,
};

/**
 * Named sizes. `tiny` is the pretrain default (trains in seconds on a CPU WebGPU adapter);
 * `actor` and `policy` are the small rollout model and the larger policy of one family (same
 * head width, vocabulary and RoPE, so that their distributions are comparable).
 */
export const MODEL_PRESETS: Readonly<Record<string, Readonly<ModelSizes>>> = {
  tiny: {
    ...BASE,
    hidden: 64,
    layers: 1,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    intermediate: 128,
    maxSeqLen: 64,
  },
  actor: { ...BASE, hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 128 },
  policy: { ...BASE, hidden: 128, layers: 4, heads: 8, kvHeads: 4, headDim: 16, intermediate: 256 },
};

/** A config error: one sentence naming the field and the problem. */
export class ModelConfigError extends Error {
  /** @param message what is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "ModelConfigError";
  }
}

function positiveInt(name: string, v: unknown): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new ModelConfigError(`model config: ${name} must be a positive integer, got ${v}`);
  }
}

/**
 * Checks every field; returns the config unchanged or throws a {@link ModelConfigError}.
 *
 * @example
 * ```ts
 * validateModelConfig({ ...MODEL_PRESETS.tiny, vocabSize: 18 });
 * ```
 */
export function validateModelConfig(c: ModelConfig): ModelConfig {
  for (
    const k of [
      "vocabSize",
      "hidden",
      "layers",
      "heads",
      "kvHeads",
      "headDim",
      "intermediate",
      "maxSeqLen",
    ] as const
  ) {
    positiveInt(k, c[k]);
  }
  if (c.heads % c.kvHeads !== 0) {
    throw new ModelConfigError(
      `model config: kvHeads (${c.kvHeads}) must divide heads (${c.heads}) for grouped-query attention`,
    );
  }
  if (c.headDim % 2 !== 0) {
    throw new ModelConfigError(`model config: headDim must be even for RoPE, got ${c.headDim}`);
  }
  if (!(c.ropeTheta > 1) || !Number.isFinite(c.ropeTheta)) {
    throw new ModelConfigError(
      `model config: ropeTheta must be a finite number > 1, got ${c.ropeTheta}`,
    );
  }
  if (!(c.normEps > 0) || !(c.normEps < 1)) {
    throw new ModelConfigError(`model config: normEps must be in (0, 1), got ${c.normEps}`);
  }
  if (typeof c.tiedEmbeddings !== "boolean" || typeof c.qkNorm !== "boolean") {
    throw new ModelConfigError("model config: tiedEmbeddings and qkNorm must be booleans");
  }
  if (c.attentionBias !== undefined && typeof c.attentionBias !== "boolean") {
    throw new ModelConfigError(
      `model config: attentionBias must be a boolean (or absent: false), got ${c.attentionBias}`,
    );
  }
  return c;
}

/** A validated config from a preset (or explicit sizes) and the task's vocabulary size. */
export function modelConfig(
  sizes: string | ModelSizes,
  vocabSize: number,
  overrides: Partial<ModelConfig> = {},
): ModelConfig {
  const base = typeof sizes === "string" ? MODEL_PRESETS[sizes] : sizes;
  if (!base) {
    throw new ModelConfigError(
      `unknown model size '${sizes}'; known: ${Object.keys(MODEL_PRESETS).join(", ")}`,
    );
  }
  return validateModelConfig({ ...base, vocabSize, ...overrides });
}

const SPEC_KEYS: Record<string, keyof ModelConfig> = {
  hidden: "hidden",
  layers: "layers",
  heads: "heads",
  kvHeads: "kvHeads",
  headDim: "headDim",
  intermediate: "intermediate",
  maxSeqLen: "maxSeqLen",
  ropeTheta: "ropeTheta",
  normEps: "normEps",
  tiedEmbeddings: "tiedEmbeddings",
  qkNorm: "qkNorm",
  attentionBias: "attentionBias",
};

/**
 * Parses a CLI model spec: a preset name, optionally followed by `:key=value,...` overrides
 * (`tiny`, `actor:layers=3`, `policy:hidden=256,heads=8`).
 */
export function parseModelSpec(spec: string, vocabSize: number): ModelConfig {
  const colon = spec.indexOf(":");
  const name = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? undefined : spec.slice(colon + 1);
  const overrides: Record<string, number | boolean> = {};
  if (rest !== undefined) {
    for (const part of rest.split(",")) {
      const [k, v] = part.split("=");
      const key = SPEC_KEYS[k];
      if (key && Object.hasOwn(overrides, key)) {
        throw new ModelConfigError(`model spec '${spec}': '${k}' is given twice`);
      }
      if (!key || v === undefined) {
        throw new ModelConfigError(
          `model spec '${spec}': '${part}' is not key=value with key one of ${
            Object.keys(SPEC_KEYS).join(", ")
          }`,
        );
      }
      if (key === "tiedEmbeddings" || key === "qkNorm" || key === "attentionBias") {
        if (v !== "true" && v !== "false") {
          throw new ModelConfigError(`model spec: ${k} must be true or false, got '${v}'`);
        }
        overrides[key] = v === "true";
      } else {
        const n = Number(v);
        if (!Number.isFinite(n)) {
          throw new ModelConfigError(`model spec: ${k} must be a number, got '${v}'`);
        }
        overrides[key] = n;
      }
    }
  }
  return modelConfig(name, vocabSize, overrides as Partial<ModelConfig>);
}

/**
 * The Hugging Face config of `c` (qwen3 with QK-norm, qwen2 without). A qwen2 config says
 * `attention_bias: true` because transformers' Qwen2 attention always has q/k/v biases, whatever
 * the config says: `Transformer.toCheckpoint` writes the model's biases, or zeros without
 * {@link ModelConfig.attentionBias}. A qwen3 config says `attention_bias` as the model has them
 * (transformers' Qwen3 honours the key).
 *
 * @example
 * ```ts
 * const qc = toQwenConfig(cfg); // what saveCheckpoint writes as config.json
 * ```
 */
export function toQwenConfig(c: ModelConfig): QwenConfig {
  validateModelConfig(c);
  const q = makeQwenConfig({
    model_type: c.qkNorm ? "qwen3" : "qwen2",
    vocab_size: c.vocabSize,
    hidden_size: c.hidden,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.headDim,
    intermediate_size: c.intermediate,
    max_position_embeddings: c.maxSeqLen,
    rope_theta: c.ropeTheta,
    rms_norm_eps: c.normEps,
    tie_word_embeddings: c.tiedEmbeddings,
    attention_bias: !c.qkNorm || c.attentionBias === true,
  });
  // Stated for transformers: the weights are written as F32 (without torch_dtype it picks its own
  // default), and the MLP is SwiGLU with SiLU.
  q.extra.torch_dtype = "float32";
  q.extra.hidden_act = "silu";
  return q;
}

/**
 * The model config of a Hugging Face config; refuses what this transformer does not implement.
 * `attentionBias`: a qwen3 config's `attention_bias`. A qwen2 config always names q/k/v biases
 * (transformers' Qwen2 has them whatever the key says), so there the checkpoint's `tensors`
 * decide: true when one of them is nonzero, false when all are zero (a model without biases, as
 * jackpot writes one: it computes the same without them) or when no tensors are given. A qwen3
 * config with `attention_bias` also names o_proj biases (transformers' Qwen3 has them), which this
 * transformer does not implement: with `tensors`, a nonzero one is refused.
 *
 * @example
 * ```ts
 * const cfg = fromQwenConfig(ckpt.config, ckpt.tensors);
 * ```
 */
export function fromQwenConfig(
  q: QwenConfig,
  tensors?: ReadonlyMap<string, { data: ArrayLike<number> | BigInt64Array }>,
): ModelConfig {
  if (q.extra.rope_scaling !== undefined && q.extra.rope_scaling !== null) {
    throw new ModelConfigError("config.json: rope_scaling is not implemented by this transformer");
  }
  // Keys that would change the computation: refused rather than silently ignored.
  const rp = q.extra.rope_parameters;
  if (typeof rp === "object" && rp !== null && !Array.isArray(rp)) {
    const type = rp.rope_type ?? rp.type ?? "default";
    if (type !== "default" || (rp.partial_rotary_factor ?? 1) !== 1) {
      throw new ModelConfigError(
        `config.json: rope_parameters with rope_type '${type}'${
          (rp.partial_rotary_factor ?? 1) !== 1 ? " and a partial rotary factor" : ""
        } is not implemented by this transformer (plain RoPE only)`,
      );
    }
  }
  const act = q.extra.hidden_act;
  if (act !== undefined && act !== "silu") {
    throw new ModelConfigError(
      `config.json: hidden_act '${act}' is not implemented by this transformer (SwiGLU with silu only)`,
    );
  }
  const outputBias = tensors && nonzeroOutputBiases(q, tensors);
  if (outputBias) {
    throw new ModelConfigError(
      `checkpoint: ${outputBias}; o_proj biases (qwen3 with attention_bias) are not implemented ` +
        "by this transformer",
    );
  }
  if (q.extra.use_sliding_window === true) {
    throw new ModelConfigError(
      "config.json: use_sliding_window = true (sliding-window attention is not implemented by this transformer)",
    );
  }
  return validateModelConfig({
    vocabSize: q.vocab_size,
    hidden: q.hidden_size,
    layers: q.num_hidden_layers,
    heads: q.num_attention_heads,
    kvHeads: q.num_key_value_heads,
    headDim: q.head_dim,
    intermediate: q.intermediate_size,
    maxSeqLen: q.max_position_embeddings,
    ropeTheta: q.rope_theta,
    normEps: q.rms_norm_eps,
    tiedEmbeddings: q.tie_word_embeddings,
    qkNorm: q.model_type === "qwen3",
    attentionBias: q.model_type === "qwen3"
      ? q.attention_bias
      : tensors !== undefined && nonzeroBiases(q, tensors) !== undefined,
  });
}

/**
 * Number of parameters: `qwenParameterCount(toQwenConfig(c))`, less the zero biases a checkpoint
 * may hold that are not parameters of this transformer: q/k/v ones of a qwen2 model without
 * {@link ModelConfig.attentionBias}, o_proj ones of a qwen3 model with it.
 */
export function parameterCount(c: ModelConfig): number {
  const { vocabSize: V, hidden: C, heads, kvHeads, headDim: D, intermediate: I, layers: L } = c;
  const bias = c.attentionBias ? (heads + 2 * kvHeads) * D : 0;
  const attn = C * heads * D * 2 + C * kvHeads * D * 2 + (c.qkNorm ? 2 * D : 0) + bias;
  const block = attn + 3 * C * I + 2 * C;
  return V * C * (c.tiedEmbeddings ? 1 : 2) + L * block + C;
}

/**
 * Forward FLOPs of one token at context length `T` (2 per multiply-add; matmuls and attention
 * scores only, as in the PaLM/nanoGPT estimate). A training step is about 3× this per token.
 */
export function forwardFlopsPerToken(c: ModelConfig, T: number): number {
  const { vocabSize: V, hidden: C, heads, kvHeads, headDim: D, intermediate: I, layers: L } = c;
  const proj = 2 * C * (2 * heads * D + 2 * kvHeads * D) + 2 * 3 * C * I;
  const attn = 2 * 2 * heads * D * T; // QKᵀ and PV, causal average counted at full T (upper bound)
  return L * (proj + attn) + 2 * C * V;
}

/** One line for logs: `2 layers, C=64, 4/2 heads × 16, I=128, V=18, 59.5k params`. */
export function describeModel(c: ModelConfig): string {
  const n = parameterCount(c);
  const size = n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(1)}k`;
  return `${c.layers} layer${
    c.layers === 1 ? "" : "s"
  }, C=${c.hidden}, ${c.heads}/${c.kvHeads} heads × ${c.headDim}${
    c.attentionBias ? " (q/k/v bias)" : ""
  }, ` +
    `I=${c.intermediate}, V=${c.vocabSize}, ${size} params`;
}
