/**
 * The RL losses and metrics of a Jackpot step (SPEC §4–8), each a GPU op with a float64
 * reference beside it:
 *
 * - {@link policyLoss}: PPO with per-token weights and the OBRS mask (SPEC §4), in the clip and
 *   no-clip forms (§5), with the three aggregations; three dispatches, no readback.
 * - {@link distillKL}: the rollout model's distillation over the whole vocabulary (Eq. 8), forward
 *   or reverse KL, fused (the softmax is never stored).
 * - {@link grpoAdvantages}: GRPO advantages on the host in float64, and {@link advantagesTensor}
 *   to broadcast them over each sequence's tokens.
 * - {@link mismatchStats}: every actor–policy mismatch metric of a step (k1, k3, |Δ log p|
 *   mean / p95 / max, entropies, full-vocabulary KL) in one small tensor, read back once.
 * - {@link jackpotTensors}: the Jackpot mask, weights and statistics recorded into a training
 *   step (no readback), as `[B, T]` tensors for {@link policyLoss}; {@link actorFromRollout} turns
 *   a rollout batch's captured top-k into its actor side.
 *
 * @example
 * ```ts
 * const jt = jackpotTensors({ policyLogits, actor: { logits: actorLogits }, tokens, valid, logpRef }, {
 *   lambda: 1,
 *   seed: step,
 * });
 * const { loss, stats } = policyLoss({ logpNew, logpRef, advantages, weight: jt.rho, mask: jt.mask });
 * const distill = distillKL(rolloutLogits, policyLogits.detach(), { mask: rowMask });
 * loss.add(distill.loss.mul(lambdaDistill)).backward();
 * console.log(decodePolicyLossStats(await stats.read()).clipFraction);
 * ```
 *
 * @module
 */
export {
  decodePolicyLossStats,
  type DecodePolicyLossStatsOptions,
  POLICY_LOSS_STATS_LENGTH,
  policyLoss,
  type PolicyLossInputs,
  PolicyLossNonFiniteError,
  type PolicyLossResult,
  readPolicyLossStats,
} from "./policy_loss.ts";
export {
  POLICY_LOSS_AGGREGATIONS,
  type PolicyLossAggregation,
  type PolicyLossOptions,
  policyLossRef,
  type PolicyLossRefInputs,
  type PolicyLossRefResult,
  type PolicyLossStats,
  type PolicyRatioMode,
  type PolicyTokenTerm,
  policyTokenTerm,
  type ResolvedPolicyLossOptions,
  resolvePolicyLossOptions,
} from "./policy_loss_reference.ts";
export {
  decodeDistillStats,
  distillKL,
  type DistillOptions,
  type DistillResult,
  type DistillStats,
  type KLRows,
  klRows,
} from "./distill.ts";
export {
  distillKLRef,
  type DistillRefOptions,
  type DistillRefResult,
  type KLDirection,
} from "./distill_reference.ts";
export {
  advantagesTensor,
  broadcastAdvantages,
  type GrpoAdvantages,
  grpoAdvantages,
  type GrpoOptions,
  type TokenSpans,
} from "./advantages.ts";
export {
  decodeMismatch,
  MISMATCH_STATS_LEN,
  type MismatchInputs,
  mismatchStats,
} from "./mismatch.ts";
export {
  HIST_BINS,
  HIST_PER_DECADE,
  mismatchRef,
  type MismatchRefInputs,
  type MismatchStats,
  quantileFromHistogram,
} from "./mismatch_reference.ts";
export {
  actorFromRollout,
  JACKPOT_STATS_LENGTH,
  type JackpotActorLogits,
  type JackpotActorTopK,
  type JackpotTensorInputs,
  type JackpotTensorOptions,
  type JackpotTensors,
  jackpotTensors,
  jackpotTensorsLive,
  type RolloutJackpotInputs,
} from "./jackpot_tensors.ts";
export {
  isRlMode,
  type ModeWeightInputs,
  type ModeWeights,
  modeWeights,
  RL_MODE_NAMES,
  RL_MODES,
  type RlMode,
  type RlModeInfo,
} from "./modes.ts";
export { resolveRlConfig, RL_DEFAULTS, type RlConfig, RlConfigError } from "./trainer_config.ts";
export {
  type RolloutData,
  rolloutData,
  type RolloutMinibatch,
  sliceRollout,
} from "./rollout_data.ts";
export {
  type RlIterationLog,
  type RlProgress,
  type RlStepLog,
  RlTrainer,
  type RlTrainerOptions,
} from "./trainer.ts";
export { ITERATION_COLUMNS, iterationRow, type LogRow, STEP_COLUMNS, stepRow } from "./log_rows.ts";
export {
  AdaptiveKLCoefficient,
  type AdaptiveKLOptions,
  type LambdaForTokenBudget,
  lambdaForTokenBudget,
} from "./controllers.ts";
export { type SampleSummary, summarizeSamples } from "./evaluation.ts";
export {
  evaluateSampled,
  passKs,
  SAMPLED_EVAL_STREAM,
  sampledEvalColumns,
  type SampledEvalOptions,
  sampledEvalSeed,
  type SampledEvaluation,
} from "./sampled_eval.ts";
