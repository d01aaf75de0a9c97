/**
 * Helpers of the text tests: random tricky strings, a naive BPE trainer, synthetic tokenizer.json
 * files in Qwen2's layout, and a slow reference encoder that shares no code with the fast path
 * except the translated Split regex (which text_pretokenize_test.ts checks by hand).
 */
import { mergeRanks, referenceBpe } from "../src/text/bpe_reference.ts";
import { onigurumaRegExp } from "../src/text/regex.ts";
import { splitPieces } from "../src/text/pretokenize.ts";
import { Rng } from "../src/util/rng.ts";
import type { ChatMessage } from "../src/text/mod.ts";

/** Qwen2's Split regex, as its tokenizer.json spells it. */
export const QWEN2_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** GPT-2's bytes_to_unicode, written the way the Python original is (independent of bytes.ts). */
export function gpt2ByteMap(): string[] {
  const bs: number[] = [];
  for (let b = "!".charCodeAt(0); b <= "~".charCodeAt(0); b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const map: string[] = new Array(256);
  bs.forEach((b, k) => map[b] = String.fromCodePoint(cs[k]));
  return map;
}
const BYTE_MAP = gpt2ByteMap();
const utf8 = new TextEncoder();

/** The byte-level spelling of `s` (reference). */
export function refByteLevel(s: string): string {
  return Array.from(utf8.encode(s), (b) => BYTE_MAP[b]).join("");
}

const FRAGMENTS = [
  "the",
  "The",
  " the",
  "hello",
  " world",
  "token",
  "izer",
  "ing",
  "s",
  "a",
  " a",
  "xyz",
  "qu'il",
  "don't",
  "it's",
  "I'M",
  "'ll",
  "'VE",
  "'ſ",
  "'d",
  "''",
  "’s",
  "0",
  "7",
  "42",
  "2025",
  "3.14",
  "1,000",
  "٣",
  "Ⅻ",
  " ",
  "  ",
  "   ",
  "\t",
  "\n",
  "\r\n",
  "\r\n\r\n",
  "\n\n\n",
  " \n ",
  "\u00a0",
  "\u0085",
  "\u3000",
  "\u2028",
  "\ufeff",
  "你好",
  "世界",
  "日本語",
  "한국어",
  "中文，标点。",
  "Привет",
  "ελληνικά",
  "שלום",
  "مرحبا",
  "😀",
  "👍🏽",
  "👩‍💻",
  "🇫🇷",
  "𝔘𝔫𝔦",
  "\u{10FFFD}",
  "e\u0301",
  "a\u0308",
  "\u1100\u1161",
  "n\u0303o",
  "\u0301",
  "Å",
  "ﬁ",
  "!",
  "?!",
  "...",
  "—",
  "(x)",
  "[1]",
  "{}",
  "<",
  ">",
  "<|",
  "|>",
  "#",
  "$",
  "@user",
  "\\",
  "<tool_call>",
];

/**
 * A random string of `pieces` fragments (words, CJK, emoji, combining marks, \r\n runs, digits,
 * apostrophes, space runs), with `inserts` (added tokens) dropped in at random.
 */
export function randomText(rng: Rng, pieces: number, inserts: readonly string[] = []): string {
  let s = "";
  for (let k = 0; k < pieces; k++) {
    const r = rng.uniform();
    if (inserts.length > 0 && r < 0.08) s += inserts[rng.int(inserts.length)];
    else if (r < 0.12) s += String.fromCodePoint(0x20 + rng.int(0x2fff)); // any BMP-ish char
    else s += FRAGMENTS[rng.int(FRAGMENTS.length)];
  }
  return s;
}

/**
 * Naive BPE training on byte-level words: count every adjacent pair over the corpus, merge the
 * most frequent (ties: the smallest pair as a JSON string), repeat `count` times.
 */
export function trainMerges(words: readonly string[], count: number): [string, string][] {
  let seqs = words.map((w) => Array.from(w));
  const merges: [string, string][] = [];
  for (let m = 0; m < count; m++) {
    const counts = new Map<string, number>();
    for (const s of seqs) {
      for (let i = 0; i + 1 < s.length; i++) {
        const key = JSON.stringify([s[i], s[i + 1]]);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    let best = "";
    let bestCount = 0;
    for (const [key, c] of counts) {
      if (c > bestCount || (c === bestCount && key < best)) [best, bestCount] = [key, c];
    }
    if (bestCount < 2) break;
    const [a, b] = JSON.parse(best) as [string, string];
    merges.push([a, b]);
    seqs = seqs.map((s) => {
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) out.push(a + b), i++;
        else out.push(s[i]);
      }
      return out;
    });
  }
  return merges;
}

/** An added token as tokenizer.json writes it. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** Options of `syntheticTokenizer`. */
export interface SyntheticOptions {
  seed?: number;
  merges?: number;
  /** Write merges as `["a", "b"]` pairs (newer files) instead of `"a b"` strings. */
  pairMerges?: boolean;
  ignoreMerges?: boolean;
  /** Added token contents and flags (ids are assigned after the vocabulary). */
  added?: Omit<AddedTokenJson, "id">[];
  /** `pre_tokenizer` object (default: Qwen2's Sequence[Split, ByteLevel]). */
  preTokenizer?: unknown;
}

/** Qwen2's pre_tokenizer block. */
export function qwenPreTokenizer(): unknown {
  return {
    type: "Sequence",
    pretokenizers: [
      {
        type: "Split",
        pattern: { Regex: QWEN2_PATTERN },
        behavior: "Isolated",
        invert: false,
      },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  };
}

const tok = (content: string, special: boolean, flags: Partial<AddedTokenJson> = {}) => ({
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special,
  ...flags,
});

/** Qwen-like added tokens: three specials and two plain ones. */
export const QWEN_ADDED = [
  tok("<|endoftext|>", true),
  tok("<|im_start|>", true),
  tok("<|im_end|>", true),
  tok("<think>", false),
  tok("</think>", false),
];

/**
 * A tokenizer.json object in Qwen2's layout: the 256 byte characters (in a shuffled id order, so
 * that id mix-ups show), merges trained naively on random text pre-tokenized with Qwen2's regex,
 * then the added tokens.
 */
export function syntheticTokenizer(options: SyntheticOptions = {}): Record<string, unknown> {
  const rng = new Rng(options.seed ?? 1);
  const split = onigurumaRegExp(QWEN2_PATTERN);
  const words: string[] = [];
  for (let k = 0; k < 60; k++) {
    const text = randomText(rng, 40).normalize("NFC");
    for (const p of splitPieces(text, split, "Isolated", false)) words.push(refByteLevel(p));
  }
  const merges = trainMerges(words, options.merges ?? 300);
  const tokens = [...BYTE_MAP];
  for (let i = tokens.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [tokens[i], tokens[j]] = [tokens[j], tokens[i]];
  }
  for (const [a, b] of merges) tokens.push(a + b);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, id) => vocab[t] = id);
  const added = (options.added ?? QWEN_ADDED).map((t, k) => ({ id: tokens.length + k, ...t }));
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "NFC" },
    pre_tokenizer: options.preTokenizer ?? qwenPreTokenizer(),
    post_processor: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: false,
      use_regex: false,
    },
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: options.ignoreMerges ?? false,
      vocab,
      merges: merges.map(([a, b]) => options.pairMerges ? [a, b] : `${a} ${b}`),
    },
  };
}

const WORD = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;
const SPACE = /\p{White_Space}/u;

/**
 * Slow reference encoder for a synthetic tokenizer (Qwen2 layout: NFC, Split(regex, Isolated),
 * ByteLevel(no prefix, no regex), BPE): added tokens by a position-by-position longest-match scan
 * with the flag rules written out, then NFC, the regex split, the byte map and `referenceBpe`.
 */
export function referenceEncode(
  json: Record<string, unknown>,
  text: string,
  splitSpecial = true,
): number[] {
  const model = json.model as {
    vocab: Record<string, number>;
    merges: unknown[];
    ignore_merges: boolean;
  };
  const merges = model.merges.map((m) =>
    (typeof m === "string" ? m.split(" ") : m) as [string, string]
  );
  const ranks = mergeRanks(merges);
  const added = json.added_tokens as AddedTokenJson[];
  const split = onigurumaRegExp(QWEN2_PATTERN);
  const out: number[] = [];
  const encodePlain = (s: string) => {
    for (const p of splitPieces(s.normalize("NFC"), split, "Isolated", false)) {
      const word = refByteLevel(p);
      if (model.ignore_merges && word in model.vocab) out.push(model.vocab[word]);
      else for (const t of referenceBpe(word, ranks)) out.push(model.vocab[t]);
    }
  };
  // Leftmost-longest scan; then the flags of the token found.
  let offset = 0;
  let i = 0;
  while (i < text.length) {
    let found: AddedTokenJson | undefined;
    for (const t of added) {
      if (text.startsWith(t.content, i) && (!found || t.content.length > found.content.length)) {
        found = t;
      }
    }
    if (!found) {
      i++;
      continue;
    }
    let start = i;
    let stop = i + found.content.length;
    i = stop;
    if (found.special && !splitSpecial) continue;
    if (found.single_word) {
      const before = Array.from(text.slice(0, start)).pop() ?? "";
      const after = Array.from(text.slice(stop))[0] ?? "";
      if (WORD.test(before) || WORD.test(after)) continue;
    }
    if (found.lstrip) { while (start > offset && SPACE.test(text[start - 1])) start--; }
    if (found.rstrip) { while (stop < text.length && SPACE.test(text[stop])) stop++; }
    encodePlain(text.slice(offset, start));
    out.push(found.id);
    offset = stop;
  }
  encodePlain(text.slice(offset));
  return out;
}

/** The template under test (written for this test, in the style of Qwen3's). */
export const TEST_TEMPLATE = `
{%- set ns = namespace(last_user=-1) %}
{%- for m in messages[::-1] %}
  {%- if ns.last_user < 0 and m.role == 'user' %}
    {%- set ns.last_user = (messages|length - 1) - loop.index0 %}
  {%- endif %}
{%- endfor %}
{%- if tools is defined and tools %}
  {{- '<|im_start|>system\\n# Tools' }}
  {%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}
  {{- '<|im_end|>\\n' }}
{%- elif messages[0].role != 'system' %}
  {{- '<|im_start|>system\\nYou are a test.<|im_end|>\\n' }}
{%- endif %}
{%- for m in messages %}
  {%- if m.role not in ['system', 'user', 'assistant'] %}
    {{- raise_exception('role ' + m.role + ' is not supported') }}
  {%- endif %}
  {%- set content = m.content %}
  {%- if m.role == 'assistant' and '</think>' in content and loop.index0 < ns.last_user %}
    {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
  {%- endif %}
  {{- '<|im_start|>' + m.role + '\\n' + content.rstrip() + '<|im_end|>\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
  {{- '<|im_start|>assistant\\n' }}
  {%- if enable_thinking is defined and enable_thinking is false %}
    {{- '<think>\\n\\n</think>\\n\\n' }}
  {%- endif %}
{%- endif %}
{%- if bos_token is not none and bos_token == '<s>' %}{{- eos_token }}{%- endif %}`;

/** What {@link TEST_TEMPLATE} renders, transcribed by hand. */
export function renderReference(
  messages: ChatMessage[],
  opts: {
    addGenerationPrompt: boolean;
    enableThinking?: boolean;
    tools?: Record<string, unknown>[];
    bos?: string | null;
    eos?: string | null;
  },
): string {
  let lastUser = -1;
  for (let i = messages.length - 1; i >= 0 && lastUser < 0; i--) {
    if (messages[i].role === "user") lastUser = i;
  }
  let out = "";
  if (opts.tools && opts.tools.length > 0) {
    // Python's json.dumps separators, as transformers' tojson writes them.
    const dumps = (v: unknown): string =>
      v !== null && typeof v === "object"
        ? Array.isArray(v)
          ? `[${v.map(dumps).join(", ")}]`
          : `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${dumps(x)}`).join(", ")}}`
        : JSON.stringify(v);
    out += "<|im_start|>system\n# Tools" + opts.tools.map((t) => "\n" + dumps(t)).join("") +
      "<|im_end|>\n";
  } else if (messages[0].role !== "system") {
    out += "<|im_start|>system\nYou are a test.<|im_end|>\n";
  }
  messages.forEach((m, i) => {
    let content = m.content;
    if (m.role === "assistant" && content.includes("</think>") && i < lastUser) {
      content = content.split("</think>").at(-1)!.replace(/^\n+/, "");
    }
    out += `<|im_start|>${m.role}\n${content.replace(/[ \t\n\r]+$/, "")}<|im_end|>\n`;
  });
  if (opts.addGenerationPrompt) {
    out += "<|im_start|>assistant\n";
    if (opts.enableThinking === false) out += "<think>\n\n</think>\n\n";
  }
  if (opts.bos === "<s>") out += opts.eos;
  return out;
}
