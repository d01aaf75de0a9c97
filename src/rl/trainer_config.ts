/**
 * The hyper-parameters of an RL run (SPEC §1–7), their defaults and one validation that names the
 * first bad value. Everything the paper leaves open is here and configurable.
 *
 * @module
 */
import type { KLDirection } from "./distill_reference.ts";
import type { PolicyLossAggregation } from "./policy_loss_reference.ts";
import { POLICY_LOSS_AGGREGATIONS } from "./policy_loss_reference.ts";
import { isRlMode, RL_MODE_NAMES, RL_MODES, type RlMode } from "./modes.ts";

/** Everything an RL run needs beyond the models and the task. */
export interface RlConfig {
  /** Policy-loss correction (see `RL_MODES`). */
  mode: RlMode;
  /** Train on another model's rollouts with no correction ("no-correction") anyway. */
  allowUncorrected: boolean;
  /** Prompts per rollout batch. */
  prompts: number;
  /** Samples per prompt (a GRPO group). */
  groupSize: number;
  /**
   * Rows per training step. The rollout batch (prompts × groupSize rows) is consumed in
   * rows / minibatch steps, each later one more off-policy (SPEC §7's staleness; the paper's 64×
   * and 128× settings are a rollout batch 64 or 128 times the mini-batch).
   */
  minibatch: number;
  /** Tokens generated per row at most (the stop token included). */
  maxNew: number;
  /** Sampling temperature (> 0); the trainer replays it on both models' logits. */
  temperature: number;
  /** Top-k (ids, log-probs) captured per generated token (≥ k). */
  captureK: number;
  /** OBRS budget λ > 0 (larger rejects more); ignored when `budget` is set. */
  lambda: number;
  /** When set, λ is chosen each rollout batch so the mean acceptance is this ā in (0, 1]. */
  budget: number | null;
  /** Top-k size behind Z_approx. */
  k: number;
  /** Clip of w. */
  c1: number;
  /** Clip of p_ref/p_new. */
  c2: number;
  /** p_target of OBRS. */
  target: "new" | "ref";
  /** Also compute exact Z (a diagnostic: reads both logits again). */
  exactZ: boolean;
  /** TIS cap C. */
  tisCap: number;
  /** IcePop's band [α, β] on p_ref/p_inf. */
  icepopLow: number;
  /** See `icepopLow`. */
  icepopHigh: number;
  /** PPO clips 1 − ε_low, 1 + ε_high (both models). */
  epsLow: number;
  /** See `epsLow`. */
  epsHigh: number;
  /** Aggregation of both PPO terms. */
  aggregation: PolicyLossAggregation;
  /** GRPO: divide by the group's std (false: mean-centring only). */
  normalizeStd: boolean;
  /** λ_distill ≥ 0 of the rollout model's KL term (0: PPO only). */
  distill: number;
  /** Direction of the distillation KL. */
  distillDirection: KLDirection;
  /** When set, λ_distill follows this actor–policy KL target (closed loop, SPEC §6). */
  distillTargetKL: number | null;
  /** Train the rollout model beside the policy (Eq. 6–8); false keeps it frozen. */
  trainActor: boolean;
  /** Learning rate of the policy (0 allowed: the sanity run where every ratio stays 1). */
  lrPolicy: number;
  /** Learning rate of the rollout model. */
  lrActor: number;
  /** AdamW weight decay (both). */
  weightDecay: number;
  /** Global gradient-norm clip (both; 0: none). */
  maxGradNorm: number;
  /** Seed of prompts, sampling and masks. */
  seed: number;
}

/** Defaults: the paper's hyper-parameters where it gives them (λ 1, k 20, c1 = c2 = 3). */
export const RL_DEFAULTS: RlConfig = {
  mode: "jackpot",
  allowUncorrected: false,
  prompts: 16,
  groupSize: 8,
  minibatch: 32,
  maxNew: 16,
  temperature: 1,
  captureK: 20,
  lambda: 1,
  budget: null,
  k: 20,
  c1: 3,
  c2: 3,
  target: "new",
  exactZ: false,
  tisCap: 2,
  icepopLow: 0.5,
  icepopHigh: 2,
  epsLow: 0.2,
  epsHigh: 0.28,
  aggregation: "token-mean",
  normalizeStd: true,
  distill: 0.1,
  distillDirection: "forward",
  distillTargetKL: null,
  trainActor: true,
  lrPolicy: 1e-4,
  lrActor: 1e-4,
  weightDecay: 0,
  maxGradNorm: 1,
  seed: 1,
};

/** A configuration the trainer refuses; the message names the value and what to change. */
export class RlConfigError extends Error {
  /** @param message what is wrong and how to fix it */
  constructor(message: string) {
    super(message);
    this.name = "RlConfigError";
  }
}

/**
 * Applies the defaults and checks every value; `RlConfigError` names the first bad one.
 *
 * @example
 * ```ts
 * const c = resolveRlConfig({ mode: "tis", prompts: 8, groupSize: 4, minibatch: 8 });
 * c.lambda; // 1
 * ```
 */
export function resolveRlConfig(partial: Partial<RlConfig> = {}): RlConfig {
  const c: RlConfig = { ...RL_DEFAULTS, ...partial };
  const fail = (m: string): never => {
    throw new RlConfigError(m);
  };
  if (!isRlMode(c.mode)) {
    fail(`mode "${c.mode}" is not one of ${RL_MODE_NAMES.join(", ")}`);
  }
  if (c.mode === "no-correction" && !c.allowUncorrected) {
    fail(
      'mode "no-correction" trains the policy on another model\'s rollouts with no correction, ' +
        "which collapses (SPEC §10); pass allowUncorrected (--allow-uncorrected) to run it anyway",
    );
  }
  const int = (name: keyof RlConfig, min: number) => {
    const v = c[name] as number;
    if (!(Number.isInteger(v) && v >= min)) fail(`${name} must be an integer >= ${min}, got ${v}`);
  };
  const pos = (name: keyof RlConfig, allowZero = false) => {
    const v = c[name] as number;
    const ok = typeof v === "number" && Number.isFinite(v) && (allowZero ? v >= 0 : v > 0);
    if (!ok) fail(`${name} must be a finite number ${allowZero ? ">= 0" : "> 0"}, got ${v}`);
  };
  int("prompts", 1);
  int("groupSize", 1);
  int("minibatch", 1);
  int("maxNew", 1);
  int("k", 1);
  int("captureK", 1);
  if (!(Number.isInteger(c.seed) && c.seed >= 0 && c.seed <= 0xffffffff)) {
    fail(`seed must be an integer in [0, 2^32), got ${c.seed}`);
  }
  const rows = c.prompts * c.groupSize;
  if (rows % c.minibatch !== 0) {
    fail(
      `minibatch ${c.minibatch} must divide the rollout batch (prompts ${c.prompts} × groupSize ` +
        `${c.groupSize} = ${rows} rows)`,
    );
  }
  if (c.captureK < c.k) {
    fail(`captureK ${c.captureK} must be >= k ${c.k} (the actor's top-k comes from the capture)`);
  }
  for (const n of ["temperature", "lambda", "c1", "c2", "tisCap"] as const) pos(n);
  // learning rate 0 is SPEC §10's sanity check: every ratio stays exactly 1
  for (
    const n of [
      "lrPolicy",
      "lrActor",
      "epsLow",
      "epsHigh",
      "distill",
      "weightDecay",
      "maxGradNorm",
    ] as const
  ) {
    pos(n, true);
  }
  if (c.budget !== null && !(c.budget > 0 && c.budget <= 1)) {
    fail(`budget must be in (0, 1], got ${c.budget}`);
  }
  if (
    c.distillTargetKL !== null && !(c.distillTargetKL > 0 && Number.isFinite(c.distillTargetKL))
  ) {
    fail(`distillTargetKL must be a finite number > 0, got ${c.distillTargetKL}`);
  }
  if (c.distillTargetKL !== null && !(c.distill > 0)) {
    fail("distillTargetKL needs distill > 0 (its starting value)");
  }
  if (!(c.icepopLow >= 0 && c.icepopHigh >= c.icepopLow && c.icepopHigh < Infinity)) {
    fail(`icepop band [${c.icepopLow}, ${c.icepopHigh}] needs 0 <= low <= high < Infinity`);
  }
  if (c.target !== "new" && c.target !== "ref") {
    fail(`target must be "new" or "ref", got ${c.target}`);
  }
  if (c.mode === "jackpot-no-clip" && c.target !== "new") {
    fail('mode "jackpot-no-clip" needs target "new" (its weight is p_new / P_OBRS)');
  }
  if (!POLICY_LOSS_AGGREGATIONS.includes(c.aggregation)) {
    fail(`aggregation must be one of ${POLICY_LOSS_AGGREGATIONS.join(", ")}, got ${c.aggregation}`);
  }
  if (c.distillDirection !== "forward" && c.distillDirection !== "reverse") {
    fail(`distillDirection must be "forward" or "reverse", got ${c.distillDirection}`);
  }
  if (RL_MODES[c.mode].onPolicy) c.trainActor = false; // there is no rollout model to train
  return c;
}
