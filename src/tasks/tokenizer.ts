/**
 * Tokenizers for the built-in tasks: a fixed list of token strings, three special tokens first.
 *
 * Both tokenizers are closed vocabularies: every token id below `vocabSize` has one string, and
 * text that contains anything else is refused with an error naming the offending piece, so a typo
 * in a prompt never turns silently into an unknown-token id. Real LLM tokenizers (BPE) are out of
 * scope; the tasks only need an exact, invertible map between their text and their ids.
 *
 * Special ids are the same in every tokenizer here (`PAD_ID` 0, `BOS_ID` 1, `EOS_ID` 2) so that a
 * trainer can pad and stop without asking which task it runs; the `Tokenizer` interface still
 * carries them so that other tokenizers may differ.
 *
 * @module
 */

/** Padding id: fills sequences to a fixed length; never a training target. */
export const PAD_ID = 0;
/** Beginning-of-sequence id: the first token of every prompt. */
export const BOS_ID = 1;
/** End-of-sequence id: the stop token that ends every answer. */
export const EOS_ID = 2;
/** The strings of the special tokens, in id order. */
export const SPECIAL_TOKENS: readonly string[] = ["<pad>", "<bos>", "<eos>"];

/** Maps text to token ids and back; the contract every task's tokenizer fulfils. */
export interface Tokenizer {
  /** Number of token ids; every id is in `[0, vocabSize)`. */
  readonly vocabSize: number;
  /** Id that pads sequences to a common length. */
  readonly padId: number;
  /** Id that starts every prompt; -1 when prompts start with no special token (Qwen's tokenizers). */
  readonly bosId: number;
  /** Stop token: generation ends when it is sampled, and every supervised answer ends with it. */
  readonly eosId: number;
  /**
   * Every token that ends a generation, `eosId` first (a Hugging Face tokenizer may have several,
   * such as Qwen's `<|im_end|>` and `<|endoftext|>`); absent: `eosId` alone. See {@link stopIdsOf}.
   */
  readonly stopIds?: readonly number[];
  /**
   * Token ids of `text`. Special tokens are never produced (add `bosId`/`eosId` yourself); text that
   * the vocabulary cannot spell throws an `Error` naming the offending character or word.
   */
  encode(text: string): Int32Array;
  /**
   * Text of `ids`. Special tokens are written as `<pad>`, `<bos>`, `<eos>`, unless `skipSpecial`
   * drops them. Ids outside the vocabulary throw. `decode(encode(s)) === s` for any encodable `s`
   * (for the word tokenizer: after collapsing runs of whitespace to one space and trimming).
   */
  decode(ids: ArrayLike<number>, options?: { skipSpecial?: boolean }): string;
  /** The string of one token id (special tokens included). */
  tokenString(id: number): string;
}

/**
 * The tokens that end a generation of `tok`: its `stopIds` when it lists any, else `[eosId]`.
 *
 * @example
 * ```ts
 * stopIdsOf(new CharTokenizer("0123456789")); // [2]
 * ```
 */
export function stopIdsOf(tok: Tokenizer): readonly number[] {
  return tok.stopIds !== undefined && tok.stopIds.length > 0 ? tok.stopIds : [tok.eosId];
}

function checkId(id: number, vocabSize: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new RangeError(`token id ${id} is outside the vocabulary [0, ${vocabSize})`);
  }
}

/**
 * One token per character: the arithmetic task's tokenizer.
 *
 * @example
 * ```ts
 * const tok = new CharTokenizer("0123456789+-*= ");
 * tok.decode(tok.encode("12+3=")); // "12+3="
 * ```
 */
export class CharTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padId = PAD_ID;
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly #strings: string[];
  readonly #ids = new Map<string, number>();

  /** @param alphabet the characters after the specials, each once, in id order. */
  constructor(alphabet: string) {
    const chars = Array.from(alphabet);
    this.#strings = [...SPECIAL_TOKENS];
    for (const c of chars) {
      if (this.#ids.has(c)) throw new Error(`CharTokenizer: character '${c}' appears twice`);
      this.#ids.set(c, this.#strings.length);
      this.#strings.push(c);
    }
    this.vocabSize = this.#strings.length;
  }

  /** Ids of the characters of `text`; throws on a character outside the alphabet. */
  encode(text: string): Int32Array {
    const chars = Array.from(text);
    const out = new Int32Array(chars.length);
    for (let i = 0; i < chars.length; i++) {
      const id = this.#ids.get(chars[i]);
      if (id === undefined) {
        throw new Error(
          `cannot encode character ${JSON.stringify(chars[i])} at position ${i} of ` +
            `${JSON.stringify(text)}: not in the alphabet ${JSON.stringify(this.#alphabet())}`,
        );
      }
      out[i] = id;
    }
    return out;
  }

  /** Concatenated characters of `ids`. */
  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    let s = "";
    for (let i = 0; i < ids.length; i++) {
      checkId(ids[i], this.vocabSize);
      if (options.skipSpecial && ids[i] < SPECIAL_TOKENS.length) continue;
      s += this.#strings[ids[i]];
    }
    return s;
  }

  /** The character (or special token name) of `id`. */
  tokenString(id: number): string {
    checkId(id, this.vocabSize);
    return this.#strings[id];
  }

  #alphabet(): string {
    return this.#strings.slice(SPECIAL_TOKENS.length).join("");
  }
}

/**
 * One token per whitespace-separated word: the word tasks' tokenizer. Decoding joins tokens with
 * single spaces.
 *
 * @example
 * ```ts
 * const tok = new WordTokenizer(["=", "apple", "pear"]);
 * tok.encode("pear apple ="); // Int32Array [5, 4, 3]: ids start after the three specials
 * ```
 */
export class WordTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padId = PAD_ID;
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly #strings: string[];
  readonly #ids = new Map<string, number>();

  /** @param words the tokens after the specials, each once, none containing whitespace. */
  constructor(words: readonly string[]) {
    this.#strings = [...SPECIAL_TOKENS];
    for (const w of words) {
      if (w.length === 0 || /\s/.test(w)) {
        throw new Error(`WordTokenizer: word ${JSON.stringify(w)} is empty or has whitespace`);
      }
      if (this.#ids.has(w) || SPECIAL_TOKENS.includes(w)) {
        throw new Error(`WordTokenizer: word ${JSON.stringify(w)} appears twice`);
      }
      this.#ids.set(w, this.#strings.length);
      this.#strings.push(w);
    }
    this.vocabSize = this.#strings.length;
  }

  /** Ids of the whitespace-separated words of `text`; throws on an unknown word. */
  encode(text: string): Int32Array {
    const words = text.split(/\s+/).filter((w) => w.length > 0);
    const out = new Int32Array(words.length);
    for (let i = 0; i < words.length; i++) {
      const id = this.#ids.get(words[i]);
      if (id === undefined) {
        throw new Error(
          `cannot encode word ${JSON.stringify(words[i])} (word ${i} of the text): ` +
            `not in the ${this.vocabSize}-token vocabulary`,
        );
      }
      out[i] = id;
    }
    return out;
  }

  /** The words of `ids` joined by single spaces. */
  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    const words: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      checkId(ids[i], this.vocabSize);
      if (options.skipSpecial && ids[i] < SPECIAL_TOKENS.length) continue;
      words.push(this.#strings[ids[i]]);
    }
    return words.join(" ");
  }

  /** The word (or special token name) of `id`. */
  tokenString(id: number): string {
    checkId(id, this.vocabSize);
    return this.#strings[id];
  }
}
