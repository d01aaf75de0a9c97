// Shared by the fused attention tests (v1: autograd_attention_fused_test.ts, v2:
// autograd_attention_flash_test.ts): the cases, their seeded inputs and the float64 analytic
// backward.
import type { Arr } from "../src/autograd/reference.ts";
import type { Rng } from "../src/util/rng.ts";
import { randArr } from "./autograd_util.ts";

/** One attention shape. */
export interface Case {
  B: number;
  Tq: number;
  Tk: number;
  Hq: number;
  Hkv: number;
  D: number;
  /** Multiplies q: 30 gives peaked rows, 0 flat ones (uniform attention). */
  qScale?: number;
}

export function inputs(rng: Rng, c: Case): [Arr, Arr, Arr] {
  return [
    randArr(rng, [c.B, c.Tq, c.Hq, c.D], c.qScale ?? 1),
    randArr(rng, [c.B, c.Tk, c.Hkv, c.D]),
    randArr(rng, [c.B, c.Tk, c.Hkv, c.D]),
  ];
}

export const label = (c: Case) =>
  `B=${c.B} Tq=${c.Tq} Tk=${c.Tk} Hq=${c.Hq} Hkv=${c.Hkv} D=${c.D}` +
  (c.qScale !== undefined ? ` q×${c.qScale}` : "");

/**
 * Float64 gradients of Σ attention(q, k, v) ⊙ dO with respect to q, k and v, written out as the
 * kernel computes them (P from the scores, dS = P ⊙ (dO·Vᵀ − rowsum(dO ∘ O))); checked against
 * finite differences of `attentionRef` below before it checks anything else.
 */
export function attentionBackwardRef(q: Arr, k: Arr, v: Arr, dO: Arr, scale?: number): Arr[] {
  const [B, T, Hq, D] = q.shape;
  const [, Tk, Hkv] = k.shape;
  const G = Hq / Hkv;
  const sc = scale ?? 1 / Math.sqrt(D);
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const ix = (TT: number, H: number, b: number, t: number, h: number) => ((b * TT + t) * H + h) * D;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / G);
      for (let t = 0; t < T; t++) {
        const last = t + Tk - T;
        const qi = ix(T, Hq, b, t, h);
        const p = new Float64Array(last + 1);
        let m = -Infinity;
        for (let u = 0; u <= last; u++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q.data[qi + d] * k.data[ix(Tk, Hkv, b, u, kh) + d];
          p[u] = s * sc;
          m = Math.max(m, p[u]);
        }
        let z = 0;
        for (let u = 0; u <= last; u++) z += p[u] = Math.exp(p[u] - m);
        for (let u = 0; u <= last; u++) p[u] /= z;
        const dp = new Float64Array(last + 1);
        let delta = 0;
        for (let u = 0; u <= last; u++) {
          const vi = ix(Tk, Hkv, b, u, kh);
          for (let d = 0; d < D; d++) dp[u] += dO.data[qi + d] * v.data[vi + d];
          delta += p[u] * dp[u];
        }
        for (let u = 0; u <= last; u++) {
          const ki = ix(Tk, Hkv, b, u, kh);
          const ds = p[u] * (dp[u] - delta) * sc;
          for (let d = 0; d < D; d++) {
            dq[qi + d] += ds * k.data[ki + d];
            dk[ki + d] += ds * q.data[qi + d];
            dv[ki + d] += p[u] * dO.data[qi + d];
          }
        }
      }
    }
  }
  return [dq, dk, dv].map((data, i) => ({ data, shape: [...[q, k, v][i].shape] }));
}
