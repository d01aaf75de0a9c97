/**
 * Comparing a GPU matmul result with the float64 reference under an error bound that scales with
 * K: the tests and the benchmark's validation share it.
 *
 * @module
 */
import { matmulReference, type MatmulShape } from "./reference.ts";

/** Outcome of {@link checkMatmul}. */
export interface MatmulCheck {
  /** Largest |gpu − reference| over the checked elements. */
  maxError: number;
  /** Largest error divided by its element's bound (≤ 1 passes; NaN anywhere gives Infinity). */
  maxRatio: number;
  /** Index (into C) of the element with the largest ratio. */
  worstIndex: number;
  /** maxRatio ≤ 1. */
  ok: boolean;
}

// f32 unit roundoff.
const U = 2 ** -24;

/**
 * Checks `got` (all of C as read back) against the float64 reference computed from the same f32
 * inputs. The bound per element is the classic one for a recursive dot product of length K,
 * γ_{K+2} · Σ_k |a_mk · b_kn| (+ the rounding of the accumulated C), so a kernel that sums in any
 * order passes and one that drops, duplicates or misplaces a term fails.
 *
 * @example
 * ```ts
 * const r = checkMatmul(got, a, b, cBefore, { M, N, K });
 * if (!r.ok) throw new Error(`max error ${r.maxError}`);
 * ```
 */
export function checkMatmul(
  got: ArrayLike<number>,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  cBefore: ArrayLike<number>,
  s: MatmulShape,
): MatmulCheck {
  return prepareMatmulCheck(a, b, cBefore, s)(got);
}

/**
 * {@link checkMatmul} in two steps: the reference and the bounds are computed once, and the
 * returned function checks any number of results against them (the benchmark checks every kernel
 * version's product of one shape).
 *
 * @example
 * ```ts
 * const check = prepareMatmulCheck(a, b, new Float32Array(M * N), { M, N, K });
 * for (const got of results) console.log(check(got).maxRatio);
 * ```
 */
export function prepareMatmulCheck(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  cBefore: ArrayLike<number>,
  s: MatmulShape,
): (got: ArrayLike<number>) => MatmulCheck {
  const want = Float64Array.from(cBefore);
  matmulReference(a, b, want, s);
  const scale = new Float64Array(cBefore.length);
  matmulReference(absolute(a), absolute(b), scale, { ...s, accumulate: false });
  const gamma = ((s.K + 2) * U) / (1 - (s.K + 2) * U);
  const strideC = s.strideC ?? s.M * s.N;
  const carried = s.accumulate ? absolute(cBefore) : new Float64Array(cBefore.length);
  return (got) => {
    let maxError = 0, maxRatio = 0, worstIndex = -1;
    for (let bi = 0; bi < (s.batchCount ?? 1); bi++) {
      for (let e = 0; e < s.M * s.N; e++) {
        const i = bi * strideC + e;
        const err = Math.abs(got[i] - want[i]);
        const bound = gamma * (scale[i] + carried[i]) + 1e-30;
        const ratio = Number.isNaN(err) ? Infinity : err / bound;
        // Once NaN, maxError stays NaN (every comparison with it is false).
        if (Number.isNaN(err) || err > maxError) maxError = err;
        if (ratio > maxRatio || worstIndex < 0) {
          maxRatio = Math.max(maxRatio, ratio);
          worstIndex = i;
        }
      }
    }
    return { maxError, maxRatio, worstIndex, ok: maxRatio <= 1 };
  };
}

// |x| elementwise as float64 (a plain loop: Float64Array.from with a map function is ~40× slower,
// seconds for a 4096² operand).
function absolute(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.abs(x[i]);
  return out;
}
