/**
 * Evaluation summaries of a batch of sampled completions (SPEC §8): mean reward, Mean@k and Pass@k
 * for several k at once, from the flat prompt-major reward array a GRPO rollout produces.
 *
 * Pass@k itself is the tasks layer's unbiased estimator ({@link passAtK}, Chen et al. 2021),
 * re-exported here so that RL code reads its metrics from one module.
 *
 * @module
 */
import { passAtK } from "../tasks/metrics.ts";

export { passAtK };

/** Mean reward, Mean@k and Pass@k of `prompts` groups of `groupSize` samples each. */
export interface SampleSummary {
  /** Number of prompts (groups). */
  prompts: number;
  /** Samples per prompt. */
  groupSize: number;
  /** Mean reward over every sample (= the mean over prompts of each prompt's mean). */
  meanReward: number;
  /** Mean@k for each requested k: the expected mean reward of k samples of a prompt. */
  meanAt: Record<number, number>;
  /** Pass@k for each requested k: mean over prompts of the unbiased Pass@k estimate. */
  passAt: Record<number, number>;
}

/**
 * Mean@k and Pass@k over prompts from prompt-major rewards: prompt p's samples are
 * `rewards[p·groupSize ... p·groupSize + groupSize − 1]`. A sample counts as correct for Pass@k when
 * its reward is ≥ `threshold` (default 1, a binary task's reward); with c correct samples of a
 * prompt its Pass@k is {@link passAtK}(groupSize, c, k), averaged over prompts.
 *
 * Mean@k, the expected mean reward of k samples drawn without replacement from a prompt's
 * `groupSize`, is that prompt's mean reward for every k (each sample is in the draw with
 * probability k/groupSize, so linearity gives the group mean); averaged over equal-sized groups it
 * is the overall mean. It is still reported per k so tables can list Mean@k next to Pass@k.
 *
 * RangeError when `groupSize` is not a positive integer, `rewards` is empty or not a multiple of
 * it, a reward is NaN or infinite (naming its index and prompt), the threshold is NaN, or a k is
 * not an integer in [1, groupSize].
 *
 * @example
 * ```ts
 * // Two prompts, four samples each.
 * const s = summarizeSamples([1, 0, 0, 0, 1, 1, 0, 1], 4, [1, 4]);
 * // s.meanReward = 0.5, s.passAt[1] = (0.25 + 0.75) / 2 = 0.5, s.passAt[4] = 1
 * ```
 */
export function summarizeSamples(
  rewards: ArrayLike<number>,
  groupSize: number,
  ks: readonly number[],
  threshold = 1,
): SampleSummary {
  if (!(Number.isInteger(groupSize) && groupSize >= 1)) {
    throw new RangeError(
      `summarizeSamples: groupSize must be a positive integer, got ${groupSize}`,
    );
  }
  const n = rewards.length;
  if (n === 0) throw new RangeError("summarizeSamples needs at least one prompt, got no rewards");
  if (n % groupSize !== 0) {
    throw new RangeError(
      `summarizeSamples: ${n} rewards is not a multiple of groupSize ${groupSize}`,
    );
  }
  if (Number.isNaN(threshold)) throw new RangeError("summarizeSamples: threshold is NaN");
  for (const k of ks) {
    if (!(Number.isInteger(k) && k >= 1 && k <= groupSize)) {
      throw new RangeError(
        `summarizeSamples: k must be an integer in [1, groupSize = ${groupSize}], got ${k}`,
      );
    }
  }
  const prompts = n / groupSize;
  const correct = new Int32Array(prompts);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const r = rewards[i];
    if (!Number.isFinite(r)) {
      throw new RangeError(
        `summarizeSamples: reward ${i} (prompt ${Math.floor(i / groupSize)}) is ${r}`,
      );
    }
    sum += r;
    if (r >= threshold) correct[Math.floor(i / groupSize)]++;
  }
  const meanReward = sum / n;
  const meanAt: Record<number, number> = {};
  const passAt: Record<number, number> = {};
  for (const k of ks) {
    meanAt[k] = meanReward;
    let pass = 0;
    for (let p = 0; p < prompts; p++) pass += passAtK(groupSize, correct[p], k);
    passAt[k] = pass / prompts;
  }
  return { prompts, groupSize, meanReward, meanAt, passAt };
}
