/**
 * Per-token weights of the baselines of SPEC §5, from the sampled tokens' log-probabilities. One
 * function with a discriminated union, so a trainer switches method by data rather than by code path.
 * Every ratio is a clamped log-ratio (±20) before exp, like the Jackpot weights.
 *
 * | kind            | weight                          | mask                      |
 * |-----------------|---------------------------------|---------------------------|
 * | `on-policy`     | 1                               | valid                     |
 * | `no-correction` | 1                               | valid                     |
 * | `is`            | p_ref / p_inf                   | valid                     |
 * | `tis`           | min(p_ref / p_inf, cap)         | valid                     |
 * | `icepop`        | p_ref / p_inf inside [α, β]     | valid and inside [α, β]   |
 * | `no-clip`       | p_new / p_inf                   | valid                     |
 * | `no-clip-obrs`  | p_new / P_OBRS = Z_t·max(λ, p_new/p_inf) | the OBRS mask    |
 * | `mask-only`     | 1                               | the OBRS mask             |
 *
 * For the no-clip forms the trainer uses the ratio p_new / SG(p_new) (value 1, so PPO's clip never
 * binds) and takes the gradient through it; this module only gives the detached weight.
 *
 * @module
 */
import { sampleMask } from "./mask.ts";
import { checkLambda, checkPositive } from "./validate.ts";
import {
  checkTokens,
  clampedLogRatio,
  logAcceptance,
  type ObrsBatchResult,
  type ObrsTarget,
  type TokenLogProbs,
} from "./weights.ts";

/** Which baseline, with its parameters. */
export type BaselineSpec =
  | { kind: "on-policy" }
  | { kind: "no-correction" }
  | { kind: "is" }
  | { kind: "tis"; cap: number }
  | { kind: "icepop"; alpha: number; beta: number }
  | { kind: "no-clip" }
  /** `obrs` must have been computed with target "new" on the same tokens. */
  | { kind: "no-clip-obrs"; obrs: ObrsBatchResult }
  | { kind: "mask-only"; lambda: number; seed: number; target: ObrsTarget };

/** Per-token weight and mask [N]; both 0 on invalid or masked tokens. */
export interface BaselineWeights {
  /** SG weight on the PPO term. */
  weight: Float64Array;
  /** 1 where the token stays in the loss. */
  mask: Uint8Array;
}

/**
 * The per-token weight and mask of a SPEC §5 baseline.
 *
 * @example
 * ```ts
 * const { weight, mask } = baselineWeights(tokens, { kind: "tis", cap: 2 });
 * ```
 */
export function baselineWeights(tokens: TokenLogProbs, spec: BaselineSpec): BaselineWeights {
  const n = checkTokens(tokens);
  const { valid, logpInf, logpRef, logpNew } = tokens;
  const weight = new Float64Array(n);
  const mask = new Uint8Array(n);
  const ratio = (t: number, num: Float64Array) => Math.exp(clampedLogRatio(num[t], logpInf[t]));
  switch (spec.kind) {
    case "on-policy":
    case "no-correction":
      for (let t = 0; t < n; t++) [weight[t], mask[t]] = valid[t] ? [1, 1] : [0, 0];
      break;
    case "is":
      for (let t = 0; t < n; t++) if (valid[t]) [weight[t], mask[t]] = [ratio(t, logpRef), 1];
      break;
    case "tis":
      checkPositive("cap", spec.cap);
      for (let t = 0; t < n; t++) {
        if (valid[t]) [weight[t], mask[t]] = [Math.min(ratio(t, logpRef), spec.cap), 1];
      }
      break;
    case "icepop": {
      const { alpha, beta } = spec;
      if (!(alpha >= 0 && beta >= alpha && beta < Infinity)) {
        throw new RangeError(`icepop needs 0 <= alpha <= beta < Infinity, got [${alpha}, ${beta}]`);
      }
      for (let t = 0; t < n; t++) {
        if (!valid[t]) continue;
        const r = ratio(t, logpRef);
        if (r >= alpha && r <= beta) [weight[t], mask[t]] = [r, 1];
      }
      break;
    }
    case "no-clip":
      for (let t = 0; t < n; t++) if (valid[t]) [weight[t], mask[t]] = [ratio(t, logpNew), 1];
      break;
    case "no-clip-obrs": {
      const { obrs } = spec;
      if (obrs.target !== "new") {
        throw new RangeError('no-clip-obrs needs OBRS computed with target "new"');
      }
      if (obrs.weight.length !== n) {
        throw new RangeError(`no-clip-obrs: obrs has ${obrs.weight.length} tokens, expected ${n}`);
      }
      for (let t = 0; t < n; t++) {
        if (valid[t] && obrs.mask[t]) [weight[t], mask[t]] = [obrs.weight[t], 1];
      }
      break;
    }
    case "mask-only": {
      checkLambda(spec.lambda);
      const target = spec.target === "new" ? logpNew : logpRef;
      const logAccept = new Float64Array(n);
      for (let t = 0; t < n; t++) {
        if (valid[t]) logAccept[t] = logAcceptance(target[t], logpInf[t], spec.lambda);
      }
      const m = sampleMask(logAccept, spec.seed);
      for (let t = 0; t < n; t++) if (valid[t] && m[t]) [weight[t], mask[t]] = [1, 1];
      break;
    }
    default: {
      const unknown: never = spec;
      throw new RangeError(`unknown baseline ${(unknown as { kind: string }).kind}`);
    }
  }
  return { weight, mask };
}
