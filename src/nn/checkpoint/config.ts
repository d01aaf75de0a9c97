/**
 * `config.json` of a checkpoint: Hugging Face keys for a Qwen2/Qwen3 decoder, plus jackpot's own
 * `"jackpot"` object (task, step, …). Unknown keys are kept and written back, so a config that came
 * from the Hub survives a load/save round trip.
 *
 * @module
 */
import { CheckpointError } from "./fs.ts";

/** A JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/**
 * What jackpot records about a checkpoint. Known keys are checked when present; others are kept.
 * `task` is a task spec string (`arithmetic:maxDigits=3`), `step` the optimizer step.
 */
export interface JackpotInfo {
  /** Task spec (`createTaskFromSpec` rebuilds the task). */
  task?: string;
  /** Optimizer steps taken when saved. */
  step?: number;
  /** Other fields: role (policy / rollout), seed, run id, … */
  [key: string]: JsonValue | undefined;
}

/** A Qwen-architecture decoder configuration (Hugging Face key names). */
export interface QwenConfig {
  /** `qwen3` (QK-norm, no attention bias by default) or `qwen2` (q/k/v bias, no QK-norm). */
  model_type: "qwen3" | "qwen2";
  /** Width of the residual stream (C). */
  hidden_size: number;
  /** Width of the SwiGLU hidden layer. */
  intermediate_size: number;
  /** Number of decoder blocks. */
  num_hidden_layers: number;
  /** Query heads. */
  num_attention_heads: number;
  /** Key/value heads (grouped-query attention); divides `num_attention_heads`. */
  num_key_value_heads: number;
  /** Width of one head. */
  head_dim: number;
  /** Vocabulary size (V). */
  vocab_size: number;
  /** Longest sequence the rotary tables cover. */
  max_position_embeddings: number;
  /** RMSNorm epsilon. */
  rms_norm_eps: number;
  /** RoPE base frequency. */
  rope_theta: number;
  /** Whether `lm_head` reuses `embed_tokens` (then no `lm_head.weight` is stored). */
  tie_word_embeddings: boolean;
  /** Whether q/k/v projections have biases (HF default: true for qwen2, false for qwen3). */
  attention_bias: boolean;
  /** jackpot's own record (absent in configs from elsewhere). */
  jackpot?: JackpotInfo;
  /** Keys this project does not interpret, kept verbatim (e.g. `torch_dtype`, `rope_scaling`). */
  extra: Record<string, JsonValue>;
}

/**
 * The keys that must be present in every config.json. `head_dim` and `tie_word_embeddings` may
 * be absent, as in many Qwen2 configs: transformers then uses hidden_size / num_attention_heads
 * (integer division) and the Qwen classes' default, untied, and so does `parseQwenConfig`.
 */
export const REQUIRED_CONFIG_KEYS = [
  "hidden_size",
  "intermediate_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "vocab_size",
  "max_position_embeddings",
  "rms_norm_eps",
  "rope_theta",
] as const;

const INT_KEYS = [
  ...REQUIRED_CONFIG_KEYS.filter((k) => k !== "rms_norm_eps" && k !== "rope_theta"),
  "head_dim",
] as const;
const KNOWN_KEYS = new Set<string>([
  ...INT_KEYS,
  "rms_norm_eps",
  "rope_theta",
  "tie_word_embeddings",
  "model_type",
  "attention_bias",
  "jackpot",
  // Derived from model_type when written; a stale value read from a file is not kept.
  "architectures",
]);

/**
 * A config from a parsed config.json object, checked: every required key present with the right
 * type, sizes positive integers, heads divisible. `file` names the file in errors.
 */
export function parseQwenConfig(json: unknown, file = "config.json"): QwenConfig {
  const fail = (problem: string): never => {
    throw new CheckpointError(file, problem);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return fail("config is not a JSON object");
  }
  const o = withTransformersDefaults(
    ropeThetaFromParameters(json as Record<string, JsonValue>, fail),
  );
  const missing = REQUIRED_CONFIG_KEYS.filter((k) => !Object.hasOwn(o, k));
  if (missing.length > 0) {
    fail(
      `missing config key${missing.length > 1 ? "s" : ""} ${
        missing.map((k) => `'${k}'`).join(", ")
      }`,
    );
  }
  for (const k of INT_KEYS) {
    const v = o[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
      fail(`config key '${k}' must be a positive integer, got ${JSON.stringify(v)}`);
    }
  }
  for (const k of ["rms_norm_eps", "rope_theta"] as const) {
    const v = o[k];
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
      fail(`config key '${k}' must be a positive number, got ${JSON.stringify(v)}`);
    }
  }
  if (typeof o.tie_word_embeddings !== "boolean") {
    fail(
      `config key 'tie_word_embeddings' must be true or false, got ${
        JSON.stringify(o.tie_word_embeddings)
      }`,
    );
  }
  const modelType = o.model_type ?? "qwen3";
  if (modelType !== "qwen3" && modelType !== "qwen2") {
    fail(`config key 'model_type' must be 'qwen3' or 'qwen2', got ${JSON.stringify(modelType)}`);
  }
  const bias = o.attention_bias ?? modelType === "qwen2";
  if (typeof bias !== "boolean") {
    fail(`config key 'attention_bias' must be true or false, got ${JSON.stringify(bias)}`);
  }
  const heads = o.num_attention_heads as number;
  const kvHeads = o.num_key_value_heads as number;
  if (heads % kvHeads !== 0) {
    fail(`num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`);
  }
  let jackpot: JackpotInfo | undefined;
  if (o.jackpot !== undefined) {
    const j = o.jackpot;
    if (typeof j !== "object" || j === null || Array.isArray(j)) {
      fail("config key 'jackpot' must be an object");
    }
    const info = j as JackpotInfo;
    if (info.task !== undefined && typeof info.task !== "string") {
      fail(`jackpot.task must be a task spec string, got ${JSON.stringify(info.task)}`);
    }
    if (
      info.step !== undefined && !(Number.isSafeInteger(info.step) && (info.step as number) >= 0)
    ) {
      fail(`jackpot.step must be an integer >= 0, got ${JSON.stringify(info.step)}`);
    }
    jackpot = { ...info };
  }
  const extra: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(o)) if (!KNOWN_KEYS.has(k)) extra[k] = v;
  const num = (k: (typeof INT_KEYS)[number] | "rms_norm_eps" | "rope_theta") => o[k] as number;
  return {
    model_type: modelType as QwenConfig["model_type"],
    hidden_size: num("hidden_size"),
    intermediate_size: num("intermediate_size"),
    num_hidden_layers: num("num_hidden_layers"),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: num("head_dim"),
    vocab_size: num("vocab_size"),
    max_position_embeddings: num("max_position_embeddings"),
    rms_norm_eps: num("rms_norm_eps"),
    rope_theta: num("rope_theta"),
    tie_word_embeddings: o.tie_word_embeddings as boolean,
    attention_bias: bias as boolean,
    ...(jackpot ? { jackpot } : {}),
    extra,
  };
}

/**
 * `o` with what transformers assumes for two keys a config may leave out: `head_dim` =
 * hidden_size // num_attention_heads (when both are numbers; otherwise their own checks report
 * them) and `tie_word_embeddings` = false (Qwen2Config's and Qwen3Config's default).
 */
function withTransformersDefaults(o: Record<string, JsonValue>): Record<string, JsonValue> {
  const out = { ...o };
  const { hidden_size: h, num_attention_heads: n } = o;
  if (!Object.hasOwn(o, "head_dim") && typeof h === "number" && typeof n === "number" && n > 0) {
    out.head_dim = Math.floor(h / n);
  }
  if (!Object.hasOwn(o, "tie_word_embeddings")) out.tie_word_embeddings = false;
  return out;
}

/**
 * transformers 5 writes RoPE as `rope_parameters: {rope_theta, rope_type, …}` and no top-level
 * `rope_theta`: take it from there (the object itself stays among the extras, for the model to
 * check its `rope_type`). Returns `o`, or a copy with `rope_theta` filled in.
 */
function ropeThetaFromParameters(
  o: Record<string, JsonValue>,
  fail: (problem: string) => never,
): Record<string, JsonValue> {
  const rp = o.rope_parameters;
  if (typeof rp !== "object" || rp === null || Array.isArray(rp) || !("rope_theta" in rp)) {
    return o;
  }
  if (!Object.hasOwn(o, "rope_theta")) return { ...o, rope_theta: rp.rope_theta };
  if (o.rope_theta !== rp.rope_theta) {
    fail(
      `rope_theta (${JSON.stringify(o.rope_theta)}) and rope_parameters.rope_theta ` +
        `(${JSON.stringify(rp.rope_theta)}) differ`,
    );
  }
  return o;
}

/** The config.json object of `config` (extras first, then the known keys, then `jackpot`). */
export function qwenConfigToJson(config: QwenConfig): Record<string, JsonValue> {
  const { extra, jackpot, ...known } = config;
  const out: Record<string, JsonValue> = {
    architectures: [config.model_type === "qwen2" ? "Qwen2ForCausalLM" : "Qwen3ForCausalLM"],
    ...extra,
    ...known,
  };
  if (jackpot) {
    const j: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(jackpot)) if (v !== undefined) j[k] = v;
    out.jackpot = j;
  }
  return out;
}

/** The sizes a caller must choose; everything else has a Qwen3-style default. */
export interface QwenSizes {
  /** Vocabulary size. */
  vocab_size: number;
  /** Residual width. */
  hidden_size: number;
  /** Decoder blocks. */
  num_hidden_layers: number;
  /** Query heads. */
  num_attention_heads: number;
}

/**
 * A complete config from the sizes, with defaults: key/value heads = query heads, head_dim =
 * hidden / heads, intermediate = 3 × hidden (rounded up to a multiple of 8), 2,048 positions,
 * eps 1e-6, RoPE theta 1e6, tied embeddings, qwen3 (QK-norm, no bias).
 *
 * @example
 * ```ts
 * const cfg = makeQwenConfig({ vocab_size: 1028, hidden_size: 128, num_hidden_layers: 4, num_attention_heads: 4 });
 * ```
 */
export function makeQwenConfig(
  sizes: QwenSizes & Partial<Omit<QwenConfig, keyof QwenSizes>>,
): QwenConfig {
  const headDim = sizes.head_dim ?? Math.floor(sizes.hidden_size / sizes.num_attention_heads);
  const json: Record<string, JsonValue> = {
    model_type: "qwen3",
    num_key_value_heads: sizes.num_attention_heads,
    head_dim: headDim,
    intermediate_size: Math.ceil((3 * sizes.hidden_size) / 8) * 8,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    tie_word_embeddings: true,
    ...qwenConfigToJson({ extra: {}, ...sizes } as QwenConfig),
  };
  delete json.architectures;
  return parseQwenConfig(json, "<makeQwenConfig>");
}
