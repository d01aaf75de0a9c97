/**
 * `wordsort`: sort a list of words drawn from a vocabulary of 1,024 (by default) pseudo-words.
 *
 * Why this task: its vocabulary is LLM-like in size, so a top-k set (k = 20) is about 2 % of it, as
 * with real models, which is the regime Jackpot's top-k approximation of Z is designed for; yet a
 * small transformer learns it by supervised training (each output step picks the smallest prompt
 * word not yet emitted, a comparison an embedding can encode). Before training is complete the
 * model's next-token distribution spreads over the prompt's words, a handful of ids out of 1,024:
 * a peaked but non-trivial distribution, like an LLM's.
 *
 * Words are consonant–vowel syllables (`ba`, `be`, … `zu`), all of the same syllable count, chosen
 * evenly from the alphabetical list of such words, so token-id order *is* alphabetical order.
 *
 * Prompt: `<bos> w1 w2 … wn =` with n uniform in `[minItems, maxItems]` and each word uniform over
 * the vocabulary (independently, so repeats may occur, unless `unique`). Answer: the same words in
 * ascending (alphabetical) order, repeats kept, then the stop token.
 *
 * Reward: 1 if the tokens before the first stop equal the sorted list exactly, else 0 (no stop → 0).
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";
import { resolveOptions } from "./options.ts";
import type { Example, Task, TaskOptions } from "./task.ts";
import { exactMatchReward } from "./task.ts";
import { WordTokenizer } from "./tokenizer.ts";

/** The options of `wordsort`, with defaults and ranges. */
export const WORDSORT_OPTIONS = {
  words: { type: "int", default: 1024, min: 2, max: 100000, description: "number of word tokens" },
  minItems: { type: "int", default: 2, min: 1, max: 256, description: "fewest words per prompt" },
  maxItems: { type: "int", default: 8, min: 1, max: 256, description: "most words per prompt" },
  unique: { type: "boolean", default: false, description: "draw the words without repeats" },
} as const;

const CONSONANTS = "bdfgklmnprstvz";
const VOWELS = "aeiou";
/** The separator token between the list and the answer. */
export const WORDSORT_SEPARATOR = "=";

/**
 * `count` distinct pseudo-words in alphabetical order: fixed-length syllable strings, spread
 * evenly over all strings of that length.
 */
export function pseudoWords(count: number): string[] {
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(`pseudoWords needs count >= 1, got ${count}`);
  }
  const syllables: string[] = [];
  for (const c of CONSONANTS) for (const v of VOWELS) syllables.push(c + v);
  const S = syllables.length;
  let L = 1;
  while (S ** L < count) L++;
  const total = S ** L;
  const words: string[] = [];
  for (let i = 0; i < count; i++) {
    // Integer arithmetic: floor(i·total/count) is strictly increasing because total >= count.
    let x = Math.floor((i * total) / count);
    let w = "";
    for (let k = 0; k < L; k++) {
      w = syllables[x % S] + w;
      x = Math.floor(x / S);
    }
    words.push(w);
  }
  return words;
}

class WordSortTask implements Task {
  readonly name = "wordsort";
  readonly description: string;
  readonly tokenizer: WordTokenizer;
  readonly options: Readonly<TaskOptions>;
  readonly maxPromptLength: number;
  readonly maxAnswerLength: number;
  readonly #sepId: number;
  readonly #firstWordId: number;
  readonly #words: number;
  readonly #minItems: number;
  readonly #maxItems: number;
  readonly #unique: boolean;

  constructor(given: TaskOptions) {
    const o = resolveOptions("wordsort", WORDSORT_OPTIONS, given);
    if (o.minItems > o.maxItems) {
      throw new Error(
        `task 'wordsort': minItems (${o.minItems}) must not exceed maxItems (${o.maxItems})`,
      );
    }
    if (o.unique && o.maxItems > o.words) {
      throw new Error(
        `task 'wordsort': unique lists of up to ${o.maxItems} items need at least that many ` +
          `words, got words=${o.words}`,
      );
    }
    this.options = Object.freeze({ ...o });
    this.tokenizer = new WordTokenizer([WORDSORT_SEPARATOR, ...pseudoWords(o.words)]);
    this.#sepId = this.tokenizer.encode(WORDSORT_SEPARATOR)[0];
    this.#firstWordId = this.#sepId + 1;
    this.#words = o.words;
    this.#minItems = o.minItems;
    this.#maxItems = o.maxItems;
    this.#unique = o.unique;
    this.maxPromptLength = o.maxItems + 2;
    this.maxAnswerLength = o.maxItems;
    this.description = `Sort ${o.minItems}–${o.maxItems} words (from ${o.words} pseudo-words, ` +
      `vocabulary ${this.tokenizer.vocabSize}${o.unique ? ", no repeats" : ""}) alphabetically: ` +
      `'<bos> tosa bavi mire =' → 'bavi mire tosa <eos>'. Reward 1 for the exact sorted list before the ` +
      `stop token, else 0.`;
  }

  sample(rng: Rng, n: number): Example[] {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`sample(n) needs n >= 0, got ${n}`);
    const out: Example[] = [];
    for (let i = 0; i < n; i++) {
      const count = this.#minItems + rng.int(this.#maxItems - this.#minItems + 1);
      const items = new Int32Array(count);
      const seen = new Set<number>();
      for (let j = 0; j < count; j++) {
        let w = rng.int(this.#words);
        // Rejection keeps each unique list uniform; count <= words is checked at construction.
        while (this.#unique && seen.has(w)) w = rng.int(this.#words);
        seen.add(w);
        items[j] = this.#firstWordId + w;
      }
      const prompt = new Int32Array(count + 2);
      prompt[0] = this.tokenizer.bosId;
      prompt.set(items, 1);
      prompt[count + 1] = this.#sepId;
      out.push({ prompt, answer: items.slice().sort() });
    }
    return out;
  }

  referenceAnswer(prompt: ArrayLike<number>): Int32Array {
    const n = prompt.length;
    if (n < 3 || prompt[0] !== this.tokenizer.bosId || prompt[n - 1] !== this.#sepId) {
      throw new Error(
        `not a wordsort prompt (expected <bos>, at least one word, '='): ` +
          JSON.stringify(this.#safeDecode(prompt)),
      );
    }
    const items = new Int32Array(n - 2);
    for (let j = 1; j < n - 1; j++) {
      const id = prompt[j];
      if (!Number.isInteger(id) || id < this.#firstWordId || id >= this.tokenizer.vocabSize) {
        throw new Error(`wordsort prompt token ${j} is ${id}, not a word id`);
      }
      items[j - 1] = id;
    }
    return items.sort();
  }

  #safeDecode(ids: ArrayLike<number>): string {
    try {
      return this.tokenizer.decode(ids);
    } catch {
      return Array.from(ids).join(",");
    }
  }

  reward(prompt: ArrayLike<number>, completion: ArrayLike<number>): number {
    return exactMatchReward(this.referenceAnswer(prompt), completion, this.tokenizer.eosId);
  }

  isCorrect(prompt: ArrayLike<number>, completion: ArrayLike<number>): boolean {
    return this.reward(prompt, completion) === 1;
  }
}

/**
 * The `wordsort` task; see the module notes and `WORDSORT_OPTIONS`.
 *
 * @example
 * ```ts
 * const task = createWordSortTask({ maxItems: 6 });
 * task.tokenizer.vocabSize; // 1028: 3 specials, '=', 1024 words
 * ```
 */
export function createWordSortTask(options: TaskOptions = {}): Task {
  return new WordSortTask(options);
}
