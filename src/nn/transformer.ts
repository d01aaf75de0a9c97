/**
 * The decoder-only Qwen-style transformer: token embedding, L blocks of (RMSNorm → grouped-query
 * attention with optional QK-norm and RoPE → residual, RMSNorm → SwiGLU MLP → residual), a final
 * RMSNorm and the classifier (tied to the embedding or not). Every op is an autograd op from
 * src/autograd, so `loss(...).backward()` gives every parameter's gradient.
 *
 * Weights use the Hugging Face layout (`nn.Linear`: `[out, in]`, `y = x·Wᵀ`) and names
 * (`qwenLayerNames`), so a checkpoint written here loads in `transformers` and back. Inside, each
 * block keeps q_proj, k_proj and v_proj stacked as one `[(heads + 2·kvHeads)·D, C]` parameter and
 * gate_proj and up_proj as one `[2I, C]` (src/nn/params.ts): one matmul computes q, k and v (split
 * into contiguous pieces in one dispatch) and one computes gate and up (read joined by the SwiGLU
 * kernel), and their backward is one product for the input's gradient and one for the weight's,
 * where separate products took three (two) of each plus the adds of the input's gradients. The HF
 * tensors are row views of the joined ones ({@link Transformer.namedParameters}), so checkpoints
 * are unchanged. With `attentionBias` (Qwen2) the q/k/v biases, joined the same way, are added
 * by the kernel that splits the projection into heads (ops.qkvNormRope; in a decode step the
 * attention kernel that reads the projection): no dispatch of their own forward.
 *
 * @module
 */
import { noGrad, ops } from "../autograd/mod.ts";
import { randn, readAll, type Tensor, tensor, zeros } from "../tensor/mod.ts";
import {
  type Checkpoint,
  type HostTensor,
  qwenBiasNames,
  type QwenConfig,
  qwenTensorSpecs,
} from "./checkpoint/mod.ts";
import { fromQwenConfig, type ModelConfig, toQwenConfig, validateModelConfig } from "./config.ts";
import {
  type BlockParams,
  layoutParameters,
  namedParameters,
  type ParameterLayout,
  parameterShapes,
} from "./params.ts";

export type { BlockParams } from "./params.ts";

const {
  add,
  addRmsNorm,
  addRmsNormMatmul,
  causalSelfAttention,
  crossEntropy,
  embedding,
  matmul,
  qkvNormRope,
  reshape,
  rmsNorm,
  swigluMatmul,
  transpose,
} = ops;

/** Options of {@link Transformer.init}. */
export interface InitOptions {
  /** Seed of the parameter draws. */
  seed: number;
  /** Std of the weight matrices; default 0.02 (output projections get std/√(2L), GPT-2 style). */
  std?: number;
}

/** q, k, v of one block for `h` [B, T, C] at positions `offset..offset+T-1` (RoPE and QK-norm applied). */
export interface Qkv {
  /** `[B, T, heads, D]`. */
  q: Tensor;
  /** `[B, T, kvHeads, D]`. */
  k: Tensor;
  /** `[B, T, kvHeads, D]`. */
  v: Tensor;
}

/**
 * A layer's attention inside {@link Transformer.blocksOver}: a function of q, k, v (after QK-norm
 * and RoPE), or `{ joined }`, a function of the joined projection `[B, T, (heads + 2·kvHeads)·D]`
 * before them, for a decode kernel that normalises and rotates q and k itself. Either returns the
 * attention output `[B, T, heads·D]`.
 */
export type Attend =
  | ((layer: number, q: Tensor, k: Tensor, v: Tensor) => Tensor)
  | { joined: (layer: number, block: BlockParams, qkv: Tensor) => Tensor };

// The residual stream inside the blocks: `x` plus the last branch's output `r` not yet added to
// it (null: none). The add is left to whichever op reads the sum next, fused with its norm (and,
// in a decode step, with the projection of that norm).
interface Residual {
  x: Tensor;
  r: Tensor | null;
}

/**
 * A Qwen-style decoder. Parameters are GPU tensors with `requiresGrad`.
 *
 * @example
 * ```ts
 * const model = Transformer.init(modelConfig("tiny", task.tokenizer.vocabSize), { seed: 1 });
 * const loss = tidy(() => { const l = model.loss(tokens, targets); l.backward(); return l; });
 * ```
 */
export class Transformer {
  /** The configuration. */
  readonly config: ModelConfig;
  /** Token embedding `[V, C]`. */
  readonly embed: Tensor;
  /** Decoder blocks. */
  readonly blocks: readonly BlockParams[];
  /** Final RMSNorm `[C]`. */
  readonly finalNorm: Tensor;
  /** Classifier `[V, C]`, or null when tied to {@link embed}. */
  readonly lmHead: Tensor | null;

  // The trained parameters and their views (src/nn/params.ts).
  readonly #layout: ParameterLayout;

  /**
   * Takes ownership of `hf` (HF name → tensor, every name of {@link shapes}); null allocates the
   * parameters without values.
   */
  private constructor(config: ModelConfig, hf: Map<string, Tensor> | null) {
    this.config = config;
    const p = layoutParameters(config, hf);
    this.#layout = p;
    this.embed = p.embed;
    this.blocks = p.blocks;
    this.finalNorm = p.finalNorm;
    this.lmHead = p.lmHead;
  }

  /**
   * The expected parameters: HF name → shape, in checkpoint order (q/k/v biases with
   * `attentionBias` only).
   */
  static shapes(config: ModelConfig): Map<string, number[]> {
    return parameterShapes(config);
  }

  /**
   * A model whose parameters are allocated in their final layout but hold undefined values, for a
   * loader that writes every one of them in place through {@link namedParameters} (src/nn/load.ts
   * streams a checkpoint folder this way, one tensor at a time).
   */
  static allocate(config: ModelConfig): Transformer {
    return new Transformer(validateModelConfig(config), null);
  }

  /**
   * A freshly initialised model: norms at 1, biases at 0, matrices N(0, std²) from
   * `uniformAt(seed, i, ·)`.
   */
  static init(config: ModelConfig, opts: InitOptions): Transformer {
    const std = opts.std ?? 0.02;
    const named = new Map<string, Tensor>();
    let stream = 0;
    const residualStd = std / Math.sqrt(2 * config.layers);
    for (const [name, shape] of Transformer.shapes(config)) {
      stream++;
      if (name.endsWith(".bias")) {
        named.set(name, zeros(shape));
      } else if (shape.length === 1) {
        named.set(name, tensor(new Float32Array(shape[0]).fill(1), shape));
      } else {
        const s = /o_proj|down_proj/.test(name) ? residualStd : std;
        named.set(name, randn(shape, { seed: opts.seed, stream, std: s }));
      }
    }
    return new Transformer(config, named);
  }

  /**
   * A model from HF-named host tensors (a loaded checkpoint, or {@link toCheckpoint}'s); shapes
   * and dtypes are checked. From a {@link QwenConfig} the model has `attentionBias` as
   * `fromQwenConfig(config, tensors)` says: a qwen2 checkpoint whose q/k/v biases are all zero
   * loads as a model without them (the same function), any nonzero one as a model with them.
   * Every bias the config names must be there with its shape, zero or not.
   */
  static fromTensors(
    config: QwenConfig | ModelConfig,
    tensors: ReadonlyMap<string, HostTensor>,
  ): Transformer {
    let c: ModelConfig;
    if ("hidden_size" in config) {
      const shapes = new Map(qwenTensorSpecs(config).map((t) => [t.name, t.shape]));
      for (const name of qwenBiasNames(config)) checkTensor(name, shapes.get(name)!, tensors);
      c = fromQwenConfig(config, tensors);
    } else c = validateModelConfig(config);
    const named = new Map<string, Tensor>();
    for (const [name, shape] of Transformer.shapes(c)) {
      named.set(name, tensor(checkTensor(name, shape, tensors), shape));
    }
    return new Transformer(c, named);
  }

  /**
   * Parameters by HF name, in checkpoint order. The projections are row views of the joined
   * parameters ({@link BlockParams}): read them, or write them in place, but train
   * {@link parameters}.
   */
  namedParameters(): Map<string, Tensor> {
    return namedParameters(this.config, this.#layout);
  }

  /**
   * The gradients by HF name after `backward()`, in checkpoint order: views of the parameters'
   * `.grad` (rows of the joined projections' gradients), made in the current scope; null for a
   * parameter without a gradient yet.
   */
  namedGradients(): Map<string, Tensor | null> {
    const out = new Map<string, Tensor | null>();
    for (const [name, t] of this.namedParameters()) {
      const owner = this.#layout.params.find((p) =>
        p.storage === t.storage && t.offset >= p.offset && t.offset + t.size <= p.offset + p.size
      )!;
      const g = owner.grad;
      out.set(
        name,
        g && g.viewAs(t.shape, t.strides, g.offset + (t.offset - owner.offset), "grad"),
      );
    }
    return out;
  }

  /** Every trained parameter (for the optimizer): the joined projections, not their HF views. */
  parameters(): Tensor[] {
    return [...this.#layout.params];
  }

  /**
   * The projections, QK-norm and RoPE of block `b` for `h` [B, T, C] starting at position `offset`:
   * one matmul against the joined [q; k; v] weight, then one kernel each way that splits its
   * output into heads (adding the q/k/v bias, with one), normalises and rotates q and k and copies
   * v (ops.qkvNormRope).
   */
  qkv(b: BlockParams, h: Tensor, offset: number): Qkv {
    return this.#heads(b, this.qkvJoined(b, h), offset);
  }

  // q, k, v of block `b` from its joined projection (QK-norm and RoPE at `offset`).
  #heads(b: BlockParams, joined: Tensor, offset: number): Qkv {
    const c = this.config;
    return qkvNormRope(joined, b.qNorm, b.kNorm, {
      bias: b.bQkv,
      heads: c.heads,
      kvHeads: c.kvHeads,
      headDim: c.headDim,
      eps: c.normEps,
      offset,
      base: c.ropeTheta,
    });
  }

  /**
   * The joined q/k/v projection of `h` [B, T, C] by block `b`: `[B, T, (heads + 2·kvHeads)·D]`,
   * without the bias (`b.bQkv`): whichever kernel splits it into heads adds that.
   */
  qkvJoined(b: BlockParams, h: Tensor): Tensor {
    return matmul(h, transpose(b.wQkv));
  }

  /** SwiGLU MLP of block `b`: `down(silu(gate·h) ⊙ up·h)`, gate and up from one product. */
  mlp(b: BlockParams, h: Tensor): Tensor {
    return this.#down(b, matmul(h, transpose(b.wGateUp)));
  }

  // The MLP of block `b` after its joined gate/up projection: SwiGLU and the down projection.
  #down(b: BlockParams, gateUp: Tensor): Tensor {
    return swigluMatmul(gateUp, transpose(b.wDown));
  }

  /** The classifier on the residual stream `x` [..., C] → logits [..., V]. */
  head(x: Tensor): Tensor {
    return this.classify(rmsNorm(x, this.finalNorm, this.config.normEps));
  }

  /** Logits [..., V] from rows `h` [..., C] that are already through the final RMSNorm. */
  classify(h: Tensor): Tensor {
    return matmul(h, transpose(this.lmHead ?? this.embed));
  }

  /**
   * Residual stream after every block for i32 `tokens` [B, T] (positions 0..T-1). `onKv` sees each
   * layer's keys and values `[B, T, kvHeads, D]` (after QK-norm and RoPE): the KV-cache prefill.
   */
  hidden(tokens: Tensor, onKv?: (layer: number, k: Tensor, v: Tensor) => void): Tensor {
    return this.#stream(tokens, onKv, false);
  }

  /** Logits [B, T, V] for i32 `tokens` [B, T]. */
  forward(tokens: Tensor): Tensor {
    return this.classify(this.#stream(tokens, undefined, true));
  }

  // Checks `tokens` and runs the blocks over their embedding with causal self-attention.
  #stream(
    tokens: Tensor,
    onKv: ((layer: number, k: Tensor, v: Tensor) => void) | undefined,
    finalNormed: boolean,
  ): Tensor {
    const c = this.config;
    if (tokens.rank !== 2) {
      throw new RangeError(`transformer: tokens must be [B, T], got ${tokens.describe()}`);
    }
    const [B, T] = tokens.shape;
    if (T > c.maxSeqLen) {
      throw new RangeError(`transformer: sequence length ${T} exceeds maxSeqLen ${c.maxSeqLen}`);
    }
    const attend = (l: number, q: Tensor, k: Tensor, v: Tensor) => {
      onKv?.(l, k, v);
      return reshape(causalSelfAttention(q, k, v), [B, T, c.heads * c.headDim]);
    };
    return this.blocksOver(embedding(this.embed, tokens), 0, attend, finalNormed);
  }

  /**
   * Every block over the residual stream `x` [B, T, C] at positions `offset..`, with `attend`
   * giving a layer's attention output [B, T, heads·D] (causal attention in training, the KV cache
   * in a decode step; see {@link Attend}). Returns the residual stream after the last block, or
   * with `finalNormed` that stream through the final RMSNorm. Each residual add is fused with the
   * RMSNorm that reads its sum (the block's post-attention norm, the next block's input norm, the
   * final norm): one dispatch where add + rmsNorm took two. (A decode step takes
   * {@link logitsOver}, which also folds them into the projections that read them.)
   */
  blocksOver(
    x: Tensor,
    offset: number,
    attend: Attend,
    finalNormed: boolean,
  ): Tensor {
    const eps = this.config.normEps;
    const { x: s, r } = this.#blocks(x, offset, attend, false);
    if (!finalNormed) return r ? add(s, r) : s;
    return r ? addRmsNorm(s, r, this.finalNorm, eps).normed : rmsNorm(s, this.finalNorm, eps);
  }

  /**
   * Logits [B, T, V] of the residual stream `x` [B, T, C] after every block: {@link blocksOver}
   * then the final RMSNorm and {@link classify}, for a decode step ({@link decodeStep}). Every
   * residual add and RMSNorm (input, post-attention, final) goes into the product that reads it
   * (q/k/v, gate/up, classifier) where ops.addRmsNormMatmul fuses: no gradient and few rows on a
   * GPU adapter, 2·layers + 1 dispatches fewer; anywhere else the same ops as blocksOver.
   */
  logitsOver(x: Tensor, offset: number, attend: Attend): Tensor {
    const { x: s, r } = this.#blocks(x, offset, attend, undefined);
    const head = transpose(this.lmHead ?? this.embed);
    return addRmsNormMatmul(s, r, this.finalNorm, head, this.config.normEps).out;
  }

  // The blocks over `x`, leaving the last MLP's output unadded (see Residual). Each norm and the
  // projection that reads it is one ops.addRmsNormMatmul, with `fused` as its option: false (the
  // training forward and the prefill) runs addRmsNorm (or rmsNorm) then matmul, the dispatches and
  // kernels of those ops written out; undefined lets the op fuse where it can (a decode step).
  #blocks(x: Tensor, offset: number, attend: Attend, fused: false | undefined): Residual {
    const eps = this.config.normEps;
    const opts = { fused };
    let res: Residual = { x, r: null };
    for (const [l, b] of this.blocks.entries()) {
      const wQkv = transpose(b.wQkv);
      const { sum, out: qkv } = addRmsNormMatmul(res.x, res.r, b.inputNorm, wQkv, eps, opts);
      let att: Tensor;
      if (typeof attend === "function") {
        const { q, k, v } = this.#heads(b, qkv, offset);
        att = attend(l, q, k, v);
      } else {
        att = attend.joined(l, b, qkv);
      }
      const post = addRmsNormMatmul(
        sum,
        matmul(att, transpose(b.wo)),
        b.postNorm,
        transpose(b.wGateUp),
        eps,
        opts,
      );
      res = { x: post.sum, r: this.#down(b, post.out) };
    }
    return res;
  }

  /**
   * Mean next-token cross-entropy (fused: the probabilities are never stored) of `tokens` [B, T]
   * against i32 `targets` [B, T]; targets equal to `ignoreIndex` (default -1) are skipped.
   */
  loss(tokens: Tensor, targets: Tensor, ignoreIndex = -1): Tensor {
    return crossEntropy(this.forward(tokens), targets, { ignoreIndex });
  }

  /** The weights as host tensors with the HF config (one readback), ready for `saveCheckpoint`. */
  async toCheckpoint(jackpot?: QwenConfig["jackpot"]): Promise<Checkpoint> {
    const named = this.namedParameters();
    const data = await noGrad(() => readAll([...named.values()]));
    const read = new Map([...named.keys()].map((name, i) => [name, data[i] as Float32Array]));
    const config = toQwenConfig(this.config);
    // In checkpoint order. transformers' Qwen2 always has q/k/v biases: a model without
    // attentionBias writes them as zeros, which change nothing; so are the o_proj biases that
    // transformers' Qwen3 has with attention_bias.
    const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    for (const { name, shape } of qwenTensorSpecs(config)) {
      const data = read.get(name) ?? (name.endsWith(".bias") ? new Float32Array(shape[0]) : null);
      if (!data) throw new Error(`toCheckpoint: no parameter for ${name}`); // a names.ts bug
      tensors.set(name, { shape, data });
    }
    return { config: { ...config, jackpot }, tensors };
  }

  /** Frees every parameter (and its gradient, and the HF views of the joined ones). */
  dispose(): void {
    for (const t of this.#layout.params) t.dispose();
  }
}

// The float data of `name` in `tensors`, checked against `shape`; one sentence on what is wrong.
function checkTensor(
  name: string,
  shape: readonly number[],
  tensors: ReadonlyMap<string, HostTensor>,
): Float32Array {
  const t = tensors.get(name);
  if (!t) throw new Error(`checkpoint: tensor ${name} is missing`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`checkpoint: ${name} has shape [${t.shape}], the config needs [${shape}]`);
  }
  if (!(t.data instanceof Float32Array)) {
    throw new Error(`checkpoint: ${name} is not floating point`);
  }
  return t.data;
}
