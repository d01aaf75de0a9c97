/**
 * The float64 reference of OBRS / Jackpot: plain loops over Float64Array, no GPU. Every GPU kernel of
 * `src/obrs/` is tested against these functions.
 *
 * - `obrs.ts`: acceptance, Z and P_OBRS for one state (SPEC §2).
 * - `topk.ts`: top-k ids and Z_approx (SPEC §3).
 * - `budget.ts`: λ for an acceptance budget (Theorem 3.4).
 * - `mask.ts`: the seeded OBRS mask and its GPU contract.
 * - `weights.ts`, `batch.ts`: per-token κ, Z_t, w, ρ and statistics for a batch (SPEC §3–4, §8).
 * - `baselines.ts`: IS, TIS, IcePop, no-clip, masking-only (SPEC §5).
 * - `divergence.ts`, `softmax.ts`: KL, TV, χ², softmax, log-softmax.
 *
 * @example
 * ```ts
 * import { exactZ, klDivergence, obrsDistribution } from "./mod.ts";
 * const p = new Float64Array([0.5, 0.5]), q = new Float64Array([0.8, 0.2]);
 * exactZ(p, q, 1); // 0.7, the expected acceptance rate
 * klDivergence(p, obrsDistribution(p, q, 1)) <= klDivergence(p, q); // true (Theorem 3.3)
 * ```
 *
 * @module
 */
export { acceptanceProbs, exactZ, maxDensityRatio, obrsDistribution } from "./obrs.ts";
export { topkIds, topkUnion, zApprox } from "./topk.ts";
export { lambdaForBudget, lambdaForBudgetBatch, maxBudget } from "./budget.ts";
export { sampleMask } from "./mask.ts";
export {
  clampedLogRatio,
  LOG_RATIO_CLAMP,
  logAcceptance,
  type ObrsBatchResult,
  type ObrsBatchStats,
  type ObrsTarget,
  obrsTokenWeights,
  type ObrsWeightOptions,
  type TokenLogProbs,
} from "./weights.ts";
export {
  obrsBatch,
  type ObrsBatchInput,
  obrsBatchTopK,
  type ObrsOptions,
  type ObrsTopKInput,
} from "./batch.ts";
export { type BaselineSpec, type BaselineWeights, baselineWeights } from "./baselines.ts";
export { chiSquare, klDivergence, tvDistance } from "./divergence.ts";
export { logSoftmax, softmax } from "./softmax.ts";
