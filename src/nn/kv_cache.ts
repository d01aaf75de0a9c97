/**
 * The KV cache, its prefill and one incremental decode step. The cache is allocated once,
 * `[B, kvHeads, Tmax, D]` per layer for keys and for values; the prefill writes positions `0..T-1`
 * and every decode step writes position `pos` of every row, so every row of a batch sits at the
 * same position (longer prompts are teacher-forced, see rollout.ts) and attention needs no
 * padding mask.
 *
 * @module
 */
import decodeSource from "../../kernels/nn_decode_attention.wgsl" with { type: "text" };
import { ops } from "../autograd/mod.ts";
import { grid, type Kernel } from "../gpu/mod.ts";
import {
  copyInto,
  empty,
  f32,
  keep,
  materialize,
  opScope,
  params,
  runtime,
  type Tensor,
} from "../tensor/mod.ts";
import type { Attend, BlockParams, Transformer } from "./transformer.ts";

const { matmul, mul, reshape, slice, softmax, transpose, embedding } = ops;

const decodeKernel: Kernel = { name: "nn_decode_attention", code: decodeSource };

/** Preallocated keys and values of every layer. */
export class KVCache {
  /** Rows. */
  readonly B: number;
  /** Positions. */
  readonly Tmax: number;
  /** Keys per layer, `[B, kvHeads, Tmax, D]`. */
  readonly k: readonly Tensor[];
  /** Values per layer, `[B, kvHeads, Tmax, D]`. */
  readonly v: readonly Tensor[];

  /** Allocates the cache for `model` (contents undefined until written). */
  constructor(model: Transformer, B: number, Tmax: number) {
    const c = model.config;
    if (Tmax > c.maxSeqLen) {
      throw new RangeError(
        `KV cache: ${Tmax} positions exceed the model's maxSeqLen ${c.maxSeqLen}`,
      );
    }
    this.B = B;
    this.Tmax = Tmax;
    const shape = [B, c.kvHeads, Tmax, c.headDim];
    this.k = Array.from({ length: c.layers }, () => keep(empty(shape, "f32", "kv cache k")));
    this.v = Array.from({ length: c.layers }, () => keep(empty(shape, "f32", "kv cache v")));
  }

  /**
   * Throws when the cache was not built for `model`'s shape (layers, kv heads, head size): a
   * cache of another model would be read and written out of place without an error.
   */
  expectModel(model: Transformer, where: string): void {
    const c = model.config;
    const [, hkv, , d] = this.k[0]?.shape ?? [0, c.kvHeads, 0, c.headDim];
    if (this.k.length !== c.layers || hkv !== c.kvHeads || d !== c.headDim) {
      throw new RangeError(
        `${where}: the KV cache holds ${this.k.length} layers of ${hkv} kv heads × ${d}, the model ` +
          `has ${c.layers} layers of ${c.kvHeads} kv heads × ${c.headDim}`,
      );
    }
  }

  /** Bytes held. */
  get bytes(): number {
    return this.k.reduce((s, t) => s + t.size * 8, 0);
  }

  /** Frees the cache. */
  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}

/**
 * Fills positions `0..T-1` of the cache from a training-mode forward over i32 `tokens` `[B, T]`
 * (one batched pass instead of T decode steps). Call inside `noGrad` and `tidy`.
 */
export function prefill(model: Transformer, tokens: Tensor, cache: KVCache): void {
  const [B, T] = tokens.shape;
  if (tokens.rank !== 2 || B > cache.B || T > cache.Tmax) {
    throw new RangeError(
      `prefill: tokens ${tokens.describe()} do not fit a cache of [${cache.B}, ${cache.Tmax}]`,
    );
  }
  cache.expectModel(model, "prefill");
  const { kvHeads: Hkv, headDim: D } = model.config;
  const dstStrides = [Hkv * cache.Tmax * D, D, cache.Tmax * D, 1]; // [B, T, Hkv, D] into [B, Hkv, Tmax, D]
  model.hidden(tokens, (l, k, v) => {
    copyInto(k, cache.k[l], dstStrides, 0);
    copyInto(v, cache.v[l], dstStrides, 0);
  });
}

/** Largest cache length and head size of the fused decode kernels (their workgroup arrays). */
export const FUSED_DECODE_LIMITS = { positions: 2048, headDim: 256 } as const;

// kernels/nn_decode_attention.wgsl's `joined` flags and its workgroup size
const NORM_Q = 1, NORM_K = 2, HAS_BIAS = 4;
const DECODE_WG = 64;
const decodeConstants = {
  WG: DECODE_WG,
  MAXT: FUSED_DECODE_LIMITS.positions,
  MAXD: FUSED_DECODE_LIMITS.headDim,
};

// Throws unless the fused kernels take this cache and head size.
function checkFused(op: string, cache: KVCache, D: number, pos: number): void {
  if (cache.Tmax > FUSED_DECODE_LIMITS.positions || D > FUSED_DECODE_LIMITS.headDim) {
    throw new RangeError(
      `${op}: a cache of ${cache.Tmax} positions with head size ${D} exceeds the fused kernel's ` +
        `${FUSED_DECODE_LIMITS.positions} positions / head size ${FUSED_DECODE_LIMITS.headDim}; ` +
        `use decodeAttentionComposed`,
    );
  }
  if (!Number.isInteger(pos) || pos < 0 || pos >= cache.Tmax) {
    throw new RangeError(`${op}: position ${pos} is outside the cache's [0, ${cache.Tmax})`);
  }
}

/**
 * Attention output `[B, 1, heads·D]` of position `pos` for q `[B, 1, heads, D]` and the new k, v
 * `[B, 1, kvHeads, D]` (already normalised and rotated), writing k, v into layer `l` of the cache:
 * one fused dispatch (kernels/nn_decode_attention.wgsl `main`). No gradient (decoding only).
 * {@link decodeStep} uses {@link decodeAttentionJoined}, which also does QK-norm and RoPE; this
 * one is for a caller that already holds the heads.
 */
export function decodeAttentionFused(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  cache: KVCache,
  l: number,
  pos: number,
): Tensor {
  return opScope(() => {
    const [B, , Hq, D] = q.shape;
    const Hkv = k.shape[2];
    checkFused("decodeAttentionFused", cache, D, pos);
    const qs = materialize(q), ks = materialize(k), vs = materialize(v);
    const out = empty([B, 1, Hq * D], "f32", "decodeAttention");
    runtime().dispatch({
      kernel: decodeKernel,
      constants: decodeConstants,
      bindings: [
        qs.binding,
        ks.binding,
        vs.binding,
        cache.k[l].binding,
        cache.v[l].binding,
        out.binding,
        params([B, Hq, Hkv, D, cache.Tmax, pos, f32(1 / Math.sqrt(D)), f32(0), f32(0), 0, 0, 0]),
      ],
      workgroups: grid(B * Hq),
    });
    return out;
  });
}

/**
 * Attention output `[B, 1, heads·D]` of position `pos` straight from block `block`'s joined q/k/v
 * projection `qkv` `[B, 1, (heads + 2·kvHeads)·D]` (q heads, then k heads, then v heads), writing
 * the new key and value into layer `l` of the cache. One dispatch (kernels/nn_decode_attention.wgsl
 * `joined`) does what ops.qkvNormRope and {@link decodeAttentionFused} did in two: each workgroup
 * adds the q/k/v bias (`block.bQkv`, when present), normalises (QK-norm, with `block.qNorm` /
 * `block.kNorm` when present) and rotates (RoPE at `pos`) its query head and its kv head's key
 * itself, with ops.qkvNormRope's expressions, so the
 * decode matches a training-mode forward. A decode step is bound by dispatch count, not by
 * arithmetic (about 11.5 µs a dispatch on an H100 whatever it computes), so the redundant
 * normalisation of the key by each of a group's G query heads costs nothing that shows; the
 * saving is one dispatch per layer per token. No gradient (decoding only).
 *
 * @example
 * ```ts
 * const attend = { joined: (l, b, qkv) => decodeAttentionJoined(model, b, qkv, cache, l, pos) };
 * const h = model.blocksOver(x, pos, attend, true);
 * ```
 */
export function decodeAttentionJoined(
  model: Transformer,
  block: BlockParams,
  qkv: Tensor,
  cache: KVCache,
  l: number,
  pos: number,
): Tensor {
  const op = "decodeAttentionJoined";
  const { heads: Hq, kvHeads: Hkv, headDim: D, normEps: eps, ropeTheta: base } = model.config;
  const H = Hq + 2 * Hkv;
  qkv.expectDtype(op, "f32");
  const B = qkv.shape[0];
  if (qkv.rank !== 3 || qkv.shape[1] !== 1 || qkv.shape[2] !== H * D || B > cache.B) {
    throw new RangeError(
      `${op}: needs the joined projection [B, 1, (heads + 2·kvHeads)·headDim] = [B, 1, ${
        H * D
      }] with B <= ${cache.B}, got ${qkv.describe()}`,
    );
  }
  if (D % 2 !== 0) throw new RangeError(`${op}: head size ${D} must be even (RoPE pairs)`);
  checkFused(op, cache, D, pos);
  if (!Number.isInteger(l) || l < 0 || l >= cache.k.length) {
    throw new RangeError(`${op}: layer ${l} is outside the cache's ${cache.k.length} layers`);
  }
  for (const [name, w] of [["qNorm", block.qNorm], ["kNorm", block.kNorm]] as const) {
    if (w && (w.rank !== 1 || w.shape[0] !== D)) {
      throw new RangeError(`${op}: ${name} must be [${D}], got ${w.describe()}`);
    }
  }
  const bias = block.bQkv;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== H * D)) {
    throw new RangeError(`${op}: bQkv must be [${H * D}], got ${bias.describe()}`);
  }
  return opScope(() => {
    const xs = materialize(qkv);
    // a binding for an absent norm weight (the kernel reads it only under its flag)
    let unused: Tensor | undefined;
    const stand = () => (unused ??= empty([4], "f32", "unused"));
    const wq = block.qNorm ? materialize(block.qNorm) : stand();
    const wk = block.kNorm ? materialize(block.kNorm) : stand();
    const bs = bias ? materialize(bias) : stand();
    const flags = (block.qNorm ? NORM_Q : 0) | (block.kNorm ? NORM_K : 0) | (bias ? HAS_BIAS : 0);
    // ops_qkv_heads.wgsl's lanes per head row: its sum of squares is a tree over them
    const lanes = Math.min(256, 2 ** Math.ceil(Math.log2(Math.max(1, D / 2))));
    const out = empty([B, 1, Hq * D], "f32", op);
    runtime().dispatch({
      kernel: decodeKernel,
      entryPoint: "joined",
      constants: decodeConstants,
      bindings: [
        xs.binding,
        wq.binding,
        wk.binding,
        cache.k[l].binding,
        cache.v[l].binding,
        out.binding,
        params([
          B,
          Hq,
          Hkv,
          D,
          cache.Tmax,
          pos,
          f32(1 / Math.sqrt(D)),
          f32(base),
          f32(eps),
          flags,
          lanes,
          0,
        ]),
        bs.binding,
      ],
      workgroups: grid(B * Hq),
    });
    return out;
  });
}

/**
 * The same as {@link decodeAttentionFused} composed from autograd ops (strided cache writes,
 * slices, matmul, softmax, matmul): the reference of the fused kernel and the path for caches
 * longer than {@link FUSED_DECODE_LIMITS}.
 */
export function decodeAttentionComposed(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  cache: KVCache,
  l: number,
  pos: number,
): Tensor {
  const [B, , Hq, D] = q.shape;
  const Hkv = k.shape[2];
  const G = Hq / Hkv;
  const len = pos + 1;
  const dstStrides = [Hkv * cache.Tmax * D, D, cache.Tmax * D, 1]; // [B, 1, Hkv, D] into [B, Hkv, Tmax, D]
  copyInto(k, cache.k[l], dstStrides, pos * D);
  copyInto(v, cache.v[l], dstStrides, pos * D);
  const kc = slice(slice(cache.k[l], 0, 0, B), 2, 0, len); // [B, Hkv, len, D]
  const vc = slice(slice(cache.v[l], 0, 0, B), 2, 0, len);
  const qg = reshape(q, [B, Hkv, G, D]);
  const scores = mul(matmul(qg, transpose(kc, -2, -1)), 1 / Math.sqrt(D)); // [B, Hkv, G, len]
  return reshape(matmul(softmax(scores), vc), [B, 1, Hq * D]);
}

/**
 * Logits `[B, V]` at position `pos` for i32 `tokens` `[B]` (the input at `pos`), writing the keys
 * and values of `pos` into `cache` and attending over positions `0..pos`. Call inside `noGrad` and
 * `tidy`. `fused` (default: when the cache fits the kernel) picks {@link decodeAttentionJoined}:
 * one dispatch a layer from the joined projection to the attention output, QK-norm and RoPE
 * included; else ops.qkvNormRope then {@link decodeAttentionComposed} (the reference). On a GPU
 * every residual add and RMSNorm runs inside the projection that reads it (Transformer.logitsOver,
 * ops.addRmsNormMatmul): the q/k/v, gate/up and classifier products.
 *
 * @example
 * ```ts
 * const logits = noGrad(() => tidy(() => decodeStep(model, next, cache, s)));
 * ```
 */
export function decodeStep(
  model: Transformer,
  tokens: Tensor,
  cache: KVCache,
  pos: number,
  fused = cache.Tmax <= FUSED_DECODE_LIMITS.positions &&
    model.config.headDim <= FUSED_DECODE_LIMITS.headDim,
): Tensor {
  const c = model.config;
  const B = tokens.shape[0];
  if (tokens.rank !== 1 || B > cache.B) {
    throw new RangeError(
      `decodeStep: tokens must be [B] with B <= ${cache.B}, got ${tokens.describe()}`,
    );
  }
  if (!Number.isInteger(pos) || pos < 0 || pos >= cache.Tmax) {
    throw new RangeError(`decodeStep: position ${pos} is outside the cache's [0, ${cache.Tmax})`);
  }
  cache.expectModel(model, "decodeStep");
  const attend: Attend = fused
    ? { joined: (l, b, qkv) => decodeAttentionJoined(model, b, qkv, cache, l, pos) }
    : (l, q, k, v) => decodeAttentionComposed(q, k, v, cache, l, pos);
  const x = embedding(model.embed, reshape(tokens, [B, 1]));
  return reshape(model.logitsOver(x, pos, attend), [B, c.vocabSize]);
}
