/**
 * Controllers of a Jackpot run that close a loop around a measured quantity (SPEC §6, "beyond the
 * paper"): {@link lambdaForTokenBudget} picks the OBRS λ of a batch from an acceptance budget ā
 * (Theorem 3.4), {@link AdaptiveKLCoefficient} steers the distillation weight λ_distill from the
 * measured actor–policy KL. Host-side float64; they take a few numbers per step, not tensors.
 *
 * @module
 */

/** The λ that meets an acceptance budget on a batch of sampled tokens. */
export interface LambdaForTokenBudget {
  /** OBRS budget parameter λ > 0 (larger rejects more). */
  lambda: number;
  /** log λ, computed without going through `lambda` (exact for ratios whose exp over/underflows). */
  logLambda: number;
  /** The batch acceptance A(λ) = mean_i min(1, exp(r_i) / λ), recomputed directly at λ. */
  acceptance: number;
}

/**
 * The λ at which the mean OBRS acceptance of a batch's sampled tokens equals `budget` (Theorem 3.4).
 *
 * `logRatio[i] = ℓ_target − ℓ_inf` is the natural-log probability ratio of valid sampled token i
 * (−Infinity where p_target = 0: such a token is rejected at every λ but still counts in the mean).
 * Token i is accepted with a_i(λ) = min(1, exp(r_i)/λ) and the batch acceptance is
 * A(λ) = mean_i a_i(λ), continuous and non-increasing in λ.
 *
 * Why the token mean: a valid token x_t is drawn from p_inf(·|s_t), so
 * E[a(x_t) | s_t] = Σ_v p_inf(v) min(1, p_target(v)/(λ p_inf(v))) = Z(s_t), the expected acceptance
 * at s_t (SPEC §2). A(λ) is therefore an unbiased estimate of the batch's expected acceptance rate,
 * the same quantity that ᾱ = accepted/valid measures and that κ calibrates against (SPEC §3), and it
 * needs only the sampled tokens' log-probabilities, not the vocabulary.
 *
 * The solution is exact, not a bisection: sort the ratios; on the piece of λ where the m largest
 * ratios have exp(r) ≥ λ, A(λ) = (m + S/λ)/n with S the sum of exp(r) over the rest, so
 * λ = S/(n·ā − m). Sums are taken relative to the largest ratio they contain, so ratios of e^{±700}
 * neither overflow nor underflow.
 *
 * - budget = the largest reachable acceptance (1 when no ratio is −Infinity): every λ ≤ exp(min r)
 *   meets it; the largest of them, exp(min r), is returned (the tightest alignment at that budget).
 * - RangeError for an empty input, a NaN or +Infinity ratio (naming its index), a budget outside
 *   (0, 1], every ratio −Infinity, a budget above the reachable maximum (finite count / n), or a λ
 *   outside float64's range.
 *
 * @example
 * ```ts
 * // Ratios p_target/p_inf = 2, 1, 1/2. At λ = 2 the tokens accept with 1, 1/2, 1/4: mean 7/12.
 * const { lambda, acceptance } = lambdaForTokenBudget([Math.log(2), 0, Math.log(0.5)], 7 / 12);
 * // lambda ≈ 2, acceptance ≈ 7/12
 * ```
 */
export function lambdaForTokenBudget(
  logRatio: ArrayLike<number>,
  budget: number,
): LambdaForTokenBudget {
  const n = logRatio.length;
  if (n === 0) {
    throw new RangeError("lambdaForTokenBudget needs at least one sampled token, got none");
  }
  if (!(budget > 0 && budget <= 1)) {
    throw new RangeError(`budget must be in (0, 1], got ${budget}`);
  }
  let finite = 0;
  for (let i = 0; i < n; i++) {
    const r = logRatio[i];
    if (Number.isNaN(r) || r === Infinity) {
      throw new RangeError(
        `logRatio[${i}] is ${r}; log-ratios must be finite or -Infinity (p_target = 0)`,
      );
    }
    if (r !== -Infinity) finite++;
  }
  if (finite === 0) {
    throw new RangeError(
      `every one of the ${n} log-ratios is -Infinity (p_target = 0): no λ accepts any token`,
    );
  }
  const maxAcceptance = finite / n;
  if (budget > maxAcceptance) {
    throw new RangeError(
      `budget ${budget} unreachable: ${n - finite} of ${n} tokens have p_target = 0, ` +
        `so the acceptance is at most ${maxAcceptance}`,
    );
  }
  // Ascending finite ratios s; at λ = exp(s[i]) the tokens above i accept with 1 and those at or
  // below i with exp(s[j] − s[i]).
  const s = new Float64Array(finite);
  for (let i = 0, j = 0; i < n; i++) if (logRatio[i] !== -Infinity) s[j++] = logRatio[i];
  s.sort();
  // Walk λ upwards over the breakpoints exp(s[i]) while A(exp(s[i])) ≥ budget; u = Σ_{j≤i}
  // exp(s[j] − s[i]) by a recurrence whose factors are ≤ 1. The last such i holds the answer in
  // [exp(s[i]), exp(s[i+1])]. A(exp(s[0])) = finite/n ≥ budget, so i = 0 always qualifies.
  let piece = 0;
  let u = 1;
  for (let i = 1; i < finite; i++) {
    u = 1 + u * Math.exp(s[i - 1] - s[i]);
    if ((finite - 1 - i + u) / n < budget) break;
    piece = i;
  }
  const ones = finite - 1 - piece;
  // The walk's u drifts by up to ~n ulps; the chosen piece's sum is recomputed compensated.
  const sum = neumaierSumExp(s, piece);
  const denom = n * budget - ones;
  // Rounding can leave denom ≤ 0 or the quotient off its piece only at a breakpoint; clamp there.
  const ratio = denom > 0 ? sum / denom : 1;
  const upper = piece + 1 < finite ? s[piece + 1] : Infinity;
  const unclamped = s[piece] + Math.log(ratio);
  const logLambda = Math.min(upper, Math.max(s[piece], unclamped));
  // exp(s)·ratio keeps λ to an ulp or two; exp(log λ) would lose |log λ| ulps.
  let lambda = logLambda === unclamped ? Math.exp(s[piece]) * ratio : Math.exp(logLambda);
  if (!(Number.isFinite(lambda) && lambda > 0)) lambda = Math.exp(logLambda);
  if (!(Number.isFinite(lambda) && lambda > 0)) {
    throw new RangeError(
      `budget ${budget} needs λ = exp(${logLambda}), outside float64's range`,
    );
  }
  // Recomputed from the ratios (not from the formula) so a caller can log and check it.
  let acc = 0;
  for (let i = 0; i < n; i++) acc += Math.min(1, Math.exp(logRatio[i] - logLambda));
  return { lambda, logLambda, acceptance: acc / n };
}

/** Σ_{j ≤ last} exp(s[j] − s[last]) for ascending s, with Neumaier's compensation. */
function neumaierSumExp(s: Float64Array, last: number): number {
  let sum = 0;
  let comp = 0;
  for (let j = 0; j <= last; j++) {
    const x = Math.exp(s[j] - s[last]);
    const t = sum + x;
    comp += Math.abs(sum) >= x ? sum - t + x : x - t + sum;
    sum = t;
  }
  return sum + comp;
}

/** Options of {@link AdaptiveKLCoefficient}. */
export interface AdaptiveKLOptions {
  /** Starting coefficient, > 0. */
  initial: number;
  /** KL the controller steers the measurement towards, > 0. */
  target: number;
  /** Time constant in `steps` units: at the full ±20% error the value moves by 20% per horizon. */
  horizon: number;
  /** Lower clamp, > 0 *(choice: default initial / 1000, an anti-windup bound)*. */
  min?: number;
  /** Upper clamp *(choice: default initial · 1000)*. */
  max?: number;
}

/** The largest |measured/target − 1| one update acts on (Ziegler et al. 2019). */
const ERROR_CLIP = 0.2;

/**
 * Proportional controller of the distillation weight λ_distill from the measured actor–policy KL
 * (the adaptive KL controller of Ziegler et al. 2019, "Fine-Tuning Language Models from Human
 * Preferences"): error = clip(measured/target − 1, ±0.2), value ← value · (1 + error · steps/horizon),
 * then clamped to [min, max].
 *
 * The sign is the point: in Eq. 6 a larger λ_distill pulls the rollout model ω towards the policy,
 * so the weight rises while the measured KL is above the target and falls while it is below. (In
 * PPO for LMs the same controller weights a KL *penalty* on the policy; here it weights the
 * distillation term that shrinks the KL.)
 *
 * @example
 * ```ts
 * const ctl = new AdaptiveKLCoefficient({ initial: 0.1, target: 0.01, horizon: 10 });
 * ctl.update(0.02); // KL twice the target: error clipped to 0.2 → 0.1 · 1.02 = 0.102
 * ctl.update(0.005); // half the target: error −0.2 → 0.102 · 0.98
 * ctl.value;
 * ```
 */
export class AdaptiveKLCoefficient {
  /** KL the controller steers towards. */
  readonly target: number;
  /** Time constant, in the units of `update`'s `steps`. */
  readonly horizon: number;
  /** Lower clamp of the value. */
  readonly min: number;
  /** Upper clamp of the value. */
  readonly max: number;
  #value: number;

  constructor(options: AdaptiveKLOptions) {
    const { initial, target, horizon } = options;
    positive("initial", initial);
    positive("target", target);
    positive("horizon", horizon);
    const min = options.min ?? initial / 1000;
    const max = options.max ?? initial * 1000;
    positive("min", min);
    positive("max", max);
    if (!(min <= initial && initial <= max)) {
      throw new RangeError(
        `AdaptiveKLCoefficient needs min <= initial <= max, got ${min}, ` +
          `${initial}, ${max}`,
      );
    }
    this.target = target;
    this.horizon = horizon;
    this.min = min;
    this.max = max;
    this.#value = initial;
  }

  /** The current coefficient. */
  get value(): number {
    return this.#value;
  }

  /**
   * One control step from a KL measured over `steps` units of progress (trainer steps, or samples
   * if `horizon` counts samples); returns the new value. `measuredKL` may be negative (the k1
   * estimator is): its error is clipped like any other. RangeError for a non-finite measurement or
   * `steps` outside [0, 5·horizon) (beyond it the factor 1 − 0.2·steps/horizon is ≤ 0).
   */
  update(measuredKL: number, steps = 1): number {
    if (!Number.isFinite(measuredKL)) {
      throw new RangeError(`AdaptiveKLCoefficient.update: measuredKL is ${measuredKL}, not finite`);
    }
    if (!(steps >= 0 && steps < this.horizon / ERROR_CLIP)) {
      throw new RangeError(
        `AdaptiveKLCoefficient.update: steps must be in [0, ${this.horizon / ERROR_CLIP}) ` +
          `(5 · horizon), got ${steps}`,
      );
    }
    const error = Math.min(ERROR_CLIP, Math.max(-ERROR_CLIP, measuredKL / this.target - 1));
    const next = this.#value * (1 + error * steps / this.horizon);
    this.#value = Math.min(this.max, Math.max(this.min, next));
    return this.#value;
  }
}

function positive(name: string, x: number): void {
  if (!(Number.isFinite(x) && x > 0)) {
    throw new RangeError(`AdaptiveKLCoefficient: ${name} must be finite and > 0, got ${x}`);
  }
}
