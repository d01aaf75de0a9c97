/**
 * OBRS on one state (SPEC §2): acceptance probabilities, the normaliser Z and the distribution of
 * accepted tokens, for probability vectors `pTarget` (p) and `pInf` (q) over the same vocabulary.
 *
 * Convention for tokens the rollout model never samples (`pInf_i = 0`): `a_i = 1`, the limit of
 * `min(1, p_i / (λ q_i))` as q_i → 0 (also taken when p_i = 0 too). Such tokens carry no weight in
 * Z, in P_OBRS or in the budget Σ q_i a_i, so the choice only matters to code reading `a` directly;
 * the log-space batch path uses the same convention (`logAcceptance`).
 *
 * @module
 */
import { checkLambda, checkProbPair } from "./validate.ts";

/**
 * a_i = min(1, pTarget_i / (λ pInf_i)), with a_i = 1 where pInf_i = 0 (see the module note).
 *
 * @example
 * ```ts
 * const a = acceptanceProbs(new Float64Array([0.5, 0.5]), new Float64Array([0.8, 0.2]), 1);
 * // [0.625, 1]
 * ```
 */
export function acceptanceProbs(
  pTarget: Float64Array,
  pInf: Float64Array,
  lambda: number,
): Float64Array {
  checkProbPair("pTarget", pTarget, "pInf", pInf);
  checkLambda(lambda);
  const a = new Float64Array(pTarget.length);
  for (let i = 0; i < a.length; i++) {
    if (pInf[i] === 0) a[i] = 1;
    else if (pTarget[i] === 0) a[i] = 0;
    // (p/λ)/q rather than p/(λq): λq can underflow to 0 where p/λ is still representable.
    else a[i] = Math.min(1, pTarget[i] / lambda / pInf[i]);
  }
  return a;
}

/**
 * λ·min(pInf_v, pTarget_v / λ) for λ ≥ 1, else min(pInf_v, pTarget_v / λ): the OBRS mass of a
 * token up to the constant {@link obrsMassScale}. Scaling the side that is not divided keeps a
 * tiny pTarget_v from underflowing to 0 under `/ λ` (which made KL(p‖P_OBRS) infinite for
 * p_v = 5e-324, λ = 4); the constant cancels in P_OBRS and is divided out once in Z.
 */
export function obrsMass(pTargetV: number, pInfV: number, lambda: number): number {
  return lambda >= 1 ? Math.min(lambda * pInfV, pTargetV) : Math.min(pInfV, pTargetV / lambda);
}

/** The constant by which {@link obrsMass} exceeds min(pInf, pTarget / λ): λ for λ ≥ 1, else 1. */
export function obrsMassScale(lambda: number): number {
  return lambda >= 1 ? lambda : 1;
}

/** Σ_v min(pInf_v, pTarget_v / λ) without input checks; callers have checked. */
export function zUnchecked(pTarget: Float64Array, pInf: Float64Array, lambda: number): number {
  let z = 0;
  for (let v = 0; v < pTarget.length; v++) z += obrsMass(pTarget[v], pInf[v], lambda);
  return z / obrsMassScale(lambda);
}

/**
 * Z = Σ_v min(pInf_v, pTarget_v / λ): the expected acceptance rate Σ_v pInf_v a_v at this state.
 * Non-increasing in λ; equals Σ_{pTarget_v > 0} pInf_v as λ → 0 and Σ_{pInf_v > 0} pTarget_v / λ for
 * λ ≥ {@link maxDensityRatio}.
 *
 * @example
 * ```ts
 * exactZ(new Float64Array([0.5, 0.5]), new Float64Array([0.8, 0.2]), 1); // 0.7
 * ```
 */
export function exactZ(pTarget: Float64Array, pInf: Float64Array, lambda: number): number {
  checkProbPair("pTarget", pTarget, "pInf", pInf);
  checkLambda(lambda);
  return zUnchecked(pTarget, pInf, lambda);
}

/**
 * P_OBRS(x) = min(pInf_x, pTarget_x / λ) / Z: the distribution of tokens drawn from pInf and kept
 * by the OBRS mask. Throws when Z = 0 (pTarget and pInf have disjoint supports: nothing is ever
 * accepted, so there is no distribution).
 *
 * @example
 * ```ts
 * obrsDistribution(new Float64Array([0.5, 0.5]), new Float64Array([0.8, 0.2]), 1); // [5/7, 2/7]
 * ```
 */
export function obrsDistribution(
  pTarget: Float64Array,
  pInf: Float64Array,
  lambda: number,
): Float64Array {
  checkProbPair("pTarget", pTarget, "pInf", pInf);
  checkLambda(lambda);
  const out = new Float64Array(pTarget.length);
  let z = 0;
  for (let v = 0; v < out.length; v++) {
    out[v] = obrsMass(pTarget[v], pInf[v], lambda); // λ-scaled where λ ≥ 1; cancels below
    z += out[v];
  }
  if (!(z > 0)) {
    throw new RangeError("Z = 0: pTarget and pInf have disjoint supports, OBRS accepts nothing");
  }
  for (let v = 0; v < out.length; v++) out[v] /= z;
  return out;
}

/**
 * max_i pTarget_i / pInf_i: the λ from which OBRS is classical rejection sampling (P_OBRS = pTarget
 * when pTarget's support lies inside pInf's). +Infinity when pTarget puts mass where pInf has none.
 *
 * @example
 * ```ts
 * maxDensityRatio(new Float64Array([0.5, 0.5]), new Float64Array([0.8, 0.2])); // 2.5
 * ```
 */
export function maxDensityRatio(pTarget: Float64Array, pInf: Float64Array): number {
  checkProbPair("pTarget", pTarget, "pInf", pInf);
  let max = 0;
  for (let i = 0; i < pTarget.length; i++) {
    if (pTarget[i] === 0) continue;
    if (pInf[i] === 0) return Infinity;
    max = Math.max(max, Math.exp(Math.log(pTarget[i]) - Math.log(pInf[i])));
  }
  return max;
}
