/**
 * bench/text/check.ts (the comparison with Hugging Face tokenizers' encodings): it passes a case
 * whose expectations are right and reports each wrong one, naming the string.
 */
import assert from "node:assert/strict";
import { checkCase, type ExpectedCase } from "../bench/text/check.ts";
import { loadTokenizerJson } from "../src/text/mod.ts";
import { syntheticTokenizer } from "./text_util.ts";

Deno.test("checkCase: agreement passes; a wrong id, decoding or size is reported", () => {
  const json = JSON.stringify(syntheticTokenizer({ merges: 60 }));
  const tok = loadTokenizerJson(json);
  const texts = ["Hello world", "<|im_start|>hi<|im_end|>", "你好 😀"];
  const good: ExpectedCase = {
    name: "synthetic",
    tokenizer: "synthetic/tokenizer.json",
    vocab_size: tok.vocabSize,
    encodings: texts.map((text) => {
      const ids = Array.from(tok.encode(text));
      return {
        text,
        ids,
        ids_no_split: Array.from(tok.encode(text, { splitSpecial: false })),
        decoded: tok.decode(ids),
        decoded_skip: tok.decode(ids, { skipSpecial: true }),
      };
    }),
    id_decodes: Array.from({ length: tok.vocabSize }, (_, id) => tok.decode([id])),
  };
  const ok = checkCase(good, json);
  assert.deepEqual(ok.mismatches, []);
  assert.equal(ok.checks, 1 + texts.length * 4 + tok.vocabSize);

  const bad = structuredClone(good);
  bad.encodings[1].ids[1] += 1;
  bad.encodings[2].decoded_skip = "x";
  bad.id_decodes[5] = "?";
  bad.vocab_size += 1;
  const r = checkCase(bad, json);
  // The wrong id counts three times: its encoding, and both decodings of the expected ids.
  assert.equal(r.mismatches.length, 6);
  assert.match(r.mismatches.join("\n"), /encode "<\|im_start\|>hi<\|im_end\|>"/);
  assert.match(r.mismatches.join("\n"), /decode \[5\]/);
  assert.match(r.mismatches.join("\n"), /vocab size/);
  assert.match(checkCase(good, "{").mismatches[0], /load: .*not valid JSON/);
});
