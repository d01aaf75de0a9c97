/**
 * A synthetic Qwen2-layout tokenizer.json with many merges, and mixed text to encode, for the
 * throughput bench (`bench/text/encode.ts`). The merges are prefix chains of the corpus's most
 * frequent pre-tokenized words (`h`+`e`, `he`+`l`, ...), which gives a valid BPE whose merges fire
 * on the text as a trained one's do, in a fraction of a second instead of a trainer's minutes.
 *
 * @module
 */
import { BYTE_TO_CHAR, byteLevel } from "../../src/text/bytes.ts";
import { splitPieces } from "../../src/text/pretokenize.ts";
import { onigurumaRegExp } from "../../src/text/regex.ts";
import { Rng } from "../../src/util/rng.ts";

/** Qwen2's Split regex. */
export const QWEN2_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const SYLLABLES = [
  "th",
  "e",
  "in",
  "an",
  "re",
  "on",
  "at",
  "en",
  "er",
  "st",
  "ou",
  "ing",
  "ion",
  "al",
  "ed",
  "tr",
  "qu",
  "pl",
  "ch",
  "sh",
  "o",
  "a",
  "i",
  "u",
  "y",
  "ar",
  "or",
  "ment",
  "ly",
  "ous",
];
const CJK =
  "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里";
const CODE = [
  "function f(x) {\n  return x + 1;\n}\n",
  "for (let i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
  "def main():\n    print('hello, world')\n\n",
  "if (err != nil) { return err }\r\n",
  "    x = [1, 2, 3]  # comment\n",
];

/** Mixed text of about `bytes` UTF-8 bytes: Zipf-distributed words, code, CJK, digits, emoji. */
export function mixedText(bytes: number, seed = 1): string {
  const rng = new Rng(seed);
  const lexicon: string[] = [];
  for (let k = 0; k < 20_000; k++) {
    let w = "";
    const n = 1 + rng.int(4);
    for (let s = 0; s < n; s++) w += SYLLABLES[rng.int(SYLLABLES.length)];
    lexicon.push(rng.uniform() < 0.1 ? w[0].toUpperCase() + w.slice(1) : w);
  }
  const zipf = () =>
    lexicon[Math.min(lexicon.length - 1, Math.floor(Math.exp(rng.uniform() * 10)) - 1)];
  const parts: string[] = [];
  let size = 0;
  const add = (s: string) => {
    parts.push(s);
    size += s.length; // a lower bound on its UTF-8 bytes; close enough for a target size
  };
  while (size < bytes) {
    const r = rng.uniform();
    if (r < 0.75) add((rng.uniform() < 0.85 ? " " : "") + zipf());
    else if (r < 0.82) add([".", ",", "!", "?", "'s", "'ll", " —", ":"][rng.int(8)]);
    else if (r < 0.87) add(rng.uniform() < 0.5 ? "\n" : "\n\n");
    else if (r < 0.91) add(" " + String(rng.int(100_000)));
    else if (r < 0.95) {
      let s = "";
      for (let k = 1 + rng.int(12); k > 0; k--) s += CJK[rng.int(CJK.length)];
      add(s + (rng.uniform() < 0.5 ? "，" : "。"));
    } else if (r < 0.98) add(CODE[rng.int(CODE.length)]);
    else add([" 😀", " 👍🏽", " café", " naïve", "  ", "\t"][rng.int(6)]);
  }
  return parts.join("");
}

/**
 * A tokenizer.json object in Qwen2's layout with `merges` merges (fewer if the corpus runs out of
 * new prefixes) built as prefix chains of the most frequent words of `corpus`.
 */
export function prefixChainTokenizer(corpus: string, merges: number): Record<string, unknown> {
  const split = onigurumaRegExp(QWEN2_PATTERN);
  const counts = new Map<string, number>();
  for (const p of splitPieces(corpus.normalize("NFC"), split, "Isolated", false)) {
    const w = byteLevel(p);
    counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  const words = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const vocab: Record<string, number> = {};
  let next = 0;
  for (let b = 0; b < 256; b++) vocab[String.fromCharCode(BYTE_TO_CHAR[b])] = next++;
  const list: string[] = [];
  for (const [w] of words) {
    if (list.length >= merges) break;
    let prefix = w[0];
    for (let i = 1; i < w.length && list.length < merges; i++) {
      const merged = prefix + w[i];
      if (!(merged in vocab)) {
        vocab[merged] = next++;
        list.push(`${prefix} ${w[i]}`);
      }
      prefix = merged;
    }
  }
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const byteLevelStep = {
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: false,
    use_regex: false,
  };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      special("<|endoftext|>", next),
      special("<|im_start|>", next + 1),
      special("<|im_end|>", next + 2),
    ],
    normalizer: { type: "NFC" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: QWEN2_PATTERN }, behavior: "Isolated", invert: false },
        byteLevelStep,
      ],
    },
    post_processor: byteLevelStep,
    decoder: byteLevelStep,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: list,
    },
  };
}
