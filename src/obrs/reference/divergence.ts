/**
 * Divergences between two probability vectors, float64, with the conventions 0·log 0 = 0 and
 * +Infinity where `p` puts mass that `q` does not.
 *
 * @module
 */
import { checkProbPair } from "./validate.ts";

/**
 * KL(p ‖ q) = Σ p_i log(p_i / q_i), natural log. Terms with p_i = 0 are 0; p_i > 0 = q_i gives
 * +Infinity. Uses log p − log q so that ratios beyond the float64 range stay finite.
 *
 * @example
 * ```ts
 * klDivergence(new Float64Array([0.5, 0.5]), new Float64Array([0.9, 0.1])); // 0.5108…
 * ```
 */
export function klDivergence(p: Float64Array, q: Float64Array): number {
  checkProbPair("p", p, "q", q);
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) continue;
    if (q[i] === 0) return Infinity;
    kl += p[i] * (Math.log(p[i]) - Math.log(q[i]));
  }
  // Rounding can leave a tiny negative sum when p ≈ q; KL itself is never negative.
  return Math.max(0, kl);
}

/**
 * Total variation distance ½ Σ |p_i − q_i|, in [0, 1].
 *
 * @example
 * ```ts
 * tvDistance(new Float64Array([1, 0]), new Float64Array([0, 1])); // 1
 * ```
 */
export function tvDistance(p: Float64Array, q: Float64Array): number {
  checkProbPair("p", p, "q", q);
  let sum = 0;
  for (let i = 0; i < p.length; i++) sum += Math.abs(p[i] - q[i]);
  return 0.5 * sum;
}

/**
 * Pearson χ²(p ‖ q) = Σ (p_i − q_i)² / q_i. Terms with p_i = q_i = 0 are 0; p_i > 0 = q_i gives
 * +Infinity.
 *
 * @example
 * ```ts
 * chiSquare(new Float64Array([0.5, 0.5]), new Float64Array([0.25, 0.75])); // 0.3333…
 * ```
 */
export function chiSquare(p: Float64Array, q: Float64Array): number {
  checkProbPair("p", p, "q", q);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const d = p[i] - q[i];
    if (q[i] === 0) {
      if (p[i] > 0) return Infinity;
      continue;
    }
    sum += (d * d) / q[i];
  }
  return sum;
}
