/**
 * Statistics across seeds (float64): Student's t distribution, the t confidence interval of a
 * mean, Welch's two-sample t test, the paired t test and Holm's correction for multiple tests. A
 * sweep reports each group's mean over its seeds with these intervals and tests whether two
 * methods' final values differ: unpaired (Welch) and paired by seed, since two methods' runs with
 * the same seed share their evaluation prompts, prompt order and initial weights.
 *
 * Everything rests on the regularized incomplete beta function, evaluated by its continued
 * fraction (modified Lentz) with log-gamma from Stirling's series. Logs are carried through so
 * that far tails (p ~ 1e-300) keep their relative precision; quantiles are found by a bracketed
 * Newton solve on the log of the tail. Relative error of the CDF's smaller tail, measured against
 * 350-digit mpmath on t in [−40, 0]: ≤ 3e-14 for df ≤ 1e3, 3e-13 at 1e4, 2e-12 at 1e5, 2e-11 at
 * 1e6, 3e-10 at 1e7–1e8 (the continued fraction is ill-conditioned for a large a = df/2 and b = ½;
 * Temme's uniform expansion would fix that if ever needed; a sweep's df is below 1e3).
 *
 * @module
 */
import { mean, stdDev } from "../util/stats.ts";

const LN_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

// Stirling's series for ln Γ(z) − [(z − ½) ln z − z + ½ ln 2π]: Σ B₂ₖ / (2k (2k − 1) z^(2k−1)).
// From z ≥ 10 the next omitted term is below 4e-17.
const STIRLING = [1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156];
const STIRLING_MIN = 10;

function stirlingCorrection(z: number): number {
  const inv2 = 1 / (z * z);
  let s = 0;
  for (let k = STIRLING.length - 1; k >= 0; k--) s = s * inv2 + STIRLING[k];
  return s / z;
}

// ln Γ(z) for z > 0: below 10 the recurrence Γ(z) = Γ(z + k) / (z (z + 1) … (z + k − 1)) moves the
// argument to where the series is accurate.
function lnGamma(z: number): number {
  let shift = 0;
  let product = 1;
  while (z + shift < STIRLING_MIN) {
    product *= z + shift;
    shift++;
  }
  const w = z + shift;
  return (w - 0.5) * Math.log(w) - w + LN_SQRT_2PI + stirlingCorrection(w) - Math.log(product);
}

// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b), arranged so that a large argument does not cancel
// against a large ln Γ (for the t distribution, a = ν/2 may be 5e5 and b = ½).
function lnBeta(a: number, b: number): number {
  const p = Math.min(a, b), q = Math.max(a, b), s = p + q;
  if (q < STIRLING_MIN) return lnGamma(p) + lnGamma(q) - lnGamma(s);
  const corr = stirlingCorrection(q) - stirlingCorrection(s);
  if (p >= STIRLING_MIN) {
    return (p - 0.5) * Math.log(p / s) + (q - 0.5) * Math.log1p(-p / s) - 0.5 * Math.log(s) +
      LN_SQRT_2PI + stirlingCorrection(p) + corr;
  }
  // ln Γ(q) − ln Γ(s) = −(q − ½) ln(1 + p/q) − p ln s + p + corrections.
  return lnGamma(p) - (q - 0.5) * Math.log1p(p / q) - p * Math.log(s) + p + corr;
}

const TINY = 1e-300;
const CF_EPS = 1e-16;

// The continued fraction of I_x(a, b) after its prefactor: 1 / (1 + d₁ / (1 + d₂ / (1 + …))) with
// d₂ₘ₊₁ = −(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)) and d₂ₘ = m (b − m) x / ((a + 2m − 1)(a + 2m)),
// evaluated front to back by the modified Lentz method. Converges fast for x < (a + 1)/(a + b + 2).
function betaContinuedFraction(a: number, b: number, x: number): number {
  // f = b₀ + a₁/(b₁ + a₂/(b₂ + …)) with b₀ = 0, a₁ = 1, aⱼ₊₁ = dⱼ, bⱼ = 1.
  let f = TINY, c = TINY, d = 0;
  const maxTerms = 1000 + Math.ceil(20 * Math.sqrt(Math.max(a, b)));
  for (let j = 1; j <= maxTerms; j++) {
    let aj: number;
    if (j === 1) aj = 1;
    else {
      const i = j - 1; // index of dᵢ
      const m = i >> 1;
      aj = i % 2 === 1
        ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    }
    d = 1 + aj * d;
    if (d === 0) d = TINY;
    c = 1 + aj / c;
    if (c === 0) c = TINY;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    // Test only after an odd dᵢ: with a large a the even terms are tiny (~m²/a²), so one of them
    // leaves f unchanged long before the fraction has converged.
    if (j % 2 === 0 && Math.abs(delta - 1) < CF_EPS) return f;
  }
  return NaN; // not converged: the caller decides whether that is an error
}

// ln I_x(a, b) from ln x and ln(1 − x) (both given so that neither is lost to rounding 1 − x).
//
// Either I_x(a, b) = front(a, b) · cf(a, b, x) or 1 − I_{1−x}(b, a) gives the value. The usual rule
// (the direct fraction below x = (a + 1)/(a + b + 2)) picks the one that converges fast, but for a
// large a and a small b (the t distribution with many degrees of freedom) the fraction near that
// point is ~a: a cancellation in its first denominators that costs log10(a) digits. Its magnitude
// is the condition number, so when it is large the other form is evaluated too and the one with
// the smaller relative error estimate is kept (ε·cf for the direct form, ε·cf·(1 − I)/I for the
// complement, whose subtraction amplifies errors when I is small).
function lnIncompleteBeta(a: number, b: number, lnx: number, lny: number): number {
  if (lnx === -Infinity) return -Infinity;
  if (lny === -Infinity) return 0;
  const x = Math.exp(lnx), y = Math.exp(lny);
  const lnFrontDirect = a * lnx + b * lny - lnBeta(a, b);
  const direct = () => {
    const cf = betaContinuedFraction(a, b, x);
    return { ln: lnFrontDirect - Math.log(a) + Math.log(cf), err: cf };
  };
  const complement = () => {
    const cf = betaContinuedFraction(b, a, y);
    const c = Math.exp(lnFrontDirect - Math.log(b)) * cf; // 1 − I
    return { ln: Math.log1p(-c), err: (Math.abs(cf) * c) / (1 - c) };
  };
  const preferDirect = x < (a + 1) / (a + b + 2);
  let best = preferDirect ? direct() : complement();
  if (!Number.isFinite(best.ln) && !(best.ln === -Infinity && preferDirect)) {
    throw new Error(
      `incomplete beta: continued fraction did not converge (a=${a}, b=${b}, x=${x})`,
    );
  }
  // Far from the switch point the other fraction converges to garbage (it can even pass its own
  // convergence test), so it is only tried within a factor 16 of that point.
  const yStar = (b + 1) / (a + b + 2);
  if (best.err > 1e3 && y > yStar / 16 && y < 16 * yStar) {
    const other = preferDirect ? complement() : direct();
    if (Number.isFinite(other.ln) && other.err >= 0 && other.err < best.err) best = other;
  }
  return best.ln;
}

/**
 * The regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b), for a, b > 0 and
 * x in [0, 1]: the CDF of Beta(a, b) at x.
 *
 * @example
 * ```ts
 * regularizedIncompleteBeta(0.3, 2, 1); // 0.09 (= x^a when b = 1)
 * ```
 */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !Number.isFinite(a)) {
    throw new RangeError(`beta: a must be finite and > 0, got ${a}`);
  }
  if (!(b > 0) || !Number.isFinite(b)) {
    throw new RangeError(`beta: b must be finite and > 0, got ${b}`);
  }
  if (!(x >= 0 && x <= 1)) throw new RangeError(`beta: x must be in [0, 1], got ${x}`);
  return Math.exp(lnIncompleteBeta(a, b, Math.log(x), Math.log1p(-x)));
}

function checkDf(df: number, what: string): void {
  if (!(df >= 1) || !Number.isFinite(df)) {
    throw new RangeError(`${what}: degrees of freedom must be a finite number >= 1, got ${df}`);
  }
}

// ln x and ln(1 − x) for x = ν/(ν + t²), through r = |t|/√ν so that t² never overflows.
function tLogs(t: number, df: number): { lnx: number; lny: number } {
  const r = Math.abs(t) / Math.sqrt(df);
  if (r === 0) return { lnx: 0, lny: -Infinity };
  if (r === Infinity) return { lnx: -Infinity, lny: 0 };
  const lnx = r > 1e150 ? -2 * Math.log(r) : -Math.log1p(r * r);
  const lny = r <= 1 ? 2 * Math.log(r) - Math.log1p(r * r) : -Math.log1p(1 / (r * r));
  return { lnx, lny };
}

// ln P(T > |t|) = ln(½ I_x(ν/2, ½)).
function lnUpperTail(t: number, df: number): number {
  const { lnx, lny } = tLogs(t, df);
  return Math.log(0.5) + lnIncompleteBeta(df / 2, 0.5, lnx, lny);
}

// ln of the density at t: −½ ln ν − ln B(ν/2, ½) + (ν + 1)/2 · ln x.
function lnDensity(t: number, df: number): number {
  const { lnx } = tLogs(t, df);
  return -0.5 * Math.log(df) - lnBeta(df / 2, 0.5) + 0.5 * (df + 1) * lnx;
}

/**
 * The density of Student's t with `df` degrees of freedom (finite, >= 1) at `t`.
 *
 * @example
 * ```ts
 * studentTDensity(0, 1); // 1/π (Cauchy)
 * ```
 */
export function studentTDensity(t: number, df: number): number {
  checkDf(df, "studentTDensity");
  if (Number.isNaN(t)) throw new RangeError("studentTDensity: t is NaN");
  return Math.exp(lnDensity(t, df));
}

/**
 * P(T ≤ t) for Student's t with `df` degrees of freedom (finite, >= 1; need not be an integer).
 *
 * @example
 * ```ts
 * studentTCdf(2.2281388519649385, 10); // ≈ 0.975
 * ```
 */
export function studentTCdf(t: number, df: number): number {
  checkDf(df, "studentTCdf");
  if (Number.isNaN(t)) throw new RangeError("studentTCdf: t is NaN");
  const tail = Math.exp(lnUpperTail(t, df));
  return t > 0 ? 1 - tail : tail;
}

/**
 * Two-sided p-value P(|T| ≥ |t|), computed from the tail itself so that tiny p-values keep their
 * relative precision (1 − CDF would round them to 0).
 *
 * @example
 * ```ts
 * studentTTwoSided(2.2281388519649385, 10); // ≈ 0.05
 * ```
 */
export function studentTTwoSided(t: number, df: number): number {
  checkDf(df, "studentTTwoSided");
  if (Number.isNaN(t)) throw new RangeError("studentTTwoSided: t is NaN");
  return Math.min(1, 2 * Math.exp(lnUpperTail(t, df)));
}

/**
 * The p-quantile of Student's t with `df` degrees of freedom (finite, >= 1): the t with
 * P(T ≤ t) = p, for p in (0, 1). Returns ±Infinity only where the quantile is beyond float64
 * (df = 1 with p below ~1e-309).
 *
 * @example
 * ```ts
 * studentTQuantile(0.975, 2); // 4.302652729749464
 * ```
 */
export function studentTQuantile(p: number, df: number): number {
  checkDf(df, "studentTQuantile");
  if (!(p > 0 && p < 1)) throw new RangeError(`studentTQuantile: p must be in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  const sign = p < 0.5 ? -1 : 1;
  const lnq = Math.log(p < 0.5 ? p : 1 - p); // 1 − p is exact for p in [½, 1)
  // g(t) = ln P(T > t) − ln q decreases from ln ½ − ln q > 0 at t = 0: bracket its root.
  const g = (t: number) => lnUpperTail(t, df) - lnq;
  let lo = 0, hi = 1;
  while (g(hi) > 0) {
    lo = hi;
    hi *= 16;
    if (hi === Infinity) return sign * Infinity;
  }
  // Newton on g (slope −density/tail) kept inside the bracket, bisecting when it leaves.
  // Geometric means as √lo·√hi: lo·hi overflows for the far tails of df = 1.
  let t = lo > 0 ? Math.sqrt(lo) * Math.sqrt(hi) : hi / 2;
  for (let iter = 0; iter < 400; iter++) {
    const gt = g(t);
    if (gt === 0) return sign * t;
    if (gt > 0) lo = t;
    else hi = t;
    let next = t + gt * Math.exp(lnUpperTail(t, df) - lnDensity(t, df));
    if (!(next > lo && next < hi)) {
      next = lo > 0 && hi / lo > 4 ? Math.sqrt(lo) * Math.sqrt(hi) : lo + 0.5 * (hi - lo);
    }
    if (Math.abs(next - t) <= 1e-15 * next || hi - lo <= 4e-16 * hi) return sign * next;
    t = next;
  }
  throw new Error(`studentTQuantile: no convergence for p=${p}, df=${df}`);
}

/**
 * Whether every value equals the first (true for an empty list). A constant sample's mean and
 * spread are taken exactly: summing n copies of 0.1 and dividing by n gives 0.10000000000000002
 * and a spread of 1e-17 that a t statistic would divide by.
 *
 * @example
 * ```ts
 * isConstant([0.1, 0.1, 0.1]); // true
 * ```
 */
export function isConstant(xs: readonly number[]): boolean {
  return xs.every((v) => v === xs[0]);
}

// Sample mean and standard deviation (n − 1), exact for a constant sample.
function moments(xs: readonly number[]): { mean: number; std: number } {
  return isConstant(xs) ? { mean: xs[0], std: 0 } : { mean: mean(xs), std: stdDev(xs) };
}

/** A mean over a sample with its t confidence interval. */
export interface MeanInterval {
  /** Sample size. */
  n: number;
  /** Sample mean. */
  mean: number;
  /** Sample standard deviation (n − 1 denominator); null for n = 1. */
  std: number | null;
  /** Standard error of the mean, std / √n; null for n = 1. */
  sem: number | null;
  /** Lower end of the interval, mean − t_{(1+c)/2, n−1} · sem; null for n = 1. */
  lo: number | null;
  /** Upper end of the interval; null for n = 1. */
  hi: number | null;
}

function checkFinite(xs: readonly number[], what: string): void {
  for (let i = 0; i < xs.length; i++) {
    if (typeof xs[i] !== "number" || !Number.isFinite(xs[i])) {
      throw new RangeError(`${what}: value ${i} is ${xs[i]}, not a finite number`);
    }
  }
}

function checkConfidence(confidence: number, what: string): void {
  if (!(confidence > 0 && confidence < 1)) {
    throw new RangeError(`${what}: confidence must be in (0, 1), got ${confidence}`);
  }
}

// Quantiles are asked for the same few (confidence, n − 1) pairs over and over by a sweep's
// thousands of (group, iteration, metric) cells; a small cache saves the root solves.
const quantileCache = new Map<string, number>();

function criticalValue(confidence: number, df: number): number {
  const key = `${confidence}|${df}`;
  let q = quantileCache.get(key);
  if (q === undefined) {
    q = studentTQuantile(0.5 + 0.5 * confidence, df);
    if (quantileCache.size >= 4096) quantileCache.clear();
    quantileCache.set(key, q);
  }
  return q;
}

/**
 * Mean, sample standard deviation, standard error and the two-sided Student t confidence interval
 * of the mean. With one value the spread is unknown: std, sem, lo and hi are null (not 0, not NaN).
 * Throws a RangeError on an empty list or a value that is NaN or infinite (naming its index).
 *
 * @example
 * ```ts
 * meanConfidenceInterval([0.81, 0.79, 0.84]); // { n: 3, mean: 0.8133…, lo: 0.751…, hi: 0.875…, … }
 * ```
 */
export function meanConfidenceInterval(xs: readonly number[], confidence = 0.95): MeanInterval {
  const what = "meanConfidenceInterval";
  if (xs.length === 0) throw new RangeError(`${what}: no values`);
  checkFinite(xs, what);
  checkConfidence(confidence, what);
  const n = xs.length, { mean: m, std } = moments(xs);
  if (n === 1) return { n, mean: m, std: null, sem: null, lo: null, hi: null };
  const sem = std / Math.sqrt(n);
  const half = criticalValue(confidence, n - 1) * sem;
  return { n, mean: m, std, sem, lo: m - half, hi: m + half };
}

/** The result of {@linkcode welchTTest}. */
export interface WelchResult {
  /** mean(a) − mean(b). */
  diff: number;
  /** Standard error of the difference, √(s²ₐ/nₐ + s²ᵦ/nᵦ). */
  se: number;
  /** The statistic diff / se. */
  t: number;
  /** Welch–Satterthwaite degrees of freedom. */
  df: number;
  /** Two-sided p-value. */
  p: number;
}

/**
 * Welch's two-sample t test of equal means without assuming equal variances: is method a's final
 * value different from method b's? Needs at least two finite values per sample. When both samples
 * have zero variance the statistic is 0/0 or ±∞ and the test says nothing: that is a RangeError
 * (callers that tabulate many comparisons report it as null). One zero-variance sample is fine
 * (df becomes the other's n − 1).
 *
 * @example
 * ```ts
 * const { t, df, p } = welchTTest([0.82, 0.80, 0.85], [0.71, 0.66, 0.74]);
 * ```
 */
export function welchTTest(a: readonly number[], b: readonly number[]): WelchResult {
  const what = "welchTTest";
  for (const [name, xs] of [["a", a], ["b", b]] as const) {
    if (xs.length < 2) {
      throw new RangeError(`${what}: sample ${name} needs at least 2 values, got ${xs.length}`);
    }
    checkFinite(xs, `${what} sample ${name}`);
  }
  const ma = moments(a), mb = moments(b);
  const va = ma.std ** 2 / a.length, vb = mb.std ** 2 / b.length;
  if (va === 0 && vb === 0) {
    throw new RangeError(
      `${what}: both samples have zero variance, so the t statistic is undefined`,
    );
  }
  const diff = ma.mean - mb.mean, se = Math.sqrt(va + vb), t = diff / se;
  const dfRaw = (va + vb) ** 2 / (va * va / (a.length - 1) + vb * vb / (b.length - 1));
  // The exact value is at least min(nₐ, nᵦ) − 1 >= 1; rounding must not push it below.
  const df = Math.max(dfRaw, Math.min(a.length, b.length) - 1);
  return { diff, se, t, df, p: studentTTwoSided(t, df) };
}

/**
 * The confidence interval of mean(a) − mean(b) with Welch's degrees of freedom.
 *
 * @example
 * ```ts
 * const { lo, hi } = welchInterval(welchTTest(a, b)); // 95% by default
 * ```
 */
export function welchInterval(w: WelchResult, confidence = 0.95): { lo: number; hi: number } {
  checkConfidence(confidence, "welchInterval");
  const half = criticalValue(confidence, w.df) * w.se;
  return { lo: w.diff - half, hi: w.diff + half };
}

/**
 * Whether the paired differences a[i] − b[i] are all equal, up to the rounding of their inputs:
 * accuracies such as 0.7 and 0.3 are not exact in binary, so 0.7 − 0.3 and 0.8 − 0.4 differ in the
 * last bit, and a t statistic would divide a real difference by that bit (t ~ 1e15, p ~ 0). The
 * differences count as equal when their range is at most 8ε · max |aᵢ|, |bᵢ| (each input carries up
 * to ½ulp of representation error and the subtraction adds ½ulp of its result). Both lists must
 * have the same length; an empty list is constant.
 *
 * @example
 * ```ts
 * equalDifferences([0.7, 0.8], [0.3, 0.4]); // true: both differences are 0.4 up to rounding
 * equalDifferences([0.7, 0.8], [0.3, 0.5]); // false
 * ```
 */
export function equalDifferences(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) {
    throw new RangeError(
      `equalDifferences: the samples must pair up, got ${a.length} and ${b.length} values`,
    );
  }
  let lo = Infinity, hi = -Infinity, scale = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    lo = Math.min(lo, d);
    hi = Math.max(hi, d);
    scale = Math.max(scale, Math.abs(a[i]), Math.abs(b[i]));
  }
  return a.length === 0 || hi - lo <= 8 * Number.EPSILON * scale;
}

/** The result of {@linkcode pairedTTest}. */
export interface PairedResult {
  /** Number of pairs. */
  n: number;
  /** Mean of the differences a[i] − b[i] (equal to mean(a) − mean(b)). */
  diff: number;
  /** Sample standard deviation of the differences (n − 1 denominator). */
  std: number;
  /** Standard error of the mean difference, std / √n. */
  se: number;
  /** The statistic diff / se. */
  t: number;
  /** Degrees of freedom, n − 1. */
  df: number;
  /** Two-sided p-value. */
  p: number;
}

/**
 * The paired t test: is the mean of the differences a[i] − b[i] zero? Use it when a[i] and b[i]
 * share a source of variation (two methods run with the same seed: the same evaluation prompts,
 * prompt order and initial weights), which the differences cancel; Welch's test
 * ({@linkcode welchTTest}) would count it as noise. Needs two lists of the same length, at least
 * two pairs, finite values. When every difference is the same (see {@linkcode equalDifferences})
 * the statistic is 0/0 or ±∞ and the test says nothing: that is a RangeError, as for Welch's test
 * with two constant samples (callers that tabulate many comparisons report it as null).
 *
 * @example
 * ```ts
 * // seeds 1..3 of a method and of the baseline
 * const { diff, t, df, p } = pairedTTest([0.82, 0.74, 0.91], [0.79, 0.70, 0.89]); // df = 2
 * ```
 */
export function pairedTTest(a: readonly number[], b: readonly number[]): PairedResult {
  const what = "pairedTTest";
  if (a.length !== b.length) {
    throw new RangeError(
      `${what}: the samples must pair up, got ${a.length} and ${b.length} values`,
    );
  }
  if (a.length < 2) throw new RangeError(`${what}: needs at least 2 pairs, got ${a.length}`);
  checkFinite(a, `${what} sample a`);
  checkFinite(b, `${what} sample b`);
  if (equalDifferences(a, b)) {
    throw new RangeError(
      `${what}: all ${a.length} differences are equal (${a[0] - b[0]}), ` +
        "so the t statistic is undefined",
    );
  }
  const d = a.map((v, i) => v - b[i]);
  const n = d.length, diff = mean(d), std = stdDev(d), se = std / Math.sqrt(n), t = diff / se;
  return { n, diff, std, se, t, df: n - 1, p: studentTTwoSided(t, n - 1) };
}

/**
 * The confidence interval of the mean paired difference, diff ± t_{(1+c)/2, n−1} · se.
 *
 * @example
 * ```ts
 * const { lo, hi } = pairedInterval(pairedTTest(a, b)); // 95% by default
 * ```
 */
export function pairedInterval(r: PairedResult, confidence = 0.95): { lo: number; hi: number } {
  checkConfidence(confidence, "pairedInterval");
  const half = criticalValue(confidence, r.df) * r.se;
  return { lo: r.diff - half, hi: r.diff + half };
}

/**
 * Holm–Bonferroni adjusted p-values: the family-wise error rate stays below α when every test
 * whose adjusted p is ≤ α is rejected, whatever the dependence between the tests. With the m
 * non-null p-values sorted, p₍₁₎ ≤ … ≤ p₍ₘ₎, the adjusted value of p₍ᵢ₎ is
 * max over j ≤ i of min(1, (m − j + 1) p₍ⱼ₎): monotone in p, capped at 1, never below p. A null
 * (a test that was not defined) stays null and does not count in m; tied p-values get the same
 * adjusted value. Throws a RangeError naming the index of a value that is not a number in [0, 1].
 *
 * @example
 * ```ts
 * holmAdjust([0.01, null, 0.04, 0.03]); // [0.03, null, 0.06, 0.06]
 * ```
 */
export function holmAdjust(pValues: readonly (number | null)[]): (number | null)[] {
  const order: number[] = [];
  pValues.forEach((p, i) => {
    if (p === null) return;
    if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
      throw new RangeError(`holmAdjust: p-value ${i} is ${p}, not a number in [0, 1]`);
    }
    order.push(i);
  });
  order.sort((i, j) => (pValues[i] as number) - (pValues[j] as number) || i - j);
  const out: (number | null)[] = pValues.map(() => null);
  const m = order.length;
  let running = 0;
  order.forEach((index, j) => {
    running = Math.max(running, Math.min(1, (m - j) * (pValues[index] as number)));
    out[index] = running;
  });
  return out;
}
