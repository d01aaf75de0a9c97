/**
 * Added tokens (`added_tokens` of a tokenizer.json: `<|im_end|>`, `<think>`, ...) are cut out of
 * the text before normalization and pre-tokenization, each becoming its own id, as
 * `AddedVocabulary::find_matches` of Hugging Face `tokenizers` does:
 *
 * - matches are leftmost-longest and do not overlap (its Aho-Corasick automaton);
 * - a `single_word` token whose match touches a word character (`\w`, Unicode) on either side is
 *   left in the text, and the text under it is not searched again;
 * - `lstrip` widens the match over the whitespace before it (not past the previous match),
 *   `rstrip` over the whitespace after it: that whitespace disappears into the token;
 * - tokens with `normalized: false` are cut from the raw text first; the rest of the text is
 *   normalized; then tokens with `normalized: true` are cut from that, matched in their
 *   normalized form.
 *
 * @module
 */
import { escapeLiteral } from "./regex.ts";

/** One entry of `added_tokens`. */
export interface AddedToken {
  id: number;
  content: string;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** A piece of text between added tokens (`id` -1) or one added token (`id` its id). */
export interface Segment {
  text: string;
  id: number;
}

// Rust regex classes (Unicode): \w and \s as `tokenizers` uses them for these checks.
const WORD = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u;
const SPACE = /^\p{White_Space}$/u;

/** The code point ending at `i` (exclusive) as a string; "" at the start. */
function charBefore(text: string, i: number): string {
  if (i <= 0) return "";
  const c = text.charCodeAt(i - 1);
  return c >= 0xdc00 && c <= 0xdfff && i >= 2 ? text.slice(i - 2, i) : text[i - 1];
}

/** The code point starting at `i` as a string; "" at the end. */
function charAt(text: string, i: number): string {
  if (i >= text.length) return "";
  return String.fromCodePoint(text.codePointAt(i)!);
}

/** Finds one set of added tokens (the normalized or the non-normalized ones) in text. */
export class AddedTokenMatcher {
  readonly #byPattern = new Map<string, AddedToken>();
  readonly #regex: RegExp | null;

  /**
   * @param tokens the tokens to find.
   * @param patternOf the text each token is matched as (its content, or its normalized content).
   */
  constructor(tokens: readonly AddedToken[], patternOf: (t: AddedToken) => string) {
    for (const t of tokens) {
      const p = patternOf(t);
      if (p.length > 0) this.#byPattern.set(p, t);
    }
    // Longest first: at the leftmost position where any token matches, the alternation then
    // takes the longest one, which is the leftmost-longest rule.
    const patterns = [...this.#byPattern.keys()].sort((a, b) => b.length - a.length);
    this.#regex = patterns.length === 0
      ? null
      : new RegExp(patterns.map(escapeLiteral).join("|"), "gu");
  }

  /**
   * Cuts `text` into segments; `skipSpecial` leaves special tokens in the text (their matches
   * are dropped, as with `encode_special_tokens`).
   *
   * @example
   * ```ts
   * const m = new AddedTokenMatcher([{ id: 9, content: "<x>", singleWord: false, lstrip: false,
   *   rstrip: false, normalized: false, special: true }], (t) => t.content);
   * m.split("a<x>b", false); // [{ text: "a", id: -1 }, { text: "<x>", id: 9 }, { text: "b", id: -1 }]
   * ```
   */
  split(text: string, skipSpecial: boolean): Segment[] {
    if (this.#regex === null || text.length === 0) return text.length > 0 ? [{ text, id: -1 }] : [];
    const out: Segment[] = [];
    let offset = 0;
    const regex = this.#regex;
    regex.lastIndex = 0;
    for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
      let start = m.index;
      let stop = start + m[0].length;
      const token = this.#byPattern.get(m[0])!;
      if (skipSpecial && token.special) continue;
      if (token.singleWord) {
        if (WORD.test(charBefore(text, start)) || WORD.test(charAt(text, stop))) continue;
      }
      if (token.lstrip) {
        // Back over the whitespace before the match, but not into the previous match.
        for (let c = charBefore(text, start); start > offset && SPACE.test(c);) {
          start -= c.length;
          c = charBefore(text, start);
        }
      }
      if (token.rstrip) {
        for (let c = charAt(text, stop); c !== "" && SPACE.test(c); c = charAt(text, stop)) {
          stop += c.length;
        }
      }
      if (offset < start) out.push({ text: text.slice(offset, start), id: -1 });
      out.push({ text: text.slice(start, stop), id: token.id });
      offset = stop;
    }
    if (offset < text.length) out.push({ text: text.slice(offset), id: -1 });
    return out;
  }
}
