/**
 * Top-k selection and the top-k approximation of Z (SPEC §3).
 *
 * @module
 */
import { checkK, checkLambda, checkProbs, checkSameLength } from "./validate.ts";
import { obrsMass, obrsMassScale } from "./obrs.ts";

/**
 * Indices of the `k` largest entries of `x`, largest first; ties go to the lower index. Works on
 * probabilities or log-probabilities: -Infinity entries sort last (among themselves by index).
 * NaN entries are an error.
 *
 * @example
 * ```ts
 * topkIds(new Float64Array([0.2, 0.5, 0.2, 0.1]), 3); // Int32Array [1, 0, 2]
 * ```
 */
export function topkIds(x: Float64Array, k: number): Int32Array {
  checkK(k, x.length);
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i])) throw new RangeError(`topkIds input[${i}] is NaN`);
  }
  // A full sort is O(V log V) but obviously right, which is what an oracle is for.
  const order = Array.from({ length: x.length }, (_, i) => i);
  order.sort((i, j) => (x[i] === x[j] ? i - j : x[j] > x[i] ? 1 : -1));
  return Int32Array.from(order.slice(0, k));
}

/**
 * The de-duplicated union topk(pInf, k) ∪ topk(pNew, k): pInf's top-k in rank order, then the ids of
 * pNew's top-k that are not already present, in pNew's rank order. Between k and 2k ids. Accepts
 * probabilities or log-probabilities.
 *
 * @example
 * ```ts
 * topkUnion(new Float64Array([0.6, 0.3, 0.1]), new Float64Array([0.1, 0.3, 0.6]), 1); // [0, 2]
 * ```
 */
export function topkUnion(pInf: Float64Array, pNew: Float64Array, k: number): Int32Array {
  checkSameLength("pInf", pInf, "pNew", pNew);
  const a = topkIds(pInf, k);
  const b = topkIds(pNew, k);
  const seen = new Set<number>(a);
  const out: number[] = Array.from(a);
  for (const id of b) {
    if (!seen.has(id)) {
      seen.add(id);
      out.push(id);
    }
  }
  return Int32Array.from(out);
}

/**
 * Z_approx = Σ_{v ∈ topk(pInf) ∪ topk(pNew)} min(pInf_v, pTarget_v / λ); never above the exact Z.
 * pNew picks the ids even when pTarget is pRef (SPEC §3).
 *
 * @example
 * ```ts
 * const p = new Float64Array([0.5, 0.3, 0.2]), q = new Float64Array([0.2, 0.3, 0.5]);
 * zApprox(p, q, p, 1, 1); // min(q0, p0) + min(q2, p2) = 0.4
 * ```
 */
export function zApprox(
  pTarget: Float64Array,
  pInf: Float64Array,
  pNew: Float64Array,
  lambda: number,
  k: number,
): number {
  checkProbs("pTarget", pTarget);
  checkProbs("pInf", pInf);
  checkProbs("pNew", pNew);
  checkSameLength("pTarget", pTarget, "pInf", pInf);
  checkSameLength("pTarget", pTarget, "pNew", pNew);
  checkLambda(lambda);
  let z = 0;
  for (const v of topkUnion(pInf, pNew, k)) z += obrsMass(pTarget[v], pInf[v], lambda);
  z /= obrsMassScale(lambda);
  return z;
}
