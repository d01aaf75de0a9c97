/**
 * The `Task` contract: prompts, reference answers, verifiable rewards, and the batches a trainer
 * consumes (supervised sequences with a loss mask, padded prompts for rollouts).
 *
 * Conventions every task follows:
 * - a prompt is token ids starting with `tokenizer.bosId` (when the tokenizer has one, not -1);
 *   the model continues it;
 * - an answer is token ids *without* the stop token; a completion is what the model generated
 *   after the prompt, and its answer is the tokens before the first `tokenizer.eosId`;
 * - `reward` is recomputed from the prompt alone (the task parses the prompt and solves it), so
 *   it needs no stored label and cannot be fooled by a wrong label: it is verifiable;
 * - the built-in rewards are exact match, 1 or 0: a completion that never stops, or that differs
 *   in any token before the stop (an extra space, a leading zero), scores 0. Tokens after the stop
 *   (usually padding) are ignored.
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** One prompt and its reference answer. */
export interface Example {
  /** Prompt token ids, `bosId` first (when the tokenizer has one). */
  prompt: Int32Array;
  /** Reference answer token ids, without the stop token. */
  answer: Int32Array;
}

/** Option values of a task, as given on a command line (`digits=3`) or stored in config.json. */
export type TaskOptions = Record<string, string | number | boolean>;

/**
 * A task with verifiable rewards: what the `pretrain` command trains on and the RL trainer rewards.
 *
 * @example
 * ```ts
 * const task = createTask("arithmetic", { maxDigits: 2 });
 * const [ex] = task.sample(new Rng(1), 1);
 * task.reward(ex.prompt, [...ex.answer, task.tokenizer.eosId]); // 1
 * ```
 */
export interface Task {
  /** Registry name, e.g. `arithmetic`. */
  readonly name: string;
  /** One paragraph: the prompt format, the answer, the reward. */
  readonly description: string;
  /** The tokenizer of prompts and answers. */
  readonly tokenizer: Tokenizer;
  /** Every option with its resolved value; `createTask(name, options)` rebuilds the same task. */
  readonly options: Readonly<TaskOptions>;
  /** Most tokens in any prompt this task samples (bos included). */
  readonly maxPromptLength: number;
  /** Most tokens in any reference answer (stop token excluded). */
  readonly maxAnswerLength: number;
  /** `n` examples drawn from `rng` only: the same seed and stream give the same examples. */
  sample(rng: Rng, n: number): Example[];
  /**
   * `n` evaluation examples from `rng`, when the task keeps evaluation problems apart from the
   * training ones (a held-out file); absent: evaluations use {@link Task.sample} on their own stream.
   */
  evaluationSample?(rng: Rng, n: number): Example[];
  /** The correct answer to `prompt` (stop excluded); throws on a prompt this task cannot parse. */
  referenceAnswer(prompt: ArrayLike<number>): Int32Array;
  /** Reward in [0, 1] of `completion` (generated ids after `prompt`); see the module notes. */
  reward(prompt: ArrayLike<number>, completion: ArrayLike<number>): number;
  /** Whether `completion` answers `prompt` exactly (then `reward` is 1). */
  isCorrect(prompt: ArrayLike<number>, completion: ArrayLike<number>): boolean;
}

/** The most tokens of prompt + answer + stop for `task`: a safe `T` for supervised batches. */
export function maxSequenceLength(task: Task): number {
  return task.maxPromptLength + task.maxAnswerLength + 1;
}

/**
 * The answer part of a completion: the ids before the first `eosId`, or `null` when the completion
 * never stops (which every built-in reward scores 0).
 */
export function extractAnswer(completion: ArrayLike<number>, eosId: number): Int32Array | null {
  for (let i = 0; i < completion.length; i++) {
    if (completion[i] === eosId) return Int32Array.from({ length: i }, (_, j) => completion[j]);
  }
  return null;
}

/** Exact-match reward: 1 when the completion's answer (before the stop) equals `reference`, else 0. */
export function exactMatchReward(
  reference: ArrayLike<number>,
  completion: ArrayLike<number>,
  eosId: number,
): number {
  const answer = extractAnswer(completion, eosId);
  if (answer === null || answer.length !== reference.length) return 0;
  for (let i = 0; i < answer.length; i++) if (answer[i] !== reference[i]) return 0;
  return 1;
}

/** Result of `evaluateExactMatch`. */
export interface ExactMatchResult {
  /** Number of (prompt, completion) pairs. */
  n: number;
  /** How many are exactly correct. */
  correct: number;
  /** `correct / n` (0 for an empty batch). */
  accuracy: number;
  /** Per-pair rewards. */
  rewards: Float64Array;
  /** Mean reward (0 for an empty batch). */
  meanReward: number;
}

/**
 * Exact-match evaluation of a batch: completions[i] answers prompts[i].
 *
 * @example
 * ```ts
 * const { accuracy } = evaluateExactMatch(task, prompts, completions);
 * ```
 */
export function evaluateExactMatch(
  task: Task,
  prompts: readonly ArrayLike<number>[],
  completions: readonly ArrayLike<number>[],
): ExactMatchResult {
  if (prompts.length !== completions.length) {
    throw new RangeError(
      `evaluateExactMatch: ${prompts.length} prompts but ${completions.length} completions`,
    );
  }
  const n = prompts.length;
  const rewards = new Float64Array(n);
  let correct = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    rewards[i] = task.reward(prompts[i], completions[i]);
    sum += rewards[i];
    if (task.isCorrect(prompts[i], completions[i])) correct++;
  }
  return {
    n,
    correct,
    accuracy: n === 0 ? 0 : correct / n,
    rewards,
    meanReward: n === 0 ? 0 : sum / n,
  };
}

/**
 * Supervised training sequences `prompt + answer + stop`, right-padded to `T`, row-major `[B, T]`.
 *
 * The model reads `tokens[b, t]` and is trained to predict `targets[b, t]` (= `tokens[b, t + 1]`,
 * `padId` past the end) with weight `targetMask[b, t]`. `lossMask` marks the same targets in the
 * unshifted frame (1 on answer and stop tokens): use whichever matches the loss kernel.
 */
export interface SupervisedBatch {
  /** Rows. */
  B: number;
  /** Columns (sequence length after padding). */
  T: number;
  /** Token ids `[B, T]`, `padId` after each sequence. */
  tokens: Int32Array;
  /** 1 where `tokens` holds an answer or stop token, else 0 `[B, T]`. */
  lossMask: Float32Array;
  /** Next-token targets `[B, T]`: `tokens` shifted left by one, `padId` at the end. */
  targets: Int32Array;
  /** 1 where `targets` holds an answer or stop token, else 0 `[B, T]`. */
  targetMask: Float32Array;
  /** Prompt length of each row. */
  promptLengths: Int32Array;
  /** Unpadded length of each row (prompt + answer + stop). */
  lengths: Int32Array;
}

/**
 * Packs examples into a `SupervisedBatch` of length `T` (default: the longest row, at least 1). A row longer
 * than `T` throws naming the row, rather than being cut (a cut answer would teach a wrong stop).
 *
 * @example
 * ```ts
 * const batch = buildSupervisedBatch(task, task.sample(new Rng(0), 32), maxSequenceLength(task));
 * ```
 */
export function buildSupervisedBatch(
  task: Task,
  examples: readonly Example[],
  T?: number,
): SupervisedBatch {
  const { padId, eosId } = task.tokenizer;
  const B = examples.length;
  const lengths = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    lengths[b] = examples[b].prompt.length + examples[b].answer.length + 1;
  }
  const longest = lengths.reduce((m, x) => Math.max(m, x), 1);
  if (T === undefined) T = longest;
  if (!Number.isInteger(T) || T < 1) {
    throw new RangeError(`sequence length T must be >= 1, got ${T}`);
  }
  const tokens = new Int32Array(B * T).fill(padId);
  const lossMask = new Float32Array(B * T);
  const targets = new Int32Array(B * T).fill(padId);
  const targetMask = new Float32Array(B * T);
  const promptLengths = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const { prompt, answer } = examples[b];
    if (lengths[b] > T) {
      throw new RangeError(
        `example ${b} needs ${lengths[b]} tokens (prompt ${prompt.length} + answer ` +
          `${answer.length} + stop) but the batch length T is ${T}`,
      );
    }
    const row = b * T;
    tokens.set(prompt, row);
    tokens.set(answer, row + prompt.length);
    tokens[row + prompt.length + answer.length] = eosId;
    promptLengths[b] = prompt.length;
    for (let t = prompt.length; t < lengths[b]; t++) lossMask[row + t] = 1;
    for (let t = 0; t + 1 < T; t++) {
      targets[row + t] = tokens[row + t + 1];
      targetMask[row + t] = lossMask[row + t + 1];
    }
  }
  return { B, T, tokens, lossMask, targets, targetMask, promptLengths, lengths };
}

/** Prompts padded to a common length `[B, T]` for generation. */
export interface PromptBatch {
  /** Rows. */
  B: number;
  /** Columns. */
  T: number;
  /** Token ids `[B, T]`, padded with `padId` on the side `side`. */
  tokens: Int32Array;
  /** Unpadded length of each prompt. */
  lengths: Int32Array;
  /** Where the padding is: `left` puts every prompt's last token in column `T - 1`. */
  side: "left" | "right";
}

/**
 * Pads prompts to `T` (default: the longest, at least 1) for batched generation. Left padding (the default)
 * makes every row's next token land in the same column, which is what incremental decoding wants.
 */
export function buildPromptBatch(
  task: Task,
  prompts: readonly ArrayLike<number>[],
  options: { T?: number; side?: "left" | "right" } = {},
): PromptBatch {
  const side = options.side ?? "left";
  if (side !== "left" && side !== "right") {
    throw new RangeError(`padding side must be 'left' or 'right', got '${side}'`);
  }
  const B = prompts.length;
  const lengths = Int32Array.from(prompts, (p) => p.length);
  const T = options.T ?? lengths.reduce((m, x) => Math.max(m, x), 1);
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`prompt length T must be >= 1, got ${T}`);
  const tokens = new Int32Array(B * T).fill(task.tokenizer.padId);
  for (let b = 0; b < B; b++) {
    if (lengths[b] > T) {
      throw new RangeError(`prompt ${b} has ${lengths[b]} tokens but the batch length T is ${T}`);
    }
    tokens.set(prompts[b], b * T + (side === "left" ? T - lengths[b] : 0));
  }
  return { B, T, tokens, lengths, side };
}
