/**
 * Input checks shared by the float64 OBRS reference.
 *
 * The reference is the oracle the GPU kernels are tested against, so a bad argument must fail loudly
 * with a sentence naming the argument, never turn into a silent NaN somewhere downstream.
 *
 * @module
 */

/** How far `Σ p` may stray from 1 before a probability vector is refused. */
export const SUM_TOLERANCE = 1e-6;

/** How far a log-probability row's log-sum-exp may stray from 0 (rows may come from float32). */
export const LOG_SUM_TOLERANCE = 1e-4;

/**
 * Throws unless `p` is a non-empty Float64Array of finite, non-negative numbers summing to 1
 * (within {@link SUM_TOLERANCE}). Zeros are allowed.
 */
export function checkProbs(name: string, p: Float64Array): void {
  if (!(p instanceof Float64Array)) throw new TypeError(`${name} must be a Float64Array`);
  if (p.length === 0) throw new RangeError(`${name} is empty`);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    if (!(v >= 0 && v < Infinity)) {
      throw new RangeError(`${name}[${i}] = ${v}: probabilities must be finite and >= 0`);
    }
    sum += v;
  }
  if (Math.abs(sum - 1) > SUM_TOLERANCE) {
    throw new RangeError(`${name} sums to ${sum}, expected 1 (within ${SUM_TOLERANCE})`);
  }
}

/** Throws unless two vectors have the same length. */
export function checkSameLength(
  nameA: string,
  a: ArrayLike<number>,
  nameB: string,
  b: ArrayLike<number>,
): void {
  if (a.length !== b.length) {
    throw new RangeError(
      `length mismatch: ${nameA} has ${a.length} entries, ${nameB} has ${b.length}`,
    );
  }
}

/** Checks two probability vectors over the same vocabulary. */
export function checkProbPair(
  nameA: string,
  a: Float64Array,
  nameB: string,
  b: Float64Array,
): void {
  checkProbs(nameA, a);
  checkProbs(nameB, b);
  checkSameLength(nameA, a, nameB, b);
}

/** Throws unless λ is a finite number > 0. */
export function checkLambda(lambda: number): void {
  if (!(lambda > 0 && lambda < Infinity)) {
    throw new RangeError(`lambda must be a finite number > 0, got ${lambda}`);
  }
}

/** Throws unless `k` is an integer in [1, V]. */
export function checkK(k: number, vocab: number): void {
  if (!Number.isInteger(k) || k < 1 || k > vocab) {
    throw new RangeError(`k must be an integer in [1, V = ${vocab}], got ${k}`);
  }
}

/** Throws unless `x` is a finite number > 0 (`name` names it in the message). */
export function checkPositive(name: string, x: number): void {
  if (!(x > 0 && x < Infinity)) {
    throw new RangeError(`${name} must be a finite number > 0, got ${x}`);
  }
}

/**
 * Throws unless row `row` of the row-major `[N, V]` array `x` holds log-probabilities: no NaN, no
 * +Infinity, not all -Infinity, and log-sum-exp within {@link LOG_SUM_TOLERANCE} of 0.
 */
export function checkLogProbRow(name: string, x: Float64Array, row: number, vocab: number): void {
  const base = row * vocab;
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) {
    const value = x[base + v];
    if (Number.isNaN(value) || value === Infinity) {
      throw new RangeError(
        `${name}[${row}, ${v}] = ${value}: log-probabilities must be < +Infinity`,
      );
    }
    if (value > max) max = value;
  }
  if (max === -Infinity) throw new RangeError(`${name} row ${row} is all -Infinity`);
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(x[base + v] - max);
  const lse = max + Math.log(sum);
  if (Math.abs(lse) > LOG_SUM_TOLERANCE) {
    throw new RangeError(`${name} row ${row} is not normalised: logsumexp = ${lse}, expected 0`);
  }
}

/** Throws unless `x` is a Float64Array of exactly `n` entries. */
export function checkLength(name: string, x: ArrayLike<number>, n: number, shape: string): void {
  if (x.length !== n) {
    throw new RangeError(`${name} has ${x.length} entries, expected ${n} (${shape})`);
  }
}
