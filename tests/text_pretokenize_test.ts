/**
 * The pre-tokenizer: Qwen2's and GPT-2's regexes on cases worked out by hand from the regex's
 * alternatives (Oniguruma semantics: \s has U+0085 and lacks U+FEFF), the five Split behaviors,
 * the byte-level map, and the Oniguruma translator's refusals.
 */
import assert from "node:assert/strict";
import { BYTE_TO_CHAR, byteLevel, CHAR_TO_BYTE, tokenStringBytes } from "../src/text/bytes.ts";
import { gpt2RegExp, preTokenize, splitPieces } from "../src/text/pretokenize.ts";
import {
  literalRegExp,
  onigurumaRegExp,
  RegexTranslationError,
  translateOnigurumaRegex,
} from "../src/text/regex.ts";
import { gpt2ByteMap, QWEN2_PATTERN, refByteLevel } from "./text_util.ts";

const qwen = onigurumaRegExp(QWEN2_PATTERN);
const isolate = (s: string, r: RegExp) => splitPieces(s, r, "Isolated", false);

Deno.test("Qwen2 regex: hand-worked splits", () => {
  const cases: [string, string[]][] = [
    ["Hello world", ["Hello", " world"]],
    ["it's", ["it", "'s"]],
    ["IT'S don't 'LL", ["IT", "'S", " don", "'t", " '", "LL"]], // ` ?[^\s...]+` before '\'ll'
    ["x 'll", ["x", " '", "ll"]],
    ["x'll", ["x", "'ll"]],
    ["123", ["1", "2", "3"]], // \p{N} takes one digit at a time
    ["a  b", ["a", " ", " b"]], // \s+(?!\S) leaves the last space to the word
    ["x\r\n\r\ny", ["x", "\r\n\r\n", "y"]], // \s*[\r\n]+
    ["hi!!\n\nyo", ["hi", "!!\n\n", "yo"]], // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    ["  \n  x", ["  \n", " ", " x"]],
    ["$100", ["$", "1", "0", "0"]],
    ["你好世界。", ["你好世界", "。"]],
    ["end  ", ["end", "  "]],
    ["(x)", ["(x", ")"]], // [^\r\n\p{L}\p{N}]?\p{L}+ takes one leading non-letter
    ["a\u0085\u0085b", ["a", "\u0085", "\u0085b"]], // U+0085 is Oniguruma whitespace
    ["a\ufeff\ufeffb", ["a", "\ufeff\ufeff", "b"]], // U+FEFF is not
    ["e\u0301t", ["e", "\u0301t"]], // a combining mark is \p{M}, not \p{L}
  ];
  for (const [text, want] of cases) {
    assert.deepEqual(isolate(text, qwen), want, JSON.stringify(text));
  }
});

Deno.test("Qwen2 regex: (?i:...) contractions, pieces cover the text", () => {
  assert.deepEqual(isolate("WE'RE", qwen), ["WE", "'RE"]);
  assert.deepEqual(isolate("x'Ve", qwen), ["x", "'Ve"]);
  const s = "Don't stop—123 \r\n\t 你好 😀!!\n";
  assert.equal(isolate(s, qwen).join(""), s);
});

Deno.test("GPT-2 regex (ByteLevel use_regex): hand-worked splits", () => {
  const r = gpt2RegExp();
  assert.deepEqual(isolate("Hello my friend, how's it?", r), [
    "Hello",
    " my",
    " friend",
    ",",
    " how",
    "'s",
    " it",
    "?",
  ]);
  assert.deepEqual(isolate("123 456  x", r), ["123", " 456", " ", " x"]);
  assert.deepEqual(isolate("IT'S", r), ["IT", "'", "S"]); // GPT-2's contractions are lower case
});

Deno.test("Split behaviors and invert on a,b,,c", () => {
  const r = /,/gu;
  const s = "a,b,,c";
  assert.deepEqual(splitPieces(s, r, "Isolated", false), ["a", ",", "b", ",", ",", "c"]);
  assert.deepEqual(splitPieces(s, r, "Removed", false), ["a", "b", "c"]);
  assert.deepEqual(splitPieces(s, r, "MergedWithPrevious", false), ["a,", "b,", ",", "c"]);
  assert.deepEqual(splitPieces(s, r, "MergedWithNext", false), ["a", ",b", ",", ",c"]);
  assert.deepEqual(splitPieces(s, r, "Contiguous", false), ["a", ",", "b", ",,", "c"]);
  assert.deepEqual(splitPieces(s, r, "Removed", true), [",", ",", ","]);
  assert.deepEqual(splitPieces("a.b", literalRegExp("."), "Isolated", false), ["a", ".", "b"]);
  assert.deepEqual(splitPieces("", r, "Isolated", false), []);
});

Deno.test("byte-level map equals GPT-2's bytes_to_unicode; byteLevel equals the UTF-8 map", () => {
  const ref = gpt2ByteMap();
  for (let b = 0; b < 256; b++) {
    assert.equal(String.fromCharCode(BYTE_TO_CHAR[b]), ref[b]);
    assert.equal(CHAR_TO_BYTE[BYTE_TO_CHAR[b]], b);
  }
  for (const s of ["", " héllo", "你好", "😀\r\n", "a\u0000\u007f\u00ad", "x".repeat(9000) + "é"]) {
    assert.equal(byteLevel(s), refByteLevel(s));
    assert.deepEqual(tokenStringBytes(byteLevel(s)), new TextEncoder().encode(s));
  }
  assert.equal(byteLevel("\ud800x"), refByteLevel("\ufffdx")); // a lone surrogate: U+FFFD
  assert.deepEqual(tokenStringBytes("<think> é"), new TextEncoder().encode("<think> é"));
});

Deno.test("preTokenize: Split then ByteLevel; ByteLevel prefix space and regex", () => {
  const steps = [
    { kind: "split" as const, regex: qwen, behavior: "Isolated" as const, invert: false },
    { kind: "byteLevel" as const, addPrefixSpace: false, regex: null },
  ];
  assert.deepEqual(preTokenize("Hi you\n", steps), ["Hi", "Ġyou", "Ċ"]);
  const gpt2 = [{ kind: "byteLevel" as const, addPrefixSpace: true, regex: gpt2RegExp() }];
  assert.deepEqual(preTokenize("Hi you", gpt2), ["ĠHi", "Ġyou"]);
  assert.deepEqual(preTokenize(" Hi", gpt2), ["ĠHi"]);
});

Deno.test("Oniguruma translation: rewrites and refusals", () => {
  const ok = (p: string, s: string, want: string[]) =>
    assert.deepEqual([...s.matchAll(onigurumaRegExp(p))].map((m) => m[0]), want, p);
  ok("\\d+", "a١٢3b", ["١٢3"]); // \d is Unicode Nd
  ok("\\w+", "é_x1 y", ["é_x1", "y"]);
  ok("a{,2}", "aaa", ["aa", "a", ""]);
  ok("\\p{^L}+", "ab12cd", ["12"]);
  ok("\\p{Han}+", "x你好y", ["你好"]);
  ok("^x|y$", "x\nyx\nxy\ny", ["x", "x", "y", "y"]); // Ruby ^ and $ are line anchors
  ok("a.c", "a\nc abc", ["abc"]);
  ok("[\\s\\-]+", "a- \u0085b", ["- \u0085"]);
  ok("x{", "x{", ["x{"]);
  ok("(?#comment)z", "z", ["z"]);
  for (const bad of ["a++", "(?>a)", "(?i)a", "\\bx", "[a&&b]", "[[:alpha:]]", "(a)\\1", "a{2}?"]) {
    assert.throws(() => translateOnigurumaRegex(bad), RegexTranslationError, bad);
  }
  assert.throws(() => onigurumaRegExp("\\p{NoSuchProperty}"), /unknown Unicode property/);
});
