/**
 * Normalizers and pre-tokenizers of a byte-level BPE tokenizer.json, with the semantics of
 * Hugging Face `tokenizers` (`normalizers/unicode.rs`, `pre_tokenizers/split.rs`,
 * `pre_tokenizers/byte_level.rs`, `tokenizer/normalizer.rs`).
 *
 * A pre-tokenizer turns one piece of text into pieces that the BPE model encodes separately; a
 * `Sequence` applies its steps in order, each to every piece the previous one made. Empty pieces
 * are dropped after every step, as `PreTokenizedString::split` drops them.
 *
 * @module
 */
import { byteLevel } from "./bytes.ts";
import { onigurumaRegExp } from "./regex.ts";

/** Unicode normalization forms a `normalizer` may apply (in order). */
export type NormalizationForm = "NFC" | "NFD" | "NFKC" | "NFKD";

/** What a `Split` does with the matches of its pattern (`SplitDelimiterBehavior`). */
export type SplitBehavior =
  | "Removed"
  | "Isolated"
  | "MergedWithPrevious"
  | "MergedWithNext"
  | "Contiguous";

/** One pre-tokenizer step. */
export type PreTokenizerStep =
  | {
    /** `Split`: cut at the matches of `regex` (global `u` RegExp). */
    kind: "split";
    regex: RegExp;
    behavior: SplitBehavior;
    /** Cut at the text between matches instead (`invert: true`). */
    invert: boolean;
  }
  | {
    /** `ByteLevel`: optional prefix space and GPT-2 regex split, then the byte-level map. */
    kind: "byteLevel";
    addPrefixSpace: boolean;
    /** The GPT-2 regex when `use_regex` is true, else null. */
    regex: RegExp | null;
  };

/** The regex of the ByteLevel pre-tokenizer when `use_regex` is true (GPT-2's). */
export const GPT2_PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

let gpt2: RegExp | null = null;
/** The compiled GPT-2 regex (translated once). */
export function gpt2RegExp(): RegExp {
  return gpt2 ??= onigurumaRegExp(GPT2_PATTERN);
}

/** Applies the normalization forms in order (an empty list is the identity). */
export function normalize(text: string, forms: readonly NormalizationForm[]): string {
  for (const f of forms) text = text.normalize(f);
  return text;
}

/**
 * Cuts `text` at the matches of `regex` (a global RegExp) as `NormalizedString::split` does:
 * the matches and the gaps between them cover the text in order; `behavior` says which become
 * pieces; empty pieces are dropped. With `invert`, the gaps play the part of the matches.
 *
 * @example
 * ```ts
 * splitPieces("a, b", /,/gu, "Isolated", false); // ["a", ",", " b"]
 * splitPieces("a, b", /,/gu, "Removed", false); // ["a", " b"]
 * ```
 */
export function splitPieces(
  text: string,
  regex: RegExp,
  behavior: SplitBehavior,
  invert: boolean,
): string[] {
  // Spans as [start, end, isMatch], covering text.
  const starts: number[] = [];
  const ends: number[] = [];
  const isMatch: boolean[] = [];
  let prev = 0;
  regex.lastIndex = 0;
  for (;;) {
    const m = regex.exec(text);
    if (m === null) break;
    const start = m.index;
    const end = start + m[0].length;
    if (end === start) {
      // An empty match: step over one code point, as find_iter does.
      const c = text.charCodeAt(start);
      regex.lastIndex = start + (c >= 0xd800 && c <= 0xdbff ? 2 : 1);
      if (start >= text.length) break;
    }
    if (prev !== start) {
      starts.push(prev), ends.push(start), isMatch.push(invert);
    }
    starts.push(start), ends.push(end), isMatch.push(!invert);
    prev = end;
  }
  if (prev !== text.length) starts.push(prev), ends.push(text.length), isMatch.push(invert);

  const out: string[] = [];
  const push = (a: number, b: number) => {
    if (b > a) out.push(text.slice(a, b));
  };
  const n = starts.length;
  switch (behavior) {
    case "Isolated":
      for (let k = 0; k < n; k++) push(starts[k], ends[k]);
      return out;
    case "Removed":
      for (let k = 0; k < n; k++) if (!isMatch[k]) push(starts[k], ends[k]);
      return out;
    case "Contiguous":
    case "MergedWithPrevious": {
      // A match joins the span before it (Contiguous: any span joins a like one before it).
      const a: number[] = [];
      const b: number[] = [];
      let previous = false;
      for (let k = 0; k < n; k++) {
        const joins = behavior === "Contiguous" ? isMatch[k] === previous : isMatch[k] && !previous;
        if (joins && a.length > 0) b[b.length - 1] = ends[k];
        else a.push(starts[k]), b.push(ends[k]);
        previous = isMatch[k];
      }
      for (let k = 0; k < a.length; k++) push(a[k], b[k]);
      return out;
    }
    case "MergedWithNext": {
      const a: number[] = [];
      const b: number[] = [];
      let previous = false;
      for (let k = n - 1; k >= 0; k--) {
        if (isMatch[k] && !previous && a.length > 0) a[a.length - 1] = starts[k];
        else a.push(starts[k]), b.push(ends[k]);
        previous = isMatch[k];
      }
      for (let k = a.length - 1; k >= 0; k--) push(a[k], b[k]);
      return out;
    }
  }
}

/**
 * Runs the pre-tokenizer steps over one piece of (normalized) text; returns the pieces the BPE
 * model encodes, already in the byte-level alphabet when a ByteLevel step ran.
 *
 * @example
 * ```ts
 * preTokenize("Hi you", [{ kind: "byteLevel", addPrefixSpace: false, regex: gpt2RegExp() }]);
 * // ["Hi", "Ġyou"]
 * ```
 */
export function preTokenize(text: string, steps: readonly PreTokenizerStep[]): string[] {
  let pieces = text.length > 0 ? [text] : [];
  for (const step of steps) {
    const next: string[] = [];
    for (let p of pieces) {
      if (step.kind === "split") {
        for (const q of splitPieces(p, step.regex, step.behavior, step.invert)) next.push(q);
        continue;
      }
      if (step.addPrefixSpace && !p.startsWith(" ")) p = " " + p;
      if (step.regex === null) next.push(byteLevel(p));
      else {
        for (const q of splitPieces(p, step.regex, "Isolated", false)) next.push(byteLevel(q));
      }
    }
    pieces = next;
  }
  return pieces;
}
