/**
 * The transformer's parameters: the Hugging Face names and shapes a config implies, and their
 * layout on the GPU. Each block keeps q_proj, k_proj and v_proj stacked as one
 * `[(heads + 2·kvHeads)·D, C]` parameter (and their biases, with `attentionBias`, as one
 * `[(heads + 2·kvHeads)·D]`), and gate_proj and up_proj as one `[2I, C]`; the HF tensors are row
 * views of the joined ones, so checkpoints keep the HF names and shapes. Every parameter is a
 * slice of one arena where it fits one storage binding (AdamW then updates them all with one
 * dispatch, src/autograd/optim_packed.ts).
 *
 * @module
 */
import {
  arenaCapacity,
  arenaLayout,
  copyInto,
  empty,
  keep,
  packTensors,
  type Tensor,
} from "../tensor/mod.ts";
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD, qwenLayerNames } from "./checkpoint/mod.ts";
import { type ModelConfig, toQwenConfig, validateModelConfig } from "./config.ts";

/**
 * The parameters of one decoder block (HF layout). `wQkv`, `bQkv` and `wGateUp` are the trained
 * parameters; `wq`, `wk`, `wv`, `bq`, `bk`, `bv`, `wGate` and `wUp` are views of their rows (the HF
 * tensors), which read and write the same memory but get no gradient of their own.
 */
export interface BlockParams {
  /** RMSNorm before attention `[C]`. */
  inputNorm: Tensor;
  /** q_proj, k_proj and v_proj stacked: `[(heads + 2·kvHeads)·D, C]`. */
  wQkv: Tensor;
  /** Rows of {@link wQkv}: `[heads·D, C]`. */
  wq: Tensor;
  /** Rows of {@link wQkv}: `[kvHeads·D, C]`. */
  wk: Tensor;
  /** Rows of {@link wQkv}: `[kvHeads·D, C]`. */
  wv: Tensor;
  /**
   * The q, k and v biases stacked like {@link wQkv}: `[(heads + 2·kvHeads)·D]`, added to the
   * projection before QK-norm and RoPE (null without `attentionBias`).
   */
  bQkv: Tensor | null;
  /** Elements of {@link bQkv}: `[heads·D]`. */
  bq: Tensor | null;
  /** Elements of {@link bQkv}: `[kvHeads·D]`. */
  bk: Tensor | null;
  /** Elements of {@link bQkv}: `[kvHeads·D]`. */
  bv: Tensor | null;
  /** `[C, heads·D]`. */
  wo: Tensor;
  /** Per-head query RMSNorm `[D]` (qkNorm). */
  qNorm: Tensor | null;
  /** Per-head key RMSNorm `[D]` (qkNorm). */
  kNorm: Tensor | null;
  /** RMSNorm before the MLP `[C]`. */
  postNorm: Tensor;
  /** gate_proj and up_proj stacked: `[2I, C]`. */
  wGateUp: Tensor;
  /** Rows of {@link wGateUp}, the SwiGLU gate: `[I, C]`. */
  wGate: Tensor;
  /** Rows of {@link wGateUp}, the SwiGLU up projection: `[I, C]`. */
  wUp: Tensor;
  /** SwiGLU down `[C, I]`. */
  wDown: Tensor;
}

/** Every parameter of a model, as {@link layoutParameters} lays them out. */
export interface ParameterLayout {
  /** The trained parameters, in the arena's order (the HF order, with joined projections). */
  params: Tensor[];
  /** Token embedding `[V, C]`. */
  embed: Tensor;
  /** Decoder blocks. */
  blocks: BlockParams[];
  /** Final RMSNorm `[C]`. */
  finalNorm: Tensor;
  /** Classifier `[V, C]`, or null when tied to the embedding. */
  lmHead: Tensor | null;
}

/**
 * The expected parameters of a model: HF name → shape, in checkpoint order (the q/k/v biases
 * with `attentionBias` only: a qwen2 checkpoint of a model without them holds zeros, which are
 * not parameters).
 *
 * @example
 * ```ts
 * for (const [name, shape] of parameterShapes(cfg)) console.log(name, shape);
 * ```
 */
export function parameterShapes(config: ModelConfig): Map<string, number[]> {
  const c = validateModelConfig(config);
  const q = toQwenConfig(c);
  const { hidden: C, heads, kvHeads, headDim: D, intermediate: I, vocabSize: V } = c;
  const m = new Map<string, number[]>([[EMBED_TOKENS, [V, C]]]);
  for (let i = 0; i < c.layers; i++) {
    const n = qwenLayerNames(q, i);
    m.set(n.inputLayernorm, [C]);
    m.set(n.qProj, [heads * D, C]);
    if (c.attentionBias) m.set(n.qBias!, [heads * D]);
    m.set(n.kProj, [kvHeads * D, C]);
    if (c.attentionBias) m.set(n.kBias!, [kvHeads * D]);
    m.set(n.vProj, [kvHeads * D, C]);
    if (c.attentionBias) m.set(n.vBias!, [kvHeads * D]);
    m.set(n.oProj, [C, heads * D]);
    if (n.qNorm) m.set(n.qNorm, [D]);
    if (n.kNorm) m.set(n.kNorm, [D]);
    m.set(n.postAttentionLayernorm, [C]);
    m.set(n.gateProj, [I, C]);
    m.set(n.upProj, [I, C]);
    m.set(n.downProj, [C, I]);
  }
  m.set(FINAL_NORM, [C]);
  if (!c.tiedEmbeddings) m.set(LM_HEAD, [V, C]);
  return m;
}

// `parts` [r_i, ...] stacked along the first axis into one new [Σr_i, ...] tensor (one copy
// each, none when `copy` is false: parts without values); the parts are disposed.
function joinRows(parts: Tensor[], copy: boolean): Tensor {
  const inner = parts[0].shape.slice(1);
  const n = inner.reduce((p, d) => p * d, 1);
  const out = empty([parts.reduce((s, t) => s + t.shape[0], 0), ...inner], "f32", "parameter");
  let row = 0;
  for (const t of parts) {
    if (copy) copyInto(t, out, out.strides, row * n);
    row += t.shape[0];
    t.dispose();
  }
  return out;
}

// Rows start..start+count-1 of the [R, C] (or [R]) parameter `w`, a view that outlives any scope.
function rows(w: Tensor, start: number, count: number): Tensor {
  const inner = w.shape.slice(1), n = inner.reduce((p, d) => p * d, 1);
  return keep(w.viewAs([count, ...inner], w.strides, w.offset + start * n, "parameter"));
}

/**
 * Lays out the parameters of `config` from `hf` (HF name → tensor, every name of
 * {@link parameterShapes}; taken over: the joined projections' parts are released as they are
 * copied in), keeps them and marks them `requiresGrad`. With `hf` null the parameters are
 * allocated in the same layout with undefined values, for a loader that writes each one in place.
 */
export function layoutParameters(
  config: ModelConfig,
  hf: Map<string, Tensor> | null,
): ParameterLayout {
  const q = toQwenConfig(config);
  const shapes = hf ? null : parameterShapes(config);
  const take = (n: string | undefined) => {
    const t = n === undefined
      ? undefined
      : hf
      ? hf.get(n)
      : empty(shapes!.get(n)!, "f32", "parameter");
    if (!t) throw new Error(`transformer: missing parameter ${n}`);
    return t;
  };
  const join = (parts: Tensor[]) => joinRows(parts, hf !== null);
  // The joined projections first, then one arena for every parameter: each is bound as a slice
  // of it. An arena must fit one storage binding: a larger model keeps one buffer per parameter
  // (and AdamW its per-parameter path).
  let params: Tensor[] = [take(EMBED_TOKENS)];
  const slots = Array.from({ length: config.layers }, (_, i) => {
    const n = qwenLayerNames(q, i);
    const at = (t: Tensor) => params.push(t) - 1;
    return {
      inputNorm: at(take(n.inputLayernorm)),
      wQkv: at(join([take(n.qProj), take(n.kProj), take(n.vProj)])),
      bQkv: config.attentionBias ? at(join([take(n.qBias), take(n.kBias), take(n.vBias)])) : -1,
      wo: at(take(n.oProj)),
      qNorm: n.qNorm ? at(take(n.qNorm)) : -1,
      kNorm: n.kNorm ? at(take(n.kNorm)) : -1,
      postNorm: at(take(n.postAttentionLayernorm)),
      wGateUp: at(join([take(n.gateProj), take(n.upProj)])),
      wDown: at(take(n.downProj)),
    };
  });
  params.push(take(FINAL_NORM));
  if (!config.tiedEmbeddings) params.push(take(LM_HEAD));
  if (arenaLayout(params.map((t) => t.size)).length <= arenaCapacity()) {
    const packed = packTensors(params, "parameter");
    for (const t of params) t.dispose();
    params = packed;
  }
  for (const t of params) {
    keep(t); // parameters outlive any tidy scope they were created in
    t.requiresGrad = true;
  }
  const last = params.length - 1;
  const { heads, kvHeads, headDim: D, intermediate: I } = config;
  // the q, k, v rows of a joined [q; k; v] parameter, which takes them along when disposed
  const qkvRows = (w: Tensor) => {
    const views = [
      rows(w, 0, heads * D),
      rows(w, heads * D, kvHeads * D),
      rows(w, (heads + kvHeads) * D, kvHeads * D),
    ];
    w.adopt(views);
    return views;
  };
  const blocks = slots.map((s): BlockParams => {
    const wQkv = params[s.wQkv], wGateUp = params[s.wGateUp];
    const bQkv = s.bQkv >= 0 ? params[s.bQkv] : null;
    const [wq, wk, wv] = qkvRows(wQkv);
    const [bq, bk, bv] = bQkv ? qkvRows(bQkv) : [null, null, null];
    const [wGate, wUp] = [rows(wGateUp, 0, I), rows(wGateUp, I, I)];
    wGateUp.adopt([wGate, wUp]);
    return {
      inputNorm: params[s.inputNorm],
      wQkv,
      wq,
      wk,
      wv,
      bQkv,
      bq,
      bk,
      bv,
      wo: params[s.wo],
      qNorm: s.qNorm >= 0 ? params[s.qNorm] : null,
      kNorm: s.kNorm >= 0 ? params[s.kNorm] : null,
      postNorm: params[s.postNorm],
      wGateUp,
      wGate,
      wUp,
      wDown: params[s.wDown],
    };
  });
  return {
    params,
    embed: params[0],
    blocks,
    finalNorm: params[config.tiedEmbeddings ? last : last - 1],
    lmHead: config.tiedEmbeddings ? null : params[last],
  };
}

/**
 * The parameters of a layout by HF name, in checkpoint order: the projections (and biases) are
 * the row views of the joined parameters.
 */
export function namedParameters(config: ModelConfig, p: ParameterLayout): Map<string, Tensor> {
  const q = toQwenConfig(config);
  const m = new Map<string, Tensor>([[EMBED_TOKENS, p.embed]]);
  p.blocks.forEach((b, i) => {
    const n = qwenLayerNames(q, i);
    m.set(n.inputLayernorm, b.inputNorm);
    m.set(n.qProj, b.wq);
    if (b.bq && n.qBias) m.set(n.qBias, b.bq);
    m.set(n.kProj, b.wk);
    if (b.bk && n.kBias) m.set(n.kBias, b.bk);
    m.set(n.vProj, b.wv);
    if (b.bv && n.vBias) m.set(n.vBias, b.bv);
    m.set(n.oProj, b.wo);
    if (n.qNorm && b.qNorm) m.set(n.qNorm, b.qNorm);
    if (n.kNorm && b.kNorm) m.set(n.kNorm, b.kNorm);
    m.set(n.postAttentionLayernorm, b.postNorm);
    m.set(n.gateProj, b.wGate);
    m.set(n.upProj, b.wUp);
    m.set(n.downProj, b.wDown);
  });
  m.set(FINAL_NORM, p.finalNorm);
  if (p.lmHead) m.set(LM_HEAD, p.lmHead);
  return m;
}
