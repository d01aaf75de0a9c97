/**
 * The policy-loss corrections a run can use (SPEC §4–5), as data: which model generates, whether
 * a rollout model is trained beside the policy, and the per-token weight, mask and ratio form of
 * the policy's PPO term. {@link modeWeights} builds them on the GPU from one `jackpotTensors`
 * result (which also carries the baselines' weights); `baselineWeights` in
 * `src/obrs/reference/baselines.ts` is the float64 reference of every row of the table below.
 *
 * | mode              | rollouts by | weight on the PPO term         | mask            | ratio   |
 * |-------------------|-------------|--------------------------------|-----------------|---------|
 * | `on-policy`       | policy      | 1                              | valid           | clip    |
 * | `no-correction`   | actor       | 1                              | valid           | clip    |
 * | `is`              | actor       | p_ref / p_inf                  | valid           | clip    |
 * | `tis`             | actor       | min(p_ref / p_inf, C)          | valid           | clip    |
 * | `icepop`          | actor       | p_ref / p_inf inside [α, β]    | inside [α, β]   | clip    |
 * | `no-clip`         | actor       | p_new / p_inf                  | valid           | no-clip |
 * | `jackpot`         | actor       | ρ = min(w, c1)·min(p_ref/p_new, c2) | OBRS mask  | clip    |
 * | `jackpot-no-clip` | actor       | w = p_new / P_OBRS             | OBRS mask       | no-clip |
 * | `mask-only`       | actor       | 1                              | OBRS mask       | clip    |
 *
 * @module
 */
import { ops } from "../autograd/mod.ts";
import type { Tensor } from "../tensor/mod.ts";
import type { PolicyRatioMode } from "./policy_loss_reference.ts";
import type { JackpotTensors } from "./jackpot_tensors.ts";
// log-ratios are clamped before exp, as every weight of the OBRS reference is
import { LOG_RATIO_CLAMP } from "../obrs/reference/mod.ts";

/** A policy-loss correction (see the module table). */
export type RlMode =
  | "on-policy"
  | "no-correction"
  | "is"
  | "tis"
  | "icepop"
  | "no-clip"
  | "jackpot"
  | "jackpot-no-clip"
  | "mask-only";

/** What a mode is, for validation, help texts and reports. */
export interface RlModeInfo {
  /** One line for `--help`. */
  summary: string;
  /** Whether the policy generates its own rollouts (no rollout model at all). */
  onPolicy: boolean;
  /** The ratio form of the policy's PPO term. */
  ratio: PolicyRatioMode;
  /** Whether the weights need the OBRS mask (the Jackpot kernels' output, not only diagnostics). */
  usesObrs: boolean;
}

/** Every mode with its description, in the order `--help` lists them. */
export const RL_MODES: Readonly<Record<RlMode, RlModeInfo>> = {
  "jackpot": {
    summary: "OBRS mask and the Jackpot weight rho (SPEC §4); the paper's method",
    onPolicy: false,
    ratio: "clip",
    usesObrs: true,
  },
  "on-policy": {
    summary: "the policy generates its own rollouts; no rollout model (the reference run)",
    onPolicy: true,
    ratio: "clip",
    usesObrs: false,
  },
  "no-correction": {
    summary: "actor rollouts with weight 1 (collapses; refused without --allow-uncorrected)",
    onPolicy: false,
    ratio: "clip",
    usesObrs: false,
  },
  "is": { summary: "weight p_ref/p_inf", onPolicy: false, ratio: "clip", usesObrs: false },
  "tis": {
    summary: "weight min(p_ref/p_inf, C) (truncated IS)",
    onPolicy: false,
    ratio: "clip",
    usesObrs: false,
  },
  "icepop": {
    summary: "weight p_ref/p_inf, tokens outside [alpha, beta] masked",
    onPolicy: false,
    ratio: "clip",
    usesObrs: false,
  },
  "no-clip": {
    summary: "weight p_new/p_inf with ratio p_new/SG(p_new): PPO's clip never binds",
    onPolicy: false,
    ratio: "no-clip",
    usesObrs: false,
  },
  "jackpot-no-clip": {
    summary: "weight p_new/P_OBRS on OBRS-accepted tokens, ratio p_new/SG(p_new)",
    onPolicy: false,
    ratio: "no-clip",
    usesObrs: true,
  },
  "mask-only": {
    summary: "OBRS mask without the reweighting (ablation)",
    onPolicy: false,
    ratio: "clip",
    usesObrs: true,
  },
};

/** The mode names, in {@link RL_MODES} order. */
export const RL_MODE_NAMES: readonly RlMode[] = Object.keys(RL_MODES) as RlMode[];

/** Whether `s` names a mode. */
export function isRlMode(s: string): s is RlMode {
  return Object.hasOwn(RL_MODES, s);
}

/** The policy term's detached weight (absent: 1) and mask for one mini-batch. */
export interface ModeWeights {
  /** f32 `[B, T]` or absent (weight 1). */
  weight?: Tensor;
  /** `[B, T]` 1 keep, 0 leave out (u32 or f32). */
  mask: Tensor;
  /** The ratio form. */
  ratio: PolicyRatioMode;
}

/** Inputs of {@link modeWeights}: `[B, T]` tensors of one mini-batch. */
export interface ModeWeightInputs {
  /** u32 1 on generated tokens. */
  valid: Tensor;
  /** ℓ_new of the sampled tokens (detached here; only "no-clip" reads it). */
  logpNew: Tensor;
  /** ℓ_inf as sampled (only "no-clip" reads it). */
  logpInf: Tensor;
  /** The Jackpot result, with `baseline` computed (every mode but "on-policy"). */
  jackpot: JackpotTensors | null;
}

// Column j of the [B, T, 4] baseline tensor (IS, TIS, IcePop weight, IcePop mask) as [B, T].
function baselineColumn(baseline: Tensor, j: number): Tensor {
  const r = baseline.rank;
  const col = ops.slice(baseline, r - 1, j, j + 1);
  return ops.contiguous(ops.reshape(col, baseline.shape.slice(0, -1)));
}

/**
 * The policy term's weight, mask and ratio form under `mode` (see the module table), recorded on
 * the GPU without a readback. Call inside the step's `tidy`.
 *
 * @example
 * ```ts
 * const jt = jackpotTensors(inputs, { ...params, baseline: { tisCap: 2, icepopLow: 0.5, icepopHigh: 2 } });
 * const { weight, mask, ratio } = modeWeights("tis", { valid, logpNew, logpInf, jackpot: jt });
 * policyLoss({ logpNew, logpRef, advantages, weight, mask }, { ratio });
 * ```
 */
export function modeWeights(mode: RlMode, x: ModeWeightInputs): ModeWeights {
  const info = RL_MODES[mode];
  if (!info) throw new RangeError(`modeWeights: unknown mode ${String(mode)}`);
  const ratio = info.ratio;
  if (mode === "on-policy" || mode === "no-correction") return { mask: x.valid, ratio };
  if (mode === "no-clip") {
    const lr = ops.clamp(
      ops.sub(ops.detach(x.logpNew), x.logpInf),
      -LOG_RATIO_CLAMP,
      LOG_RATIO_CLAMP,
    );
    return { weight: ops.exp(lr), mask: x.valid, ratio };
  }
  const jt = x.jackpot;
  if (!jt) throw new RangeError(`modeWeights: mode "${mode}" needs the Jackpot tensors`);
  switch (mode) {
    case "jackpot":
      return { weight: jt.rho, mask: jt.mask, ratio };
    case "jackpot-no-clip":
      return { weight: jt.w, mask: jt.mask, ratio };
    case "mask-only":
      return { mask: jt.mask, ratio };
  }
  if (!jt.baseline) {
    throw new RangeError(`modeWeights: mode "${mode}" needs jackpotTensors with baseline`);
  }
  switch (mode) {
    case "is":
      return { weight: baselineColumn(jt.baseline, 0), mask: x.valid, ratio };
    case "tis":
      return { weight: baselineColumn(jt.baseline, 1), mask: x.valid, ratio };
    case "icepop":
      return {
        weight: baselineColumn(jt.baseline, 2),
        mask: baselineColumn(jt.baseline, 3),
        ratio,
      };
  }
  throw new RangeError(`modeWeights: mode "${mode}" has no weights`);
}
