/**
 * Per-token Jackpot quantities from the sampled tokens' log-probabilities (SPEC §2–4): log acceptance,
 * the mask, the batch bias correction κ, Z_t, the weight w and the clipped weight ρ, with the batch
 * statistics of SPEC §8. The batch front ends (`batch.ts`) compute Z_approx and call this.
 *
 * Numerics: the acceptance is never clamped (log a ≤ 0 cannot overflow); the ratios inside w and ρ
 * are computed as log-ratios clamped to ±{@link LOG_RATIO_CLAMP} before exp (SPEC §4).
 *
 * @module
 */
import { sampleMask } from "./mask.ts";
import { checkLambda, checkLength, checkPositive, LOG_SUM_TOLERANCE } from "./validate.ts";

/** Log-ratios are clamped to ±20 before exp (SPEC §4). */
export const LOG_RATIO_CLAMP = 20;

/**
 * clamp(logA − logB, −20, 20), with 0 when both are -Infinity (a token impossible under both
 * distributions has ratio 1 by convention, matching a = 1 where pInf = 0).
 */
export function clampedLogRatio(logA: number, logB: number): number {
  const d = logA - logB;
  if (Number.isNaN(d)) return 0;
  return Math.min(LOG_RATIO_CLAMP, Math.max(-LOG_RATIO_CLAMP, d));
}

/**
 * log a = min(0, ℓ_target − ℓ_inf − log λ); 0 (accept) when ℓ_inf = -Infinity, the same convention
 * as `acceptanceProbs`.
 *
 * @example
 * ```ts
 * logAcceptance(Math.log(0.2), Math.log(0.4), 1); // log 0.5
 * ```
 */
export function logAcceptance(logTarget: number, logInf: number, lambda: number): number {
  if (logInf === -Infinity) return 0;
  return Math.min(0, logTarget - logInf - Math.log(lambda));
}

/** Which policy OBRS aligns p_inf to (SPEC §1). */
export type ObrsTarget = "ref" | "new";

/** Options of the per-token weights. */
export interface ObrsWeightOptions {
  /** OBRS budget parameter λ > 0; larger rejects more. */
  lambda: number;
  /** Clip of the Jackpot weight w. */
  c1: number;
  /** Clip of p_ref/p_new (used only when target is "new"). */
  c2: number;
  /** p_target: "ref" (p_ref) or "new" (p_new, Algorithm 1). */
  target: ObrsTarget;
  /** Seed of the mask (see `sampleMask` for the contract). */
  seed: number;
}

/** Log-probabilities of the sampled token at each of N positions, and which positions count. */
export interface TokenLogProbs {
  /** ℓ_inf(x) [N]: as recorded at generation. */
  logpInf: Float64Array;
  /** ℓ_ref(x) [N]. */
  logpRef: Float64Array;
  /** ℓ_new(x) [N]. */
  logpNew: Float64Array;
  /** 1 for real tokens, 0 for padding [N]. */
  valid: Uint8Array;
}

/** Batch statistics (SPEC §8). Means over valid tokens unless said otherwise; never NaN. */
export interface ObrsBatchStats {
  /** Number of valid tokens. */
  validCount: number;
  /** Number of accepted tokens (M = 1; always valid). */
  acceptedCount: number;
  /** ᾱ = accepted / valid; 0 when there are no valid tokens. */
  acceptRate: number;
  /** κ = ᾱ / mean(Z_approx); 0 when there are no valid tokens or mean(Z_approx) = 0. */
  kappa: number;
  /** mean Z_approx over valid tokens; 0 when none. */
  meanZApprox: number;
  /** mean exact Z over valid tokens; null when exact Z was not computed. */
  meanZExact: number | null;
  /** mean of Z_approx / Z over valid tokens (0/0 counts as 1); null without exact Z. */
  zApproxOverZ: number | null;
  /** mean of w over accepted tokens; 0 when none. */
  weightMean: number;
  /** max of w over accepted tokens; 0 when none. */
  weightMax: number;
  /** mean of ρ over accepted tokens; 0 when none. */
  rhoMean: number;
  /** fraction of accepted tokens with w > c1. */
  clipFractionC1: number;
  /** fraction of accepted tokens with p_ref/p_new > c2 (0 when target is "ref"). */
  clipFractionC2: number;
  /** fraction of accepted tokens where either clip binds. */
  clippedFraction: number;
  /** effective sample size (Σw)² / Σw² over accepted tokens; 0 when none or all w = 0. */
  ess: number;
}

/** Everything the policy loss needs from OBRS for one batch, per token [N]. */
export interface ObrsBatchResult {
  /** The target the weights were computed for. */
  target: ObrsTarget;
  /** λ used. */
  lambda: number;
  /** log a(x) per token (computed for every valid token, 0 for invalid ones). */
  logAccept: Float64Array;
  /** M(x): 1 accepted, 0 rejected or invalid. */
  mask: Uint8Array;
  /** Z_approx per token (0 for invalid). */
  zApprox: Float64Array;
  /** exact Z per token (0 for invalid), or null when p_inf's full rows were not available. */
  zExact: Float64Array | null;
  /** Z_t = κ·Z_approx per token. */
  zT: Float64Array;
  /** w = Z_t·max(λ, p_target/p_inf) per valid token (0 for invalid); the loss multiplies by M. */
  weight: Float64Array;
  /** ρ = min(w, c1)·min(p_ref/p_new, c2) (second factor 1 for target "ref"); 0 for invalid. */
  rho: Float64Array;
  /** Batch statistics. */
  stats: ObrsBatchStats;
}

/** Checks the options shared by every OBRS batch function. */
export function checkWeightOptions(options: ObrsWeightOptions): void {
  checkLambda(options.lambda);
  checkPositive("c1", options.c1);
  checkPositive("c2", options.c2);
  if (options.target !== "ref" && options.target !== "new") {
    throw new RangeError(`target must be "ref" or "new", got ${String(options.target)}`);
  }
  if (!Number.isInteger(options.seed)) {
    throw new RangeError(`seed must be an integer, got ${options.seed}`);
  }
}

/** Checks the per-token arrays: lengths N, valid entries 0/1, log-probs of valid tokens usable. */
export function checkTokens(tokens: TokenLogProbs): number {
  const n = tokens.valid.length;
  checkLength("logpInf", tokens.logpInf, n, "[N]");
  checkLength("logpRef", tokens.logpRef, n, "[N]");
  checkLength("logpNew", tokens.logpNew, n, "[N]");
  for (let t = 0; t < n; t++) {
    if (tokens.valid[t] > 1) {
      throw new RangeError(`valid[${t}] = ${tokens.valid[t]}, expected 0 or 1`);
    }
    if (!tokens.valid[t]) continue;
    for (const name of ["logpInf", "logpRef", "logpNew"] as const) {
      const value = tokens[name][t];
      if (Number.isNaN(value) || value > LOG_SUM_TOLERANCE) {
        throw new RangeError(`${name}[${t}] = ${value} is not a log-probability`);
      }
    }
  }
  return n;
}

/**
 * The Jackpot per-token quantities for a batch whose Z_approx (and optionally exact Z) per token is
 * already known. κ and ᾱ are over valid tokens (SPEC §3 choice: tokens, not sequences).
 *
 * @example
 * ```ts
 * const result = obrsTokenWeights(tokens, zApprox, null, { lambda: 1, c1: 3, c2: 3, target: "new", seed: 0 });
 * ```
 */
export function obrsTokenWeights(
  tokens: TokenLogProbs,
  zApprox: Float64Array,
  zExact: Float64Array | null,
  options: ObrsWeightOptions,
): ObrsBatchResult {
  checkWeightOptions(options);
  const n = checkTokens(tokens);
  checkLength("zApprox", zApprox, n, "[N]");
  if (zExact) checkLength("zExact", zExact, n, "[N]");
  const { lambda, c1, c2, target, seed } = options;
  const { valid, logpInf, logpRef, logpNew } = tokens;
  const logpTarget = target === "ref" ? logpRef : logpNew;

  const logAccept = new Float64Array(n);
  let validCount = 0;
  let sumZApprox = 0;
  let sumZExact = 0;
  let sumRatio = 0;
  for (let t = 0; t < n; t++) {
    if (!valid[t]) continue;
    if (!(zApprox[t] >= 0 && zApprox[t] < Infinity)) {
      throw new RangeError(`zApprox[${t}] = ${zApprox[t]}, expected a finite number >= 0`);
    }
    validCount++;
    logAccept[t] = logAcceptance(logpTarget[t], logpInf[t], lambda);
    sumZApprox += zApprox[t];
    if (zExact) {
      sumZExact += zExact[t];
      sumRatio += zExact[t] > 0 ? zApprox[t] / zExact[t] : 1;
    }
  }

  const mask = sampleMask(logAccept, seed);
  let acceptedCount = 0;
  for (let t = 0; t < n; t++) {
    if (!valid[t]) mask[t] = 0;
    acceptedCount += mask[t];
  }
  const acceptRate = validCount > 0 ? acceptedCount / validCount : 0;
  const meanZApprox = validCount > 0 ? sumZApprox / validCount : 0;
  const kappa = meanZApprox > 0 ? acceptRate / meanZApprox : 0;

  const zT = new Float64Array(n);
  const weight = new Float64Array(n);
  const rho = new Float64Array(n);
  let sumW = 0, sumW2 = 0, maxW = 0, sumRho = 0, clip1 = 0, clip2 = 0, clipped = 0;
  for (let t = 0; t < n; t++) {
    if (!valid[t]) continue;
    zT[t] = kappa * zApprox[t];
    weight[t] = zT[t] * Math.max(lambda, Math.exp(clampedLogRatio(logpTarget[t], logpInf[t])));
    const refOverNew = target === "new" ? Math.exp(clampedLogRatio(logpRef[t], logpNew[t])) : 1;
    rho[t] = Math.min(weight[t], c1) * (target === "new" ? Math.min(refOverNew, c2) : 1);
    if (!mask[t]) continue;
    sumW += weight[t];
    sumW2 += weight[t] * weight[t];
    maxW = Math.max(maxW, weight[t]);
    sumRho += rho[t];
    const binds1 = weight[t] > c1;
    const binds2 = target === "new" && refOverNew > c2;
    clip1 += binds1 ? 1 : 0;
    clip2 += binds2 ? 1 : 0;
    clipped += binds1 || binds2 ? 1 : 0;
  }
  const perAccepted = (x: number) => (acceptedCount > 0 ? x / acceptedCount : 0);
  const stats: ObrsBatchStats = {
    validCount,
    acceptedCount,
    acceptRate,
    kappa,
    meanZApprox,
    meanZExact: zExact ? (validCount > 0 ? sumZExact / validCount : 0) : null,
    zApproxOverZ: zExact ? (validCount > 0 ? sumRatio / validCount : 1) : null,
    weightMean: perAccepted(sumW),
    weightMax: maxW,
    rhoMean: perAccepted(sumRho),
    clipFractionC1: perAccepted(clip1),
    clipFractionC2: perAccepted(clip2),
    clippedFraction: perAccepted(clipped),
    ess: sumW2 > 0 ? (sumW * sumW) / sumW2 : 0,
  };
  // Copies with invalid entries zeroed, so the result never echoes padding garbage.
  const keep = (z: Float64Array) => z.map((value, t) => (valid[t] ? value : 0));
  return {
    target,
    lambda,
    logAccept,
    mask,
    zApprox: keep(zApprox),
    zExact: zExact ? keep(zExact) : null,
    zT,
    weight,
    rho,
    stats,
  };
}
