/**
 * The `text` task: problems in plain text with a checkable final answer, tokenized by a Hugging
 * Face checkpoint folder's own tokenizer and chat template, so that `jackpot rl` can train real
 * Qwen-architecture models (a policy and a smaller rollout model sharing one tokenizer) as the paper
 * does: reward 1 when the final answer of a completion is right, else 0.
 *
 * Where the problems come from:
 * - `data=FILE`: a JSONL file of problems (`{"question": …, "answer": …}`, GSM8K and MATH layouts
 *   accepted; see `problems.ts`);
 * - otherwise a pool of `problems=N` arithmetic word problems generated from `problemSeed`
 *   (`digits`, `terms`, `ops`; see `generated.ts`), the same pool whatever the RL seed.
 * Evaluation uses `eval=FILE` when given (held out); else, for generated problems, a second pool
 * with every training prompt removed; else the training problems themselves (said on stderr by the
 * CLI, since accuracy on them is not held-out accuracy).
 *
 * A prompt is the problem, then `instruction` on a new line (default: ask for `\boxed{}`), as one
 * user turn (after `system` when given) through the folder's chat template with
 * `enable_thinking=thinking` (Qwen3), or ChatML when the folder has no template; `chat=false` uses
 * the bare text. The reward decodes the completion up to its first stop token (any of the
 * tokenizer's: Qwen's `<|im_end|>` and `<|endoftext|>`), finds the final answer (`format`, see
 * `answer.ts`) and compares it with the reference; a completion that never stops within `maxNew`
 * tokens scores 0, as in the built-in tasks. Unlike them, the reference comes from the problem
 * list, looked up by the prompt's token ids, not recomputed from the prompt.
 *
 * Loading is asynchronous (files are read), so this task is built by `loadTask`, not `createTask`.
 *
 * @module
 */
import { type ChatMessage, chatMLPrompt, ChatTemplate } from "../../text/chat_template.ts";
import { readTokenizer } from "../../text/folder.ts";
import type { BpeTokenizer } from "../../text/tokenizer.ts";
import { Rng } from "../../util/rng.ts";
import { type Resolved, resolveOptions } from "../options.ts";
import type { Example, Task, TaskOptions } from "../task.ts";
import type { Tokenizer } from "../tokenizer.ts";
import { ANSWER_FORMATS, type AnswerFormat, answersMatch, extractFinalAnswer } from "./answer.ts";
import { generateArithmeticProblems } from "./generated.ts";
import { parseProblemsJsonl, type TextProblem } from "./problems.ts";

/** The options of the `text` task. */
export const TEXT_TASK_OPTIONS = {
  tokenizer: {
    type: "string",
    default: "",
    description: "checkpoint folder whose tokenizer (and chat template) to use (rl: --policy's)",
  },
  data: { type: "string", default: "", description: "JSONL file of training problems" },
  eval: { type: "string", default: "", description: "JSONL file of held-out evaluation problems" },
  problems: {
    type: "int",
    default: 4096,
    min: 1,
    max: 1_000_000,
    description: "size of the generated problem pool (without data=)",
  },
  problemSeed: {
    type: "int",
    default: 0,
    min: 0,
    max: 2 ** 32 - 1,
    description: "seed of the generated problems",
  },
  digits: { type: "int", default: 2, min: 1, max: 9, description: "digits per generated number" },
  terms: { type: "int", default: 2, min: 2, max: 6, description: "numbers per generated problem" },
  ops: { type: "string", default: "+-*", description: "operators of generated problems" },
  chat: { type: "boolean", default: true, description: "wrap prompts in the chat template" },
  thinking: {
    type: "boolean",
    default: false,
    description: "enable_thinking of Qwen3's template (false closes an empty think block)",
  },
  system: { type: "string", default: "", description: "system message (none when empty)" },
  instruction: {
    type: "string",
    default: "Put the final answer in \\boxed{}.",
    description: "line added after each problem (none when empty)",
  },
  format: {
    type: "string",
    default: "auto",
    description: `where the final answer is: ${ANSWER_FORMATS.join(", ")}`,
    check: (v: string) =>
      (ANSWER_FORMATS as readonly string[]).includes(v)
        ? null
        : `must be one of ${ANSWER_FORMATS.join(", ")}`,
  },
  maxNew: {
    type: "int",
    default: 256,
    min: 2,
    max: 32768,
    description: "most generated tokens (the stop token included)",
  },
} as const;

/** Resolved options of the `text` task. */
export type TextTaskSettings = Resolved<typeof TEXT_TASK_OPTIONS>;

const TRAIN_STREAM = 0x7e47_0001;
const EVAL_STREAM = 0x7e47_0002;

/**
 * The tasks-layer view of a checkpoint's BPE tokenizer: prompts start with no bos (-1) unless the
 * folder asks for one, every stop token of the folder ends a generation, and ids the model has but
 * the tokenizer lacks (Qwen pads its embedding past the tokenizer) decode to nothing.
 */
export class CheckpointTokenizer implements Tokenizer {
  /** The folder's tokenizer. */
  readonly bpe: BpeTokenizer;
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly stopIds: readonly number[];

  /** Wraps `bpe`; an Error when it has no eos (nothing could end a generation). */
  constructor(bpe: BpeTokenizer, source: string) {
    if (bpe.eosId === null) {
      throw new Error(
        `${source}: the tokenizer has no end-of-sequence token (tokenizer_config.json eos_token or ` +
          "generation_config.json eos_token_id), so no generation could stop",
      );
    }
    this.bpe = bpe;
    this.vocabSize = bpe.vocabSize;
    this.eosId = bpe.eosId;
    this.padId = bpe.padId ?? bpe.eosId;
    this.bosId = bpe.bosId ?? -1;
    // the rollout engine stops on at most four ids (MAX_STOP_IDS); Qwen's folders list two
    this.stopIds = (bpe.stopIds.length > 0 ? bpe.stopIds : [bpe.eosId]).slice(0, 4);
  }

  /** Ids of `text`, special tokens written in it (`<|im_start|>`) included. */
  encode(text: string): Int32Array {
    return this.bpe.encode(text);
  }

  /** Text of `ids`; ids outside the tokenizer (the model's padding rows) are skipped. */
  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (this.#known(ids[i])) known.push(ids[i]);
    }
    return this.bpe.decode(known, options);
  }

  /** The token string of `id` (`""` for an id the tokenizer lacks). */
  tokenString(id: number): string {
    return this.#known(id) ? this.bpe.tokenString(id) : "";
  }

  #known(id: number): boolean {
    if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) return false;
    try {
      this.bpe.tokenString(id);
      return true;
    } catch {
      return false; // a hole in the vocabulary
    }
  }
}

/** One problem as the model sees it. */
interface EncodedProblem {
  prompt: Int32Array;
  answer: string;
}

const key = (ids: ArrayLike<number>) => Array.prototype.join.call(ids, ",");

/** The `text` task (build it with {@link loadTextTask}). */
export class TextTask implements Task {
  readonly name = "text";
  readonly description: string;
  readonly tokenizer: CheckpointTokenizer;
  readonly options: Readonly<TaskOptions>;
  readonly maxPromptLength: number;
  readonly maxAnswerLength: number;
  /** Whether evaluation problems are kept apart from the training ones. */
  readonly heldOut: boolean;
  /** Number of training and evaluation problems. */
  readonly sizes: { train: number; eval: number };
  readonly #format: AnswerFormat;
  readonly #train: EncodedProblem[];
  readonly #eval: EncodedProblem[];
  readonly #answers = new Map<string, string>();

  /** @internal Use {@link loadTextTask}. */
  constructor(
    settings: TextTaskSettings,
    tokenizer: CheckpointTokenizer,
    train: EncodedProblem[],
    evalProblems: EncodedProblem[],
    heldOut: boolean,
  ) {
    this.options = { ...settings };
    this.tokenizer = tokenizer;
    this.#format = settings.format as AnswerFormat;
    this.#train = train;
    this.#eval = evalProblems;
    this.heldOut = heldOut;
    this.sizes = { train: train.length, eval: evalProblems.length };
    for (const p of [...train, ...evalProblems]) this.#answers.set(key(p.prompt), p.answer);
    // a loop, not Math.max(...): a pool may hold a million problems, past the spread limit
    let longest = 0;
    for (const p of [...train, ...evalProblems]) longest = Math.max(longest, p.prompt.length);
    this.maxPromptLength = longest;
    this.maxAnswerLength = settings.maxNew - 1;
    const source = settings.data === "" ? `${train.length} generated problems` : settings.data;
    this.description = `problems with a final answer (${source}), tokenized by ` +
      `${settings.tokenizer}; reward 1 when the ${settings.format} answer matches`;
  }

  /** `n` training problems drawn uniformly (with replacement) from `rng`. */
  sample(rng: Rng, n: number): Example[] {
    return Array.from({ length: n }, () => this.#example(this.#train[rng.int(this.#train.length)]));
  }

  /**
   * `n` evaluation problems: a shuffle (by `rng`) of the evaluation problems, without
   * replacement while they last, then again.
   */
  evaluationSample(rng: Rng, n: number): Example[] {
    const out: Example[] = [];
    while (out.length < n) {
      const order = rng.shuffle(Array.from({ length: this.#eval.length }, (_, i) => i));
      for (const i of order.slice(0, n - out.length)) out.push(this.#example(this.#eval[i]));
    }
    return out;
  }

  /** The reference answer's tokens, as a supervised completion writes it (`\boxed{42}`). */
  referenceAnswer(prompt: ArrayLike<number>): Int32Array {
    return this.tokenizer.encode(this.#answerText(this.#reference(prompt)));
  }

  /** 1 when the completion stops and its final answer matches the reference, else 0. */
  reward(prompt: ArrayLike<number>, completion: ArrayLike<number>): number {
    return this.isCorrect(prompt, completion) ? 1 : 0;
  }

  /** Whether the completion stops and its final answer matches the reference. */
  isCorrect(prompt: ArrayLike<number>, completion: ArrayLike<number>): boolean {
    const reference = this.#reference(prompt);
    const text = this.completionText(completion);
    if (text === null) return false;
    return answersMatch(extractFinalAnswer(text, this.#format), reference);
  }

  /** The text of a completion before its first stop token, or null when it never stops. */
  completionText(completion: ArrayLike<number>): string | null {
    const stops = new Set(this.tokenizer.stopIds);
    for (let i = 0; i < completion.length; i++) {
      if (stops.has(completion[i])) {
        return this.tokenizer.decode(Array.prototype.slice.call(completion, 0, i), {
          skipSpecial: true,
        });
      }
    }
    return null;
  }

  #reference(prompt: ArrayLike<number>): string {
    const answer = this.#answers.get(key(prompt));
    if (answer === undefined) {
      throw new Error(
        "text task: this prompt is not one of the task's problems, so it has no reference answer",
      );
    }
    return answer;
  }

  #example(p: EncodedProblem): Example {
    return { prompt: p.prompt, answer: this.tokenizer.encode(this.#answerText(p.answer)) };
  }

  #answerText(answer: string): string {
    if (this.#format === "hashes") return `#### ${answer}`;
    if (this.#format === "last-number") return answer;
    return `\\boxed{${answer}}`;
  }
}

/** The prompt text of a problem's text. */
interface PromptBuilder {
  (problem: string): string;
}

async function promptBuilder(
  s: TextTaskSettings,
  tok: CheckpointTokenizer,
): Promise<PromptBuilder> {
  const content = (problem: string) =>
    s.instruction === "" ? problem : `${problem}\n${s.instruction}`;
  const bos = tok.bpe.bosId === null ? "" : tok.bpe.tokenString(tok.bpe.bosId);
  if (!s.chat) return (problem) => bos + content(problem);
  const messages = (problem: string): ChatMessage[] => [
    ...(s.system === "" ? [] : [{ role: "system", content: s.system }]),
    { role: "user", content: content(problem) },
  ];
  const template = await ChatTemplate.read(s.tokenizer);
  if (template !== null) {
    // As apply_chat_template: the template writes any bos itself.
    return (problem) =>
      template.render(messages(problem), { variables: { enable_thinking: s.thinking } });
  }
  for (const t of ["<|im_start|>", "<|im_end|>"]) {
    if (tok.bpe.tokenId(t) === undefined) {
      throw new Error(
        `${s.tokenizer} has no chat template and its tokenizer no ${t} token for ChatML; ` +
          "use chat=false for bare prompts",
      );
    }
  }
  return (problem) => chatMLPrompt(messages(problem));
}

async function readProblems(path: string): Promise<TextProblem[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read the problem file (${(e as Error).message})`);
  }
  return parseProblemsJsonl(text, path);
}

/**
 * Prompts of `problems` as ids, each prompt once. A prompt met before (in `seen`, which this fills)
 * must have the same answer; `dropSeen` leaves those out (generated evaluation problems that are
 * also training problems), otherwise they stay (a held-out file may repeat a training problem).
 */
function encodeAll(
  problems: readonly TextProblem[],
  build: PromptBuilder,
  tok: CheckpointTokenizer,
  seen: Map<string, string>,
  dropSeen: boolean,
): EncodedProblem[] {
  const out: EncodedProblem[] = [];
  const here = new Set<string>();
  for (const p of problems) {
    const prompt = tok.encode(build(p.prompt));
    const k = key(prompt);
    const before = seen.get(k);
    if (before !== undefined && !answersMatch(p.answer, before)) {
      throw new Error(
        `the problem ${JSON.stringify(p.prompt.slice(0, 80))} appears twice with different ` +
          `answers (${JSON.stringify(before)} and ${JSON.stringify(p.answer)})`,
      );
    }
    if (here.has(k) || (before !== undefined && dropSeen)) continue;
    here.add(k);
    seen.set(k, p.answer);
    out.push({ prompt, answer: p.answer });
  }
  return out;
}

/**
 * The `text` task of `options` (see {@link TEXT_TASK_OPTIONS}): reads the tokenizer folder, its
 * chat template and the problem files, and encodes every prompt once. Errors name the option or
 * file: no `tokenizer`, a folder without tokenizer.json, a bad problem file, a problem repeated
 * with another answer, a generated pool whose evaluation problems all appear in training.
 *
 * @example
 * ```ts
 * const task = await loadTextTask({ tokenizer: "models/Qwen3-0.6B", data: "gsm8k_train.jsonl",
 *   eval: "gsm8k_test.jsonl", maxNew: 512 });
 * ```
 */
export async function loadTextTask(options: TaskOptions): Promise<TextTask> {
  const s = resolveOptions("text", TEXT_TASK_OPTIONS, options);
  // The CLI builds the task more than once (to check options, then to run; a sweep once per run):
  // the files are read and every prompt encoded once while they stay unchanged.
  const cacheKey = JSON.stringify(s) + await fileStamps(s);
  const cached = CACHE.get(cacheKey);
  if (cached) return cached;
  const task = await readTextTask(s);
  CACHE.clear(); // one task at a time: a long notebook session does not keep every pool
  CACHE.set(cacheKey, task);
  return task;
}

const CACHE = new Map<string, TextTask>();

async function fileStamps(s: TextTaskSettings): Promise<string> {
  const paths = [`${s.tokenizer}/tokenizer.json`, `${s.tokenizer}/tokenizer_config.json`];
  if (s.data !== "") paths.push(s.data);
  if (s.eval !== "") paths.push(s.eval);
  const stamps = await Promise.all(
    paths.map((p) =>
      Deno.stat(p).then((st) => `${st.size}@${st.mtime?.getTime()}`, () => "missing")
    ),
  );
  return stamps.join(";");
}

async function readTextTask(s: TextTaskSettings): Promise<TextTask> {
  if (s.tokenizer === "") {
    throw new Error(
      "task 'text' needs tokenizer=FOLDER, a checkpoint folder with tokenizer.json " +
        "(jackpot rl uses --policy's folder when it is one)",
    );
  }
  const generated = { digits: s.digits, terms: s.terms, ops: s.ops };
  const tok = new CheckpointTokenizer(await readTokenizer(s.tokenizer), s.tokenizer);
  const build = await promptBuilder(s, tok);
  const seen = new Map<string, string>();
  const generatedTrain = s.data !== ""
    ? null
    : generateArithmeticProblems(new Rng(s.problemSeed, TRAIN_STREAM), s.problems, generated);
  const trainProblems = generatedTrain ?? await readProblems(s.data);
  const train = encodeAll(trainProblems, build, tok, seen, false);
  let evalProblems: EncodedProblem[];
  let heldOut = true;
  if (s.eval !== "") {
    evalProblems = encodeAll(await readProblems(s.eval), build, tok, seen, false);
  } else if (s.data === "") {
    // held out by arithmetic, not only by wording: a training expression told as another story
    // is not an evaluation problem either
    const trained = new Set(generatedTrain!.map((p) => p.expression));
    const fresh = generateArithmeticProblems(
      new Rng(s.problemSeed, EVAL_STREAM),
      Math.max(256, Math.min(s.problems, 4096)),
      generated,
    ).filter((p) => !trained.has(p.expression));
    evalProblems = encodeAll(fresh, build, tok, seen, true);
    if (evalProblems.length === 0) {
      throw new Error(
        `task 'text': every generated evaluation problem is also a training problem ` +
          `(digits=${s.digits}, terms=${s.terms} allow too few); raise digits or terms`,
      );
    }
  } else {
    evalProblems = train;
    heldOut = false;
  }
  const task = new TextTask(s, tok, train, evalProblems, heldOut);
  // A supervised example (pretrain) and a correct completion must fit in maxNew with the stop.
  for (const p of [...train, ...evalProblems]) {
    const n = task.referenceAnswer(p.prompt).length;
    if (n > task.maxAnswerLength) {
      throw new Error(
        `task 'text': maxNew=${s.maxNew} leaves no room for the answer ${
          JSON.stringify(p.answer)
        } ` +
          `written as it is rewarded (${n} tokens, then the stop token); raise maxNew`,
      );
    }
  }
  return task;
}
