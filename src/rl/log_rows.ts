/**
 * Flat table rows of an RL run's logs (SPEC §8): one row per training step and one per iteration,
 * with the same column names in the CLI's CSV files, the notebooks' arquero tables and the charts.
 * A value a mode does not produce (κ on-policy, the rollout model's loss when it is frozen) is
 * null, never NaN.
 *
 * @module
 */
import type { RlIterationLog, RlStepLog } from "./trainer.ts";

/** One table row: column → number or null. */
export type LogRow = Record<string, number | null>;

/** Columns of {@link stepRow}, in order. */
export const STEP_COLUMNS = [
  "iteration",
  "minibatch",
  "step",
  "loss",
  "policy_loss",
  "actor_loss",
  "distill_kl",
  "distill_coef",
  "accept_rate",
  "expected_accept",
  "kappa",
  "z_approx",
  "z_approx_over_z",
  "weight_mean",
  "weight_max",
  "rho_mean",
  "clipped_fraction",
  "ess",
  "k1",
  "k3",
  "abs_log_ratio_mean",
  "abs_log_ratio_p95",
  "abs_log_ratio_max",
  "kl_policy_actor",
  "kl_actor_policy",
  "entropy_policy",
  "entropy_actor",
  "clip_fraction",
  "kept_tokens",
  "valid_tokens",
  "grad_norm_policy",
  "grad_norm_actor",
  "lr_policy",
  "lr_actor",
] as const;

/**
 * The row of one step.
 *
 * @example
 * ```ts
 * const rows = log.steps.map(stepRow); // arquero: aq.from(rows)
 * ```
 */
export function stepRow(s: RlStepLog): LogRow {
  const j = s.jackpot, m = s.mismatch;
  return {
    iteration: s.iteration,
    minibatch: s.minibatch,
    step: s.step,
    loss: s.loss,
    policy_loss: s.policy.loss,
    actor_loss: s.actor?.loss ?? null,
    distill_kl: s.distill?.loss ?? null,
    distill_coef: s.distill ? s.distillCoef : null,
    accept_rate: j?.acceptRate ?? null,
    expected_accept: j?.expectedAcceptRate ?? null,
    kappa: j?.kappa ?? null,
    z_approx: j?.meanZApprox ?? null,
    z_approx_over_z: j?.zApproxOverZ ?? null,
    weight_mean: j?.weightMean ?? null,
    weight_max: j?.weightMax ?? null,
    rho_mean: j?.rhoMean ?? null,
    clipped_fraction: j?.clippedFraction ?? null,
    ess: j?.ess ?? null,
    k1: m.k1,
    k3: m.k3,
    abs_log_ratio_mean: m.absLogRatioMean,
    abs_log_ratio_p95: m.absLogRatioP95,
    abs_log_ratio_max: m.absLogRatioMax,
    kl_policy_actor: m.klPolicyActor,
    kl_actor_policy: m.klActorPolicy,
    entropy_policy: m.entropyPolicy,
    entropy_actor: m.entropyActor,
    clip_fraction: s.policy.clipFraction,
    kept_tokens: s.policy.keptTokens,
    valid_tokens: m.tokens,
    grad_norm_policy: s.gradNormPolicy,
    grad_norm_actor: s.gradNormActor,
    lr_policy: s.lrPolicy,
    lr_actor: s.lrActor,
  };
}

/** Columns of {@link iterationRow}, in order. */
export const ITERATION_COLUMNS = [
  "iteration",
  "reward",
  "solved",
  "lambda",
  "mean_length",
  "stopped",
  "flat_groups",
  "tokens",
  "loss",
  "accept_rate",
  "kappa",
  "z_approx",
  "k1",
  "k3",
  "kl_policy_actor",
  "entropy_policy",
  "clip_fraction",
  "ess",
  "grad_norm_policy",
  "rollout_seconds",
  "train_seconds",
  "gpu_mb",
  "gpu_peak_mb",
] as const;

// Mean of a step column over the iteration's steps, weighted by their valid tokens (null when a
// mode leaves it out): the iteration's value as if it were one batch.
function weighted(log: RlIterationLog, pick: (s: RlStepLog) => number | null): number | null {
  let sum = 0, weight = 0;
  for (const s of log.steps) {
    const v = pick(s);
    if (v === null || !Number.isFinite(v)) continue;
    sum += v * s.mismatch.tokens;
    weight += s.mismatch.tokens;
  }
  return weight > 0 ? sum / weight : null;
}

/**
 * The row of one iteration: the batch's reward and lengths, the token-weighted means of its
 * steps' statistics (the acceptance as accepted / valid over the whole batch), the mean loss and
 * the largest policy gradient norm of its steps.
 *
 * @example
 * ```ts
 * console.log(iterationRow(await trainer.iterate()));
 * ```
 */
export function iterationRow(log: RlIterationLog): LogRow {
  let accepted = 0, valid = 0;
  for (const s of log.steps) {
    if (!s.jackpot) continue;
    accepted += s.jackpot.acceptedCount;
    valid += s.jackpot.validCount;
  }
  const steps = log.steps.length;
  return {
    iteration: log.iteration,
    reward: log.rewardMean,
    solved: log.solved,
    lambda: log.steps.some((s) => s.jackpot) ? log.lambda : null,
    mean_length: log.meanLength,
    stopped: log.stopped,
    flat_groups: log.flatGroups,
    tokens: log.tokens,
    loss: steps ? log.steps.reduce((a, s) => a + s.loss, 0) / steps : null,
    accept_rate: valid > 0 ? accepted / valid : null,
    kappa: weighted(log, (s) => s.jackpot?.kappa ?? null),
    z_approx: weighted(log, (s) => s.jackpot?.meanZApprox ?? null),
    k1: weighted(log, (s) => s.mismatch.k1),
    k3: weighted(log, (s) => s.mismatch.k3),
    kl_policy_actor: weighted(log, (s) => s.mismatch.klPolicyActor),
    entropy_policy: weighted(log, (s) => s.mismatch.entropyPolicy),
    clip_fraction: weighted(log, (s) => s.policy.clipFraction),
    ess: weighted(log, (s) => s.jackpot?.ess ?? null),
    grad_norm_policy: steps ? Math.max(...log.steps.map((s) => s.gradNormPolicy)) : null,
    rollout_seconds: log.rolloutSeconds,
    train_seconds: log.trainSeconds,
    gpu_mb: log.gpuBytes / 2 ** 20,
    gpu_peak_mb: log.gpuPeakBytes / 2 ** 20,
  };
}
