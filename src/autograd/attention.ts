/**
 * Causal self-attention with grouped-query heads, in two implementations with one semantics:
 * "composed" from the tape's ops (matmul, scale, mask, softmax, matmul), so its backward is the
 * composition of theirs, and "fused" (attention_fused.ts: one kernel forward, two backward). In
 * the composed op the G query heads that share one key/value head are stacked along the rows of
 * one batched matmul, so K and V are never repeated in memory. {@link setAttentionImpl} picks the
 * default ("auto": by the size of the call); {@link AttentionOptions.impl} overrides it per call.
 *
 * @module
 */
import { full, keep, type Tensor, tensor } from "../tensor/mod.ts";
import { add, mul } from "./elementwise.ts";
import {
  checkAttention,
  deviceAttentionTiles,
  deviceFlashTiles,
  fusedAttentionVersion,
  fusedCausalAttention,
} from "./attention_fused.ts";
import { matmul } from "./matmul.ts";
import { softmax } from "./softmax.ts";
import { reshape, transpose } from "./views.ts";

const masks = new Map<string, Tensor>();

// [Tq, Tk]: 0 where key j is visible to query i (j <= i + Tk - Tq), -inf elsewhere; built once per
// shape and kept (an upload, so the first call submits the open batch).
function causalMask(Tq: number, Tk: number): Tensor {
  const key = `${Tq}x${Tk}`;
  let m = masks.get(key);
  if (!m || m.isDisposed) {
    if (masks.size >= 16) { // bounded: decoding with a growing Tk must not grow the cache forever
      for (const old of masks.values()) old.dispose();
      masks.clear();
    }
    const host = new Float32Array(Tq * Tk);
    for (let i = 0; i < Tq; i++) {
      for (let j = i + Tk - Tq + 1; j < Tk; j++) host[i * Tk + j] = -Infinity;
    }
    m = keep(tensor(host, [Tq, Tk]));
    masks.set(key, m);
  }
  return m;
}

/**
 * Which implementation {@link causalSelfAttention} runs: the fused kernel, the composed ops, or
 * "auto", which picks by the size of the call (see {@link AUTO_FUSED_MAX_WORK}).
 */
export type AttentionImpl = "fused" | "composed" | "auto";

const IMPLS: readonly AttentionImpl[] = ["fused", "composed", "auto"];

/**
 * "auto" runs the fused kernel's version 2 (attention_flash.ts: register-tiled, the G query heads
 * of a key/value head stacked) whenever it applies to the call's head dimension and device, and
 * version 1 (one score per thread) only when B·Hq·Tq·Tk·D is at most this (about 134M: the 0.8M
 * anchor's 33.5M in, the 5M anchor's 268M and the 29M anchor's 1.07G out); else the composed ops.
 * On the H100 a dispatch costs about 11.5 µs (2,000 tiny ones in one pass took 23 ms) and the
 * composed ops take 21 per layer against the fused kernel's 3, so small calls are bound by
 * dispatches; above the bound, FLOPs decide, and version 1's two workgroup loads per FMA lose to
 * the tuned matmul (2.4× slower at the 29M anchor on the CPU adapter, where version 2 is 2.3×
 * faster than the composed ops and 3.6–4.3× at the 5M anchor). Estimates, not H100 measurements:
 * the GPU A/B of `bench/nn/main.ts --attention fused|composed` sets them.
 */
export const AUTO_FUSED_MAX_WORK = 2 ** 27;

/**
 * "auto" runs version 2 of the fused kernel up to this B·Hq·Tq·Tk·D (no bound until an H100 run
 * shows the composed ops winning at some size; BENCHMARKS.md, "Next GPU run", has the rule).
 */
export const AUTO_FLASH_MAX_WORK = Number.POSITIVE_INFINITY;

let defaultImpl: AttentionImpl = "auto";

/**
 * Sets the implementation {@link causalSelfAttention} uses when a call does not name one (default
 * "auto"); returns the previous one.
 *
 * @example
 * ```ts
 * const prev = setAttentionImpl("fused");
 * try { model.loss(tokens, targets).backward(); } finally { setAttentionImpl(prev); }
 * ```
 */
export function setAttentionImpl(impl: AttentionImpl): AttentionImpl {
  if (!IMPLS.includes(impl)) {
    throw new RangeError(`setAttentionImpl: '${impl}' is not "fused", "composed" or "auto"`);
  }
  const prev = defaultImpl;
  defaultImpl = impl;
  return prev;
}

/** The implementation {@link causalSelfAttention} uses by default. */
export function attentionImpl(): AttentionImpl {
  return defaultImpl;
}

/** Options of {@link causalSelfAttention}. */
export interface AttentionOptions {
  /** Score scale; default 1/√D. */
  scale?: number;
  /**
   * "fused", "composed" or "auto"; default {@link attentionImpl}. The fused kernel falls back to the
   * composed ops for empty operands and for heads too wide for its tiles (D past 128 at 16 KiB
   * of workgroup memory).
   */
  impl?: AttentionImpl;
}

/**
 * softmax(q·kᵀ·scale + causal mask)·v per head. `q` is [B, Tq, Hq, D]; `k` and `v` are
 * [B, Tk, Hkv, D] with Hq a multiple of Hkv (query head h reads key/value head ⌊h / (Hq/Hkv)⌋)
 * and Tk >= Tq: the queries are the last Tq positions, so query i sees keys 0..i + Tk − Tq (with a
 * KV cache, Tq = 1 sees every cached key). Returns [B, Tq, Hq, D].
 *
 * @example
 * ```ts
 * const o = causalSelfAttention(rope(q), rope(k), v); // q [B,T,8,64], k/v [B,T,2,64]
 * ```
 */
export function causalSelfAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Tensor {
  const impl = opts.impl ?? defaultImpl;
  if (!IMPLS.includes(impl)) {
    throw new RangeError(
      `causalSelfAttention: impl '${impl}' is not "fused", "composed" or "auto"`,
    );
  }
  const { B, Tq: T, Tk, Hq, Hkv, D } = checkAttention("causalSelfAttention", q, k, v, opts.scale);
  const fused = impl === "fused" ||
    (impl === "auto" &&
      (fusedAttentionVersion() === 2 && deviceFlashTiles(D) !== null
        ? B * Hq * T * Tk * D <= AUTO_FLASH_MAX_WORK
        : B * Hq * T * Tk * D <= AUTO_FUSED_MAX_WORK));
  if (fused && q.size > 0 && k.size > 0 && deviceAttentionTiles(D)) {
    return fusedCausalAttention(q, k, v, { scale: opts.scale });
  }
  const G = Hq / Hkv;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const qh = reshape(transpose(q, 1, 2), [B, Hkv, G * T, D]); // query heads of a group stacked
  const kh = transpose(k, 1, 2); // [B, Hkv, Tk, D]
  const vh = transpose(v, 1, 2);
  const scores = mul(matmul(qh, transpose(kh, -2, -1)), scale); // [B, Hkv, G·T, Tk]
  // one query row (decoding with a KV cache) sees every key: no mask needed
  const masked = T === 1
    ? scores
    : add(reshape(scores, [B, Hkv, G, T, Tk]), T > 0 ? causalMask(T, Tk) : full([0, Tk], 0));
  const probs = reshape(softmax(masked), [B, Hkv, G * T, Tk]);
  const out = matmul(probs, vh); // [B, Hkv, G·T, D]
  return transpose(reshape(out, [B, Hq, T, D]), 1, 2);
}
