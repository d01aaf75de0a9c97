/**
 * The OBRS mask M ~ Bernoulli(a), drawn from the counter-based RNG so that a GPU kernel can draw the
 * very same mask.
 *
 * Contract (what a kernel must mirror): token `n` (its index in the flattened batch) is accepted iff
 * `uniformAt(seed, n, 0) < exp(logAccept[n])`. The uniform has 24 bits, exact in float32; a = 1
 * (log a = 0) always accepts, a = 0 (log a = -Infinity) never does. A float32 kernel agrees with this
 * float64 reference except when a lies within float32 rounding (~6e-8 relative) of the uniform.
 *
 * @module
 */
import { uniformAt } from "../../util/rng.ts";

/**
 * M_n = 1 iff `uniformAt(seed, n, 0) < exp(logAccept[n])`. `logAccept` entries must be ≤ 0 (or
 * -Infinity); NaN or positive values are errors.
 *
 * @example
 * ```ts
 * const mask = sampleMask(new Float64Array([0, -Infinity, Math.log(0.5)]), 7); // [1, 0, 0 or 1]
 * ```
 */
export function sampleMask(logAccept: Float64Array, seed: number): Uint8Array {
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const mask = new Uint8Array(logAccept.length);
  for (let n = 0; n < logAccept.length; n++) {
    const la = logAccept[n];
    if (!(la <= 0)) throw new RangeError(`logAccept[${n}] = ${la}: log acceptance must be <= 0`);
    mask[n] = uniformAt(seed, n, 0) < Math.exp(la) ? 1 : 0;
  }
  return mask;
}
