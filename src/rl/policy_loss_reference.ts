/**
 * The policy loss of the RL trainer (SPEC §4 Eq. 5, §5 no-clip row) in float64: the oracle of the
 * GPU op in `policy_loss.ts`, with the options, their checks and the statistics' shape that both
 * share. No GPU here.
 *
 * Per token t of a `[B, T]` batch, with ℓ_new, ℓ_ref, Â, the detached weight ρ and the mask M:
 * - `"clip"`: d = ℓ_new − ℓ_ref, r = exp(clamp(d, ±20)),
 *   `L_t = ρ·M·min(r·Â, clip(r, 1 − ε_low, 1 + ε_high)·Â)`;
 * - `"no-clip"`: r = exp(ℓ_new − SG(ℓ_new)) = 1 with dr/dℓ_new = 1, `L_t = ρ·M·Â·r`
 *   (ℓ_ref is not read).
 *
 * The loss to minimise is −aggregate(L): `"token-mean"` Σ L / kept tokens, `"seq-mean-token-mean"`
 * the mean over sequences with a kept token of each one's token mean, `"seq-mean-token-sum"` Σ L / B.
 * `"seq-mean-token-sum"` divides by all B sequences, not only those with a kept token *(choice)*:
 * the denominator then does not depend on the random OBRS mask, so a sequence that loses every
 * token to rejection contributes 0 instead of scaling the others up (the expected loss stays
 * linear in the acceptance), and a fixed B gives a fixed scale per step (verl's choice too).
 * Its gradient flows only through r into ℓ_new: dL_t/dℓ_new = ρ·Â·r where the unclipped branch is
 * active and |d| ≤ 20 (the clamp passes no gradient outside, as torch.clamp), else 0.
 *
 * Mask values are 0 (left out, nothing else read) or 1 (kept); a kept token whose ℓ_new or ℓ_ref
 * is NaN or +Inf, or whose Â or ρ is not finite, and a token whose mask is neither 0 nor 1, is
 * "non-finite": left out like a masked one and counted (first index reported), never a NaN loss.
 * ℓ = −Inf is a valid log-probability (d is then ∓Inf, clamped; 0 when both are −Inf, as
 * `clampedLogRatio`).
 *
 * @module
 */
import { clampedLogRatio, LOG_RATIO_CLAMP } from "../obrs/reference/weights.ts";

/** How per-token terms become one loss. */
export type PolicyLossAggregation = "token-mean" | "seq-mean-token-mean" | "seq-mean-token-sum";

/** `"clip"`: PPO's clipped ratio to ℓ_ref; `"no-clip"`: r = p_new / SG(p_new) (SPEC §5). */
export type PolicyRatioMode = "clip" | "no-clip";

/** Every aggregation, in the order the GPU kernel numbers them. */
export const POLICY_LOSS_AGGREGATIONS: readonly PolicyLossAggregation[] = [
  "token-mean",
  "seq-mean-token-mean",
  "seq-mean-token-sum",
];

/** Options of the policy loss (GPU op and reference alike). */
export interface PolicyLossOptions {
  /** Ratio mode; default "clip". */
  ratio?: PolicyRatioMode;
  /** ε_low ≥ 0 (lower clip 1 − ε_low); default 0.2. */
  epsLow?: number;
  /** ε_high ≥ 0 (upper clip 1 + ε_high); default 0.2. */
  epsHigh?: number;
  /** Default "token-mean" (SPEC §4's choice). */
  aggregation?: PolicyLossAggregation;
}

/** {@link PolicyLossOptions} with defaults applied and checked. */
export type ResolvedPolicyLossOptions = Required<PolicyLossOptions>;

/**
 * Applies the defaults and checks the options; `op` names the caller in the errors.
 *
 * @example
 * ```ts
 * resolvePolicyLossOptions({ epsHigh: 0.28 }); // { ratio: "clip", epsLow: 0.2, epsHigh: 0.28, ... }
 * ```
 */
export function resolvePolicyLossOptions(
  o: PolicyLossOptions = {},
  op = "policyLoss",
): ResolvedPolicyLossOptions {
  const r: ResolvedPolicyLossOptions = {
    ratio: o.ratio ?? "clip",
    epsLow: o.epsLow ?? 0.2,
    epsHigh: o.epsHigh ?? 0.2,
    aggregation: o.aggregation ?? "token-mean",
  };
  if (r.ratio !== "clip" && r.ratio !== "no-clip") {
    throw new RangeError(`${op}: ratio must be "clip" or "no-clip", got ${String(r.ratio)}`);
  }
  for (const [name, v] of [["epsLow", r.epsLow], ["epsHigh", r.epsHigh]] as const) {
    if (!(typeof v === "number" && Number.isFinite(v) && v >= 0)) {
      throw new RangeError(`${op}: ${name} must be a finite number >= 0, got ${v}`);
    }
  }
  if (!POLICY_LOSS_AGGREGATIONS.includes(r.aggregation)) {
    throw new RangeError(
      `${op}: aggregation must be one of ${
        POLICY_LOSS_AGGREGATIONS.map((a) => `"${a}"`).join(", ")
      }, got ${String(r.aggregation)}`,
    );
  }
  return r;
}

/** Batch statistics of one policy loss (SPEC §8, §10); GPU and reference report the same. */
export interface PolicyLossStats {
  /** The loss to minimise: −aggregate(L). */
  loss: number;
  /** Σ L_t over kept tokens (unnormalised). */
  termSum: number;
  /** Kept tokens (mask 1 and finite inputs): the token-mean denominator. */
  keptTokens: number;
  /** Sequences with at least one kept token. */
  keptSequences: number;
  /** Sequences with no kept token (they contribute 0; SPEC §10). */
  emptySequences: number;
  /**
   * PPO clipfrac: fraction of kept tokens where the clipped branch binds and cuts the gradient,
   * Â > 0 and r > 1 + ε_high, or Â < 0 and r < 1 − ε_low (strict; 0 when no token is kept).
   */
  clipFraction: number;
  /** The Â < 0, r < 1 − ε_low part of {@link clipFraction}. */
  clipLowFraction: number;
  /** The Â > 0, r > 1 + ε_high part of {@link clipFraction}. */
  clipHighFraction: number;
  /** Mean r over kept tokens (after the clamp; 1 in "no-clip" mode; 0 when none is kept). */
  meanRatio: number;
  /** max |ℓ_new − ℓ_ref| over kept tokens before the ±20 clamp (Infinity for −Inf vs finite). */
  maxAbsLogRatio: number;
  /** Kept tokens with |ℓ_new − ℓ_ref| > 20 (their ratio was clamped, no gradient). */
  clampedTokens: number;
  /** Tokens left out for non-finite inputs or a mask not 0/1; index of the first, row-major. */
  nonFinite: { count: number; first: number | null };
}

/** One token's term, its derivative with respect to ℓ_new, and what the statistics count. */
export interface PolicyTokenTerm {
  /** L_t without the mask: ρ·min(r·Â, clip(r)·Â) (clip) or ρ·Â (no-clip). */
  value: number;
  /** dL_t/dℓ_new. */
  grad: number;
  /** r after the clamp. */
  ratio: number;
  /** |ℓ_new − ℓ_ref| before the clamp (0 when both are −Inf, and in no-clip mode). */
  absLogRatio: number;
  /** Which clip binds: "low" (Â < 0, r < 1 − ε_low), "high" (Â > 0, r > 1 + ε_high) or null. */
  clipped: "low" | "high" | null;
}

/**
 * The term of one kept token (inputs assumed valid; see the module comment).
 *
 * @example
 * ```ts
 * policyTokenTerm(Math.log(1.5), 0, 2, 1, resolvePolicyLossOptions()); // value 2.4, grad 0 (clipped)
 * ```
 */
export function policyTokenTerm(
  logpNew: number,
  logpRef: number,
  advantage: number,
  weight: number,
  o: ResolvedPolicyLossOptions,
): PolicyTokenTerm {
  if (o.ratio === "no-clip") {
    return {
      value: weight * advantage,
      grad: weight * advantage,
      ratio: 1,
      absLogRatio: 0,
      clipped: null,
    };
  }
  const raw = logpNew - logpRef;
  const absLogRatio = Number.isNaN(raw) ? 0 : Math.abs(raw); // −Inf − (−Inf): ratio 1
  const ratio = Math.exp(clampedLogRatio(logpNew, logpRef));
  const lo = 1 - o.epsLow, hi = 1 + o.epsHigh;
  const clipped = advantage > 0 && ratio > hi ? "high" : advantage < 0 && ratio < lo ? "low" : null;
  const value = weight * Math.min(ratio * advantage, Math.min(hi, Math.max(lo, ratio)) * advantage);
  const passes = clipped === null && absLogRatio <= LOG_RATIO_CLAMP;
  return { value, grad: passes ? weight * advantage * ratio : 0, ratio, absLogRatio, clipped };
}

/** Inputs of {@link policyLossRef}: row-major `[B, T]` arrays. */
export interface PolicyLossRefInputs {
  /** Sequences. */
  B: number;
  /** Positions per sequence. */
  T: number;
  /** ℓ_new of the sampled tokens. */
  logpNew: ArrayLike<number>;
  /** ℓ_ref (required in "clip" mode, unread in "no-clip"). */
  logpRef?: ArrayLike<number>;
  /** Â per token. */
  advantages: ArrayLike<number>;
  /** Detached weight ρ per token; default 1. */
  weight?: ArrayLike<number>;
  /** M: 1 keep, 0 leave out. */
  mask: ArrayLike<number>;
}

/** What {@link policyLossRef} computes. */
export interface PolicyLossRefResult {
  /** The loss to minimise. */
  loss: number;
  /** L_t per token (0 where masked or non-finite). */
  terms: Float64Array;
  /** d loss / d ℓ_new per token. */
  grad: Float64Array;
  /** Per sequence, the factor its terms carry in the aggregate (loss = −Σ_b seqScale_b Σ_t L_t). */
  seqScale: Float64Array;
  /** The statistics. */
  stats: PolicyLossStats;
}

const bad = (x: number) => Number.isNaN(x) || x === Infinity; // a log-prob may be −Inf

/**
 * The loss, per-token terms, gradient with respect to ℓ_new and statistics, in float64.
 *
 * @example
 * ```ts
 * const r = policyLossRef({ B: 1, T: 2, logpNew: [-1, -2], logpRef: [-1, -2],
 *   advantages: [1, 1], mask: [1, 0] }, resolvePolicyLossOptions());
 * r.loss; // -1: one kept token, ratio 1, Â 1
 * ```
 */
export function policyLossRef(
  x: PolicyLossRefInputs,
  o: ResolvedPolicyLossOptions,
): PolicyLossRefResult {
  const { B, T } = x;
  const n = B * T;
  if (!(Number.isInteger(B) && B >= 1 && Number.isInteger(T) && T >= 1)) {
    throw new RangeError(`policyLossRef: B and T must be integers >= 1, got ${B}, ${T}`);
  }
  if (o.ratio === "clip" && !x.logpRef) {
    throw new RangeError(`policyLossRef: ratio "clip" needs logpRef`);
  }
  const arrays: [string, ArrayLike<number> | undefined][] = [
    ["logpNew", x.logpNew],
    ["logpRef", x.logpRef],
    ["advantages", x.advantages],
    ["weight", x.weight],
    ["mask", x.mask],
  ];
  for (const [name, a] of arrays) {
    if (a && a.length !== n) {
      throw new RangeError(`policyLossRef: ${name} has ${a.length} values, [B, T] = [${B},${T}]`);
    }
  }
  const terms = new Float64Array(n), dterm = new Float64Array(n);
  const kept = new Uint8Array(n);
  const seqSum = new Float64Array(B), seqCount = new Float64Array(B);
  let clipLow = 0, clipHigh = 0, ratioSum = 0, maxAbs = 0, clampedTokens = 0;
  let nonFinite = 0, first: number | null = null;
  for (let i = 0; i < n; i++) {
    const m = x.mask[i];
    if (m === 0) continue;
    const ln = x.logpNew[i], lr = o.ratio === "clip" ? x.logpRef![i] : 0;
    const a = x.advantages[i], w = x.weight ? x.weight[i] : 1;
    if (m !== 1 || bad(ln) || bad(lr) || !Number.isFinite(a) || !Number.isFinite(w)) {
      nonFinite++;
      first ??= i;
      continue;
    }
    const t = policyTokenTerm(ln, lr, a, w, o);
    kept[i] = 1;
    terms[i] = t.value;
    dterm[i] = t.grad;
    const b = Math.floor(i / T);
    seqSum[b] += t.value;
    seqCount[b]++;
    if (t.clipped === "low") clipLow++;
    if (t.clipped === "high") clipHigh++;
    ratioSum += t.ratio;
    maxAbs = Math.max(maxAbs, t.absLogRatio);
    if (t.absLogRatio > LOG_RATIO_CLAMP) clampedTokens++;
  }
  let keptTokens = 0, keptSequences = 0, termSum = 0, seqMeans = 0;
  for (let b = 0; b < B; b++) {
    keptTokens += seqCount[b];
    termSum += seqSum[b];
    if (seqCount[b] > 0) {
      keptSequences++;
      seqMeans += seqSum[b] / seqCount[b];
    }
  }
  // the factor each sequence's dL_t/dℓ_new is multiplied by in d loss/dℓ_new (before the minus)
  const seqScale = (b: number) =>
    o.aggregation === "token-mean"
      ? 1 / Math.max(1, keptTokens)
      : o.aggregation === "seq-mean-token-mean"
      ? (seqCount[b] > 0 ? 1 / seqCount[b] : 0) / Math.max(1, keptSequences)
      : 1 / B;
  const aggregate = o.aggregation === "token-mean"
    ? termSum / Math.max(1, keptTokens)
    : o.aggregation === "seq-mean-token-mean"
    ? seqMeans / Math.max(1, keptSequences)
    : termSum / B;
  const grad = new Float64Array(n);
  for (let i = 0; i < n; i++) if (kept[i]) grad[i] = 0 - dterm[i] * seqScale(Math.floor(i / T)); // +0 where cut
  const per = (c: number) => c / Math.max(1, keptTokens);
  const stats: PolicyLossStats = {
    loss: 0 - aggregate, // +0, not -0, for an empty batch
    termSum,
    keptTokens,
    keptSequences,
    emptySequences: B - keptSequences,
    clipFraction: per(clipLow + clipHigh),
    clipLowFraction: per(clipLow),
    clipHighFraction: per(clipHigh),
    meanRatio: per(ratioSum),
    maxAbsLogRatio: maxAbs,
    clampedTokens,
    nonFinite: { count: nonFinite, first },
  };
  return {
    loss: stats.loss,
    terms,
    grad,
    seqScale: Float64Array.from({ length: B }, (_, b) => seqScale(b)),
    stats,
  };
}
