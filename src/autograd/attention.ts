/**
 * Causal self-attention with grouped-query heads, composed from the tape's ops (matmul, scale,
 * mask, softmax, matmul), so its backward is the composition of theirs. The G query heads that
 * share one key/value head are stacked along the rows of one batched matmul, so K and V are never
 * repeated in memory.
 *
 * @module
 */
import { full, keep, type Tensor, tensor } from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { add, mul } from "./elementwise.ts";
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

/** Options of {@link causalSelfAttention}. */
export interface AttentionOptions {
  /** Score scale; default 1/√D. */
  scale?: number;
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
  const bad = (why: string) =>
    new RangeError(
      `causalSelfAttention: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${
        fmtShape(v.shape)
      }: ${why}`,
    );
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw bad("expected [B, T, H, D] tensors");
  const [B, T, Hq, D] = q.shape;
  const [, Tk, Hkv] = k.shape;
  if (k.shape[0] !== B || k.shape[3] !== D) throw bad("k does not match q");
  if (Tk < T) throw bad(`fewer keys (${Tk}) than queries (${T})`);
  if (v.shape.some((d, i) => d !== k.shape[i])) throw bad("v does not match k");
  if (Hkv === 0 || Hq % Hkv !== 0) {
    throw bad(`${Hq} query heads are not a multiple of ${Hkv} key/value heads`);
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
