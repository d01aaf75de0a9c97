/**
 * λ for an acceptance budget (Theorem 3.4): the expected acceptance Σ_i pInf_i a_i(λ) equals Z(λ),
 * which is continuous and non-increasing in λ, so a bisection in log λ finds the λ that meets a
 * budget ā. Above λ_min = min_i pTarget_i / pInf_i, Z is strictly decreasing, so the answer is
 * unique there; at the largest reachable budget the whole interval (0, λ_min] meets it and λ_min, the
 * most aligning of them, is returned.
 *
 * @module
 */
import { zUnchecked } from "./obrs.ts";
import { checkProbPair } from "./validate.ts";

/**
 * The largest budget any λ reaches: Z(λ → 0) = Σ_{pTarget_i > 0} pInf_i (mass pInf puts where pTarget
 * has none is rejected whatever λ is).
 *
 * @example
 * ```ts
 * maxBudget(new Float64Array([1, 0]), new Float64Array([0.7, 0.3])); // 0.7
 * ```
 */
export function maxBudget(pTarget: Float64Array, pInf: Float64Array): number {
  checkProbPair("pTarget", pTarget, "pInf", pInf);
  let z = 0;
  for (let i = 0; i < pTarget.length; i++) if (pTarget[i] > 0) z += pInf[i];
  // Rounding can push the sum a hair above 1; a budget never exceeds 1.
  return Math.min(1, z);
}

/** min over i with both masses > 0 of pTarget_i / pInf_i: below it Z(λ) stays at its maximum. */
function minRatio(pTarget: Float64Array, pInf: Float64Array): number {
  let min = Infinity;
  for (let i = 0; i < pTarget.length; i++) {
    if (pTarget[i] > 0 && pInf[i] > 0) min = Math.min(min, pTarget[i] / pInf[i]);
  }
  return min;
}

function checkBudget(budget: number, tol: number): void {
  if (!(budget > 0 && budget <= 1)) {
    throw new RangeError(`budget must be in (0, 1], got ${budget}`);
  }
  if (!(tol > 0 && tol < 1)) throw new RangeError(`tol must be in (0, 1), got ${tol}`);
}

/**
 * Finds λ with |z(λ) − budget| ≤ tol for a continuous non-increasing z, given z(lo) ≥ budget ≥ z(hi),
 * by bisection in log λ.
 */
function bisect(
  z: (lambda: number) => number,
  lo: number,
  hi: number,
  budget: number,
  tol: number,
) {
  const zLo = z(lo);
  if (zLo < budget - tol) {
    throw new RangeError(
      `budget ${budget} exceeds the largest reachable acceptance rate Z(λ → 0) = ${zLo}`,
    );
  }
  if (zLo - budget <= tol) return lo;
  if (Math.abs(z(hi) - budget) <= tol) return hi;
  let best = hi;
  let bestErr = Infinity;
  for (let iter = 0; iter < 400 && hi / lo - 1 > 1e-15; iter++) {
    const mid = Math.sqrt(lo * hi);
    const err = z(mid) - budget;
    if (Math.abs(err) < bestErr) [best, bestErr] = [mid, Math.abs(err)];
    if (Math.abs(err) <= tol) return mid;
    if (err > 0) lo = mid;
    else hi = mid;
  }
  // Only reachable when tol is below what float64 can resolve; return the closest λ seen.
  return best;
}

/**
 * λ such that the expected acceptance Σ_i pInf_i a_i(λ) = Z(λ) equals `budget` within `tol`.
 * RangeError for a budget outside (0, 1] or above {@link maxBudget}.
 *
 * @example
 * ```ts
 * const p = new Float64Array([0.5, 0.5]), q = new Float64Array([0.8, 0.2]);
 * const lambda = lambdaForBudget(p, q, 0.7); // 1: Z(1) = min(0.8, 0.5) + min(0.2, 0.5) = 0.7
 * ```
 */
export function lambdaForBudget(
  pTarget: Float64Array,
  pInf: Float64Array,
  budget: number,
  tol = 1e-9,
): number {
  checkProbPair("pTarget", pTarget, "pInf", pInf);
  checkBudget(budget, tol);
  const lo = minRatio(pTarget, pInf);
  if (lo === Infinity) {
    throw new RangeError(`budget ${budget} unreachable: pTarget and pInf have disjoint supports`);
  }
  // Z(λ) ≤ Σ pTarget / λ = 1/λ, so λ = 1/budget is at or below the budget.
  const hi = Math.max(lo, 1 / budget);
  return bisect((lambda) => zUnchecked(pTarget, pInf, lambda), lo, hi, budget, tol);
}

/**
 * One λ for many states: the mean over rows of Z_n(λ) equals `budget` within `tol` (what a trainer
 * choosing λ per batch for a target acceptance rate solves; SPEC §6).
 *
 * @example
 * ```ts
 * const lambda = lambdaForBudgetBatch([p0, p1], [q0, q1], 0.9);
 * ```
 */
export function lambdaForBudgetBatch(
  pTargetRows: readonly Float64Array[],
  pInfRows: readonly Float64Array[],
  budget: number,
  tol = 1e-9,
): number {
  if (pTargetRows.length === 0) throw new RangeError("lambdaForBudgetBatch needs at least one row");
  if (pTargetRows.length !== pInfRows.length) {
    throw new RangeError(
      `row count mismatch: ${pTargetRows.length} pTarget rows, ${pInfRows.length} pInf rows`,
    );
  }
  checkBudget(budget, tol);
  let lo = Infinity;
  for (let n = 0; n < pTargetRows.length; n++) {
    checkProbPair(`pTargetRows[${n}]`, pTargetRows[n], `pInfRows[${n}]`, pInfRows[n]);
    lo = Math.min(lo, minRatio(pTargetRows[n], pInfRows[n]));
  }
  if (lo === Infinity) {
    throw new RangeError(`budget ${budget} unreachable: every row has disjoint supports`);
  }
  const meanZ = (lambda: number) => {
    let sum = 0;
    for (let n = 0; n < pTargetRows.length; n++) {
      sum += zUnchecked(pTargetRows[n], pInfRows[n], lambda);
    }
    return sum / pTargetRows.length;
  };
  return bisect(meanZ, lo, Math.max(lo, 1 / budget), budget, tol);
}
