/**
 * The whole tokenizer on synthetic Qwen2-layout tokenizer.json files (merges trained by a naive
 * trainer on random text): encode against the slow reference encoder on random strings with
 * added tokens in the middle, round trips, unseen characters falling back to bytes, added-token
 * flags, normalized added tokens, lenient and streaming decode.
 */
import assert from "node:assert/strict";
import { byteChar } from "../src/text/bytes.ts";
import { loadTokenizerJson } from "../src/text/mod.ts";
import type { Tokenizer } from "../src/tasks/tokenizer.ts";
import { Rng } from "../src/util/rng.ts";
import {
  QWEN_ADDED,
  qwenPreTokenizer,
  randomText,
  referenceEncode,
  syntheticTokenizer,
} from "./text_util.ts";

const INSERTS = QWEN_ADDED.map((t) => t.content);

Deno.test("encode equals the reference encoder on random strings (string and pair merges)", () => {
  for (const [seed, pairMerges, ignoreMerges] of [[1, false, false], [2, true, true]] as const) {
    const json = syntheticTokenizer({ seed, pairMerges, ignoreMerges });
    const tok = loadTokenizerJson(json);
    const rng = new Rng(100 + seed);
    for (let k = 0; k < 200; k++) {
      const s = randomText(rng, 1 + rng.int(40), INSERTS);
      assert.deepEqual(Array.from(tok.encode(s)), referenceEncode(json, s), JSON.stringify(s));
      const plain = Array.from(tok.encode(s, { splitSpecial: false }));
      assert.deepEqual(plain, referenceEncode(json, s, false), JSON.stringify(s));
    }
  }
});

Deno.test("round trip: decode(encode(s)) === NFC(s); specials dropped with skipSpecial", () => {
  const tok = loadTokenizerJson(syntheticTokenizer());
  const rng = new Rng(3);
  for (let k = 0; k < 200; k++) {
    const s = randomText(rng, 1 + rng.int(40), INSERTS);
    const ids = tok.encode(s);
    assert.equal(tok.decode(ids), s.normalize("NFC"), JSON.stringify(s));
    // Each piece between special tokens is normalized on its own.
    const bare = s.split(/<\|endoftext\|>|<\|im_start\|>|<\|im_end\|>/).map((p) =>
      p.normalize("NFC")
    );
    assert.equal(tok.decode(ids, { skipSpecial: true }), bare.join(""));
  }
  assert.deepEqual(Array.from(tok.encode("")), []);
});

Deno.test("characters never seen in training fall back to their bytes", () => {
  const bare = loadTokenizerJson(syntheticTokenizer({ merges: 0 }));
  const tok = loadTokenizerJson(syntheticTokenizer());
  for (const s of ["\u{1F9EC}", "\u0fff", "ꙮꙮ", "\u{E0001}", "\u0000\u0001\u007f"]) {
    const bytes = new TextEncoder().encode(s);
    // Without merges: one token per byte, each the byte-level character of that byte.
    const ids = bare.encode(s);
    assert.deepEqual(Array.from(ids), Array.from(bytes, (b) => bare.tokenId(byteChar(b))));
    assert.equal(bare.decode(ids), s);
    // With merges: whatever merged, the tokens' bytes are the text's bytes.
    const merged = Array.from(tok.encode(s));
    assert.deepEqual(
      merged.flatMap((id) => Array.from(tok.tokenBytes(id))),
      Array.from(bytes),
      JSON.stringify(s),
    );
    assert.equal(tok.decode(merged), s);
  }
});

Deno.test("added tokens: lstrip, rstrip, single_word, and their reference", () => {
  const flags = { single_word: false, lstrip: false, rstrip: false, normalized: false };
  const added = [
    ...QWEN_ADDED,
    { ...flags, content: "<L>", lstrip: true, special: true },
    { ...flags, content: "<R>", rstrip: true, special: false },
    { ...flags, content: "<LR>", lstrip: true, rstrip: true, special: true },
    { ...flags, content: "word", single_word: true, special: false },
    { ...flags, content: "<|im", special: false }, // a prefix of <|im_start|>: longest wins
  ];
  const json = syntheticTokenizer({ added });
  const tok = loadTokenizerJson(json);
  const id = (t: string) => tok.tokenId(t)!;
  const enc = (s: string) => Array.from(tok.encode(s));
  const plain = (s: string) => Array.from(tok.encode(s, { splitSpecial: false }));
  assert.deepEqual(enc("a  <L>b"), [...plain("a"), id("<L>"), ...plain("b")]);
  assert.deepEqual(enc("a<R> \n b"), [...plain("a"), id("<R>"), ...plain("b")]);
  assert.deepEqual(enc(" <LR> "), [id("<LR>")]);
  assert.deepEqual(enc("a word b"), [...plain("a "), id("word"), ...plain(" b")]);
  assert.deepEqual(enc("swordfish"), plain("swordfish"));
  assert.deepEqual(enc("word_"), plain("word_")); // _ is a word character
  assert.deepEqual(enc("<|im_start|><|im"), [id("<|im_start|>"), id("<|im")]);
  const rng = new Rng(9);
  const inserts = added.map((t) => t.content);
  for (let k = 0; k < 200; k++) {
    const s = randomText(rng, 1 + rng.int(30), inserts);
    assert.deepEqual(Array.from(tok.encode(s)), referenceEncode(json, s), JSON.stringify(s));
  }
});

Deno.test("a normalized added token is matched after NFC, in its normalized form", () => {
  const flags = { single_word: false, lstrip: false, rstrip: false, special: false };
  const json = syntheticTokenizer({
    added: [...QWEN_ADDED, { ...flags, content: "cafe\u0301", normalized: true }],
  });
  const tok = loadTokenizerJson(json);
  const id = tok.tokenId("cafe\u0301")!;
  assert.deepEqual(Array.from(tok.encode("le café!")).includes(id), true);
  assert.deepEqual(Array.from(tok.encode("le cafe\u0301!")).includes(id), true);
  assert.equal(tok.tokenString(id), "café"); // decoded in its normalized form, as tokenizers does
});

Deno.test("decode: partial UTF-8 becomes U+FFFD and never throws; streaming equals decode", () => {
  const tok = loadTokenizerJson(syntheticTokenizer());
  const ids = tok.encode("你好 😀 e\u0301 <|im_end|>ok");
  const byteIds = Array.from(new TextEncoder().encode("😀"), (b) => tok.tokenId(byteChar(b))!);
  assert.equal(tok.decode(byteIds.slice(0, 2)), "\ufffd");
  assert.equal(tok.decode([byteIds[1]]), "\ufffd");
  assert.equal(tok.decode([byteIds[1], ...byteIds]), "\ufffd😀");
  for (let id = 0; id < tok.vocabSize; id++) assert.equal(typeof tok.decode([id]), "string");
  for (const skipSpecial of [false, true]) {
    const stream = tok.streamDecoder({ skipSpecial });
    let text = "";
    for (const id of ids) text += stream.push(id);
    text += stream.flush();
    assert.equal(text, tok.decode(ids, { skipSpecial }));
  }
  const stream = tok.streamDecoder();
  assert.equal(stream.push(byteIds[0]), "");
  assert.equal(stream.flush(), "\ufffd");
  assert.throws(() => tok.decode([tok.vocabSize]), RangeError);
  assert.throws(() => tok.decode([-1]), RangeError);
  assert.throws(() => tok.tokenString(1.5), RangeError);
});

Deno.test("ByteLevel with use_regex and add_prefix_space (GPT-2 layout) matches its pieces", () => {
  const json = syntheticTokenizer({
    preTokenizer: {
      type: "ByteLevel",
      add_prefix_space: true,
      trim_offsets: true,
      use_regex: true,
    },
  });
  const tok = loadTokenizerJson(json);
  const qwen = loadTokenizerJson(syntheticTokenizer({ preTokenizer: qwenPreTokenizer() }));
  // The prefix space shows in the decoded text; words split as GPT-2 splits them.
  assert.equal(tok.decode(tok.encode("Hello world")), " Hello world");
  assert.equal(qwen.decode(qwen.encode("Hello world")), "Hello world");
  // " Hello world 123" splits into " Hello", " world", " 123"; "world" gets its prefix space.
  const enc = (s: string) => Array.from(tok.encode(s));
  assert.deepEqual(enc("Hello world 123"), [...enc(" Hello"), ...enc("world"), ...enc("123")]);
  assert.notDeepEqual(enc("Hello world"), [...enc("Hello"), ...enc("world")].slice(0, 1));
});

Deno.test("the cached regex-then-bytes path equals the general pre-tokenizer path", () => {
  const json = syntheticTokenizer();
  const fast = loadTokenizerJson(json);
  // A third step that never matches (a raw NUL cannot survive the byte map) forces the general
  // path without changing the pieces; no cache, so every word goes through the merge heap.
  const pre = qwenPreTokenizer() as { pretokenizers: unknown[] };
  pre.pretokenizers.push({
    type: "Split",
    pattern: { String: "\u0000" },
    behavior: "Isolated",
    invert: false,
  });
  const general = loadTokenizerJson({ ...json, pre_tokenizer: pre }, { cacheCapacity: 0 });
  const rng = new Rng(11);
  for (let k = 0; k < 200; k++) {
    const s = randomText(rng, 1 + rng.int(40), INSERTS);
    assert.deepEqual(Array.from(general.encode(s)), Array.from(fast.encode(s)), JSON.stringify(s));
  }
});

Deno.test("BpeTokenizer fits the tasks' Tokenizer interface except for the nullable ids", () => {
  const tok = loadTokenizerJson(syntheticTokenizer());
  // A compile-time check: everything but bosId/eosId/padId (number | null here) is assignable.
  const asTask: Omit<Tokenizer, "bosId" | "eosId" | "padId"> = tok;
  assert.equal(asTask.decode(asTask.encode("ok")), "ok");
  assert.equal(asTask.tokenString(tok.tokenId("<|im_end|>")!), "<|im_end|>");
});
