/**
 * Numerically stable softmax and log-softmax over rows, float64.
 *
 * @module
 */

function checkRows(x: Float64Array, cols: number): number {
  if (!Number.isInteger(cols) || cols < 1) {
    throw new RangeError(`cols must be an integer >= 1, got ${cols}`);
  }
  if (x.length % cols !== 0) {
    throw new RangeError(`length ${x.length} is not a multiple of cols = ${cols}`);
  }
  return x.length / cols;
}

/** Max of one row; throws on NaN, +Infinity, or a row that is all -Infinity. */
function rowMax(x: Float64Array, base: number, cols: number, row: number): number {
  let max = -Infinity;
  for (let j = 0; j < cols; j++) {
    const v = x[base + j];
    if (Number.isNaN(v) || v === Infinity) {
      throw new RangeError(`softmax input row ${row}, column ${j} is ${v}`);
    }
    if (v > max) max = v;
  }
  if (max === -Infinity) {
    throw new RangeError(`softmax input row ${row} is all -Infinity: no distribution to normalise`);
  }
  return max;
}

/**
 * Log-softmax of each row of the row-major array `x` (`cols` entries per row; one row by default).
 * -Infinity entries stay -Infinity (probability 0); a row that is all -Infinity is an error.
 *
 * @example
 * ```ts
 * const logp = logSoftmax(new Float64Array([1, 2, -Infinity])); // [-1.31…, -0.31…, -Infinity]
 * ```
 */
export function logSoftmax(x: Float64Array, cols: number = x.length): Float64Array {
  const rows = checkRows(x, cols);
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const max = rowMax(x, base, cols, r);
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += Math.exp(x[base + j] - max);
    // (x − max) − log Σ, not x − (max + log Σ): when |max| is huge (1e30) max + log Σ rounds to
    // max and every log-prob near the top would come out as 0.
    const logSum = Math.log(sum);
    for (let j = 0; j < cols; j++) out[base + j] = x[base + j] - max - logSum;
  }
  return out;
}

/**
 * Softmax of each row of the row-major array `x` (`cols` entries per row; one row by default).
 *
 * @example
 * ```ts
 * const p = softmax(new Float64Array([0, Math.log(3)])); // [0.25, 0.75]
 * ```
 */
export function softmax(x: Float64Array, cols: number = x.length): Float64Array {
  const rows = checkRows(x, cols);
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const max = rowMax(x, base, cols, r);
    let sum = 0;
    for (let j = 0; j < cols; j++) {
      out[base + j] = Math.exp(x[base + j] - max);
      sum += out[base + j];
    }
    for (let j = 0; j < cols; j++) out[base + j] /= sum;
  }
  return out;
}
