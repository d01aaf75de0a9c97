/**
 * Statistics across seeds (float64): the t confidence interval of a mean, Welch's two-sample t
 * test, the paired t test and Holm's correction for multiple tests, on Student's t distribution
 * (student_t.ts, re-exported here). A sweep reports each group's mean over its seeds with these
 * intervals and tests whether two methods' final values differ: unpaired (Welch) and paired by
 * seed, since two methods' runs with the same seed share their evaluation prompts, prompt order
 * and initial weights.
 *
 * @module
 */
import { mean, stdDev } from "../util/stats.ts";
import { studentTQuantile, studentTTwoSided } from "./student_t.ts";

export * from "./student_t.ts";

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
