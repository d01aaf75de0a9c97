/**
 * Sampled evaluation (SPEC §8, "Mean@k / Pass@k at evaluation"): each evaluation prompt is
 * repeated n times (prompt-major), the engine samples every row in one batch at a given
 * temperature, the task rewards each completion exactly as the trainer rewards a rollout, and
 * {@link summarizeSamples} turns the rewards into Mean@k and unbiased Pass@k for k = 1, the powers
 * of two below n, and n.
 *
 * Seeding. The draws are keyed like the trainer's rollouts (engine seed = `hash3(seed, stream,
 * draw)`, row r on RNG stream r) but on their own stream, {@link SAMPLED_EVAL_STREAM}, so they
 * never reuse a trainer's random numbers. `jackpot rl` keeps `draw` = 0 at every evaluation and for
 * both models: the same uniforms every time (common random numbers), so a change of Pass@k between
 * two evaluations, or between the policy and the rollout model, comes from the weights and not
 * from a fresh draw.
 *
 * @module
 */
import type { RolloutEngine } from "../nn/rollout.ts";
import { completion } from "../nn/rollout.ts";
import { MIN_TEMPERATURE } from "../nn/sampling_reference.ts";
import type { Example, Task } from "../tasks/task.ts";
import { stopIdsOf } from "../tasks/tokenizer.ts";
import { hash3 } from "../util/rng.ts";
import { type SampleSummary, summarizeSamples } from "./evaluation.ts";

/**
 * RNG stream of the sampled evaluation (next to `jackpot rl`'s evaluation-prompt stream
 * 0x726c00e0, apart from the trainer's 0x726c0001..3).
 */
export const SAMPLED_EVAL_STREAM = 0x726c00e1;

/** Options of {@link evaluateSampled}. */
export interface SampledEvalOptions {
  /** Samples per prompt, n ≥ 1. */
  samples: number;
  /** Sampling temperature: 0 (greedy, every sample the same) or at least 1e-6. */
  temperature: number;
  /** Seed (u32), e.g. the run's seed. */
  seed: number;
  /** RNG stream; default {@link SAMPLED_EVAL_STREAM}. */
  stream?: number;
  /** Which draw of that stream (u32); default 0. The same draw gives the same uniforms. */
  draw?: number;
}

/** What {@link evaluateSampled} measured: the summary plus the samples behind it. */
export interface SampledEvaluation extends SampleSummary {
  /** The k of `meanAt` / `passAt`, ascending: {@link passKs}(n). */
  ks: number[];
  /** The temperature sampled at. */
  temperature: number;
  /** The engine seed the batch used (`hash3(seed, stream, draw)`); row r drew from stream r. */
  engineSeed: number;
  /** Reward of each sample, prompt-major (prompt p's samples at p·n ... p·n + n − 1). */
  rewards: Float64Array;
  /** Each sample's generated ids (stop token included when it stopped), prompt-major. */
  completions: Int32Array[];
  /** `engine.generate` calls made: 1 unless the engine holds fewer than prompts × n rows. */
  calls: number;
}

/**
 * The k reported for n samples: 1, every power of two below n, and n.
 *
 * @example
 * ```ts
 * passKs(1); // [1]
 * passKs(6); // [1, 2, 4, 6]
 * passKs(8); // [1, 2, 4, 8]
 * ```
 */
export function passKs(n: number): number[] {
  if (!(Number.isInteger(n) && n >= 1)) {
    throw new RangeError(`sampled evaluation: samples must be an integer >= 1, got ${n}`);
  }
  const ks: number[] = [];
  for (let k = 1; k < n; k *= 2) ks.push(k);
  ks.push(n);
  return ks;
}

/** The engine seed of a draw: `hash3(seed, stream, draw)` (the trainer keys its rollouts alike). */
export function sampledEvalSeed(seed: number, stream = SAMPLED_EVAL_STREAM, draw = 0): number {
  for (const [name, v] of [["seed", seed], ["stream", stream], ["draw", draw]] as const) {
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) {
      throw new RangeError(`sampled evaluation: ${name} must be an integer in [0, 2^32), got ${v}`);
    }
  }
  return hash3(seed, stream, draw);
}

/**
 * Samples `samples` completions of every example's prompt with `engine` (prompt-major, one
 * `generate` call when the engine holds `examples.length × samples` rows, else consecutive chunks
 * that draw from the same per-row streams, so the samples do not depend on the engine's size),
 * rewards each with `task.reward`, and summarizes them: mean reward, Mean@k and Pass@k for k in
 * {@link passKs}(samples).
 *
 * RangeError on no examples, a `samples` that is not a positive integer, a temperature that is not
 * 0 or at least 1e-6, or a seed, stream or draw outside u32.
 *
 * @example
 * ```ts
 * const engine = new RolloutEngine(model, { maxBatch: 64 * 8, maxPromptLength: task.maxPromptLength,
 *   maxNewTokens: task.maxAnswerLength + 1 });
 * const s = await evaluateSampled(engine, task, examples, { samples: 8, temperature: 1, seed: 1 });
 * s.passAt[1]; s.passAt[8]; s.meanReward;
 * ```
 */
export async function evaluateSampled(
  engine: RolloutEngine,
  task: Task,
  examples: readonly Example[],
  opts: SampledEvalOptions,
): Promise<SampledEvaluation> {
  const n = opts.samples;
  const ks = passKs(n);
  const t = opts.temperature;
  if (!(Number.isFinite(t) && (t === 0 || t >= MIN_TEMPERATURE))) {
    throw new RangeError(
      `sampled evaluation: temperature must be 0 (greedy) or a finite number >= ${MIN_TEMPERATURE}, got ${t}`,
    );
  }
  if (examples.length === 0) throw new RangeError("sampled evaluation needs at least one example");
  const engineSeed = sampledEvalSeed(opts.seed, opts.stream, opts.draw);
  const prompts: Int32Array[] = [];
  for (const ex of examples) for (let i = 0; i < n; i++) prompts.push(ex.prompt);
  const tok = task.tokenizer;
  const completions: Int32Array[] = [];
  const chunk = engine.options.maxBatch;
  let calls = 0;
  for (let start = 0; start < prompts.length; start += chunk) {
    const rows = prompts.slice(start, start + chunk);
    // stream0 = the chunk's first row: every row keeps the stream it has in one whole batch
    const r = await engine.generate(rows, {
      seed: engineSeed,
      stream0: start,
      temperature: t,
      stopId: stopIdsOf(tok),
      padId: tok.padId,
    });
    calls++;
    for (let b = 0; b < rows.length; b++) completions.push(completion(r, b));
  }
  const rewards = Float64Array.from(prompts, (p, i) => task.reward(p, completions[i]));
  return {
    ...summarizeSamples(rewards, n, ks),
    ks,
    temperature: t,
    engineSeed,
    rewards,
    completions,
    calls,
  };
}

/**
 * The evaluation-table columns of a sampled evaluation of one model: `<prefix>_mean_reward` and
 * `<prefix>_pass_at_<k>` for each k of {@link passKs}(samples); all null when `s` is null (the
 * rollout model of an on-policy run).
 *
 * @example
 * ```ts
 * sampledEvalColumns("policy", 4, s);
 * // { policy_mean_reward: 0.4, policy_pass_at_1: 0.4, policy_pass_at_2: 0.55, policy_pass_at_4: 0.7 }
 * ```
 */
export function sampledEvalColumns(
  prefix: string,
  samples: number,
  s: SampledEvaluation | null,
): Record<string, number | null> {
  const ks = passKs(samples);
  if (s !== null && s.groupSize !== samples) {
    throw new RangeError(
      `sampledEvalColumns: ${samples} samples asked for, the evaluation has ${s.groupSize}`,
    );
  }
  const row: Record<string, number | null> = { [`${prefix}_mean_reward`]: s?.meanReward ?? null };
  for (const k of ks) row[`${prefix}_pass_at_${k}`] = s?.passAt[k] ?? null;
  return row;
}
