/**
 * Evaluation metrics over several samples per prompt: Pass@k and Mean@k (SPEC §8).
 *
 * @module
 */

/**
 * Unbiased Pass@k from `n` samples of which `c` are correct: the probability that at least one of
 * `k` samples drawn without replacement from the `n` is correct, `1 − C(n−c, k) / C(n, k)`
 * (Chen et al. 2021), computed as a product so that large `n` neither overflows nor cancels.
 *
 * @example
 * ```ts
 * passAtK(16, 3, 4); // ≈ 0.6071
 * ```
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k)) {
    throw new RangeError(`passAtK needs integers, got n=${n}, c=${c}, k=${k}`);
  }
  if (n < 1 || c < 0 || c > n || k < 1 || k > n) {
    throw new RangeError(`passAtK needs 0 <= c <= n and 1 <= k <= n, got n=${n}, c=${c}, k=${k}`);
  }
  if (n - c < k) return 1;
  // C(n−c, k) / C(n, k) = Π_{i=n−c+1}^{n} (1 − k / i)
  let allWrong = 1;
  for (let i = n - c + 1; i <= n; i++) allWrong *= 1 - k / i;
  return 1 - allWrong;
}

/** Pass@k and Mean@k of a set of prompts, each with its rewards for `n` samples. */
export interface SampledScore {
  /** Mean over prompts of Pass@k (a sample counts as correct when its reward is 1). */
  passAtK: number;
  /** Mean reward over all samples of all prompts (the expected reward of one sample). */
  meanAtK: number;
}

/**
 * Pass@k and Mean@k over prompts; `rewards[p]` holds the rewards of prompt `p`'s samples (every
 * prompt needs at least `k`).
 */
export function scoreSamples(rewards: readonly ArrayLike<number>[], k: number): SampledScore {
  if (rewards.length === 0) throw new RangeError("scoreSamples needs at least one prompt");
  let pass = 0;
  let sum = 0;
  let count = 0;
  for (let p = 0; p < rewards.length; p++) {
    const r = rewards[p];
    let c = 0;
    for (let i = 0; i < r.length; i++) {
      if (!(r[i] >= 0 && r[i] <= 1)) {
        throw new RangeError(`reward ${i} of prompt ${p} is ${r[i]}, outside [0, 1]`);
      }
      if (r[i] === 1) c++;
      sum += r[i];
    }
    count += r.length;
    if (r.length < k) {
      throw new RangeError(`prompt ${p} has ${r.length} samples, fewer than k=${k}`);
    }
    pass += passAtK(r.length, c, k);
  }
  return { passAtK: pass / rewards.length, meanAtK: sum / count };
}
