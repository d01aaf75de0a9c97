/**
 * Summary statistics (float64, plain arrays), shared by the simulation and the benchmarks.
 *
 * @module
 */

function requireValues(xs: readonly number[], what: string): void {
  if (xs.length === 0) throw new RangeError(`${what} of an empty list is undefined`);
}

/** Arithmetic mean; throws on an empty list. */
export function mean(xs: readonly number[]): number {
  requireValues(xs, "mean");
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (n − 1 denominator); 0 for a single value. */
export function stdDev(xs: readonly number[]): number {
  requireValues(xs, "standard deviation");
  if (xs.length === 1) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / (xs.length - 1));
}

/** Median (mean of the two middle values for an even count); throws on an empty list. */
export function median(xs: readonly number[]): number {
  requireValues(xs, "median");
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
}
