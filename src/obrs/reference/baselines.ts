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
  const rule = ruleFor(tokens, spec);
  const weight = new Float64Array(n);
  const mask = new Uint8Array(n);
  for (let t = 0; t < n; t++) {
    if (!tokens.valid[t]) continue;
    const w = rule(t);
    if (w === null) continue;
    weight[t] = w;
    mask[t] = 1;
  }
  return { weight, mask };
}

/** The weight of valid token t under a baseline, or null when the baseline masks it. */
type Rule = (t: number) => number | null;

function ruleFor(tokens: TokenLogProbs, spec: BaselineSpec): Rule {
  const { valid, logpInf, logpRef, logpNew } = tokens;
  const ratio = (num: Float64Array, t: number) => Math.exp(clampedLogRatio(num[t], logpInf[t]));
  switch (spec.kind) {
    case "on-policy":
    case "no-correction":
      return () => 1;
    case "is":
      return (t) => ratio(logpRef, t);
    case "tis":
      checkPositive("cap", spec.cap);
      return (t) => Math.min(ratio(logpRef, t), spec.cap);
    case "icepop": {
      const { alpha, beta } = spec;
      if (!(alpha >= 0 && beta >= alpha && beta < Infinity)) {
        throw new RangeError(`icepop needs 0 <= alpha <= beta < Infinity, got [${alpha}, ${beta}]`);
      }
      return (t) => {
        const r = ratio(logpRef, t);
        return r >= alpha && r <= beta ? r : null;
      };
    }
    case "no-clip":
      return (t) => ratio(logpNew, t);
    case "no-clip-obrs": {
      const { obrs } = spec;
      if (obrs.target !== "new") {
        throw new RangeError('no-clip-obrs needs OBRS computed with target "new"');
      }
      if (obrs.weight.length !== valid.length) {
        throw new RangeError(
          `no-clip-obrs: obrs has ${obrs.weight.length} tokens, expected ${valid.length}`,
        );
      }
      return (t) => (obrs.mask[t] ? obrs.weight[t] : null);
    }
    case "mask-only": {
      checkLambda(spec.lambda);
      const target = spec.target === "new" ? logpNew : logpRef;
      const logAccept = new Float64Array(valid.length);
      for (let t = 0; t < valid.length; t++) {
        if (valid[t]) logAccept[t] = logAcceptance(target[t], logpInf[t], spec.lambda);
      }
      const m = sampleMask(logAccept, spec.seed);
      return (t) => (m[t] ? 1 : null);
    }
    default: {
      const unknown: never = spec;
      throw new RangeError(`unknown baseline ${(unknown as { kind: string }).kind}`);
    }
  }
}
