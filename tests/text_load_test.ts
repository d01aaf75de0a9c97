/**
 * Loading: every unsupported or malformed part of a tokenizer.json is refused with a message
 * naming the file and the part; added-token ids follow tokenizers' rule; a checkpoint folder's
 * configs choose eos, pad, bos and the stop ids.
 */
import assert from "node:assert/strict";
import { loadTokenizerJson, readTokenizer, specialsFromConfigs } from "../src/text/mod.ts";
import { syntheticTokenizer } from "./text_util.ts";

type Json = Record<string, unknown>;
const base = syntheticTokenizer({ merges: 40 });
/** A deep copy of the synthetic file with `edit` applied. */
function edited(edit: (j: Json) => void): Json {
  const j = structuredClone(base);
  edit(j);
  return j;
}
const model = (j: Json) => j.model as Json;

Deno.test("bad files are refused with the file and the problem named", () => {
  const cases: [string, Json | string, RegExp][] = [
    ["truncated JSON", JSON.stringify(base).slice(0, 500), /my\.json: not valid JSON/],
    ["not an object", "[1, 2]", /not a JSON object/],
    ["missing model", edited((j) => delete j.model), /has no model/],
    [
      "model type",
      edited((j) => model(j).type = "WordPiece"),
      /model type "WordPiece" is not supported/,
    ],
    ["no merges", edited((j) => delete model(j).merges), /no merges list/],
    [
      "merge with an unknown token",
      edited((j) => (model(j).merges as unknown[]).splice(3, 0, "Ġzq xyzzy")),
      /merge 3 \["Ġzq","xyzzy"\] references "Ġzq", which is not in the vocabulary/,
    ],
    [
      "merge whose result is missing",
      edited((j) => {
        const first = (model(j).merges as string[])[0];
        delete (model(j).vocab as Json)[first.replace(" ", "")];
      }),
      /merge 0 .* which is not in the vocabulary/,
    ],
    [
      "bad merge entry",
      edited((j) => (model(j).merges as unknown[]).push("a b c")),
      /not two tokens/,
    ],
    ["duplicate id", edited((j) => (model(j).vocab as Json)["zzz"] = 0), /gives id 0 to both/],
    ["dropout", edited((j) => model(j).dropout = 0.1), /dropout 0\.1/],
    ["byte fallback", edited((j) => model(j).byte_fallback = true), /byte_fallback/],
    [
      "subword prefix",
      edited((j) => model(j).continuing_subword_prefix = "##"),
      /continuing_subword_prefix "##"/,
    ],
    [
      "normalizer",
      edited((j) => j.normalizer = { type: "Lowercase" }),
      /normalizer type "Lowercase" is not supported/,
    ],
    [
      "normalizer in a sequence",
      edited((j) =>
        j.normalizer = { type: "Sequence", normalizers: [{ type: "NFC" }, { type: "Strip" }] }
      ),
      /normalizer type "Strip"/,
    ],
    [
      "pre-tokenizer",
      edited((j) => j.pre_tokenizer = { type: "Whitespace" }),
      /pre_tokenizer type "Whitespace" is not supported/,
    ],
    ["no pre-tokenizer", edited((j) => j.pre_tokenizer = null), /only byte-level BPE/],
    [
      "no ByteLevel step",
      edited((j) =>
        (j.pre_tokenizer as Json).pretokenizers = [
          ((j.pre_tokenizer as Json).pretokenizers as unknown[])[0],
        ]
      ),
      /no ByteLevel step/,
    ],
    [
      "untranslatable regex",
      edited((
        j,
      ) => (((j.pre_tokenizer as Json).pretokenizers as Json[])[0].pattern = {
        Regex: "\\p{L}++",
      })),
      /Split: cannot translate regex .*possessive/,
    ],
    [
      "split behavior",
      edited((j) => (((j.pre_tokenizer as Json).pretokenizers as Json[])[0].behavior = "Sideways")),
      /unknown behavior "Sideways"/,
    ],
    [
      "decoder",
      edited((j) => j.decoder = { type: "WordPiece" }),
      /decoder type "WordPiece" is not supported/,
    ],
    ["no decoder", edited((j) => j.decoder = null), /decoder type null/],
    [
      "post-processor",
      edited((j) => j.post_processor = { type: "TemplateProcessing" }),
      /post_processor type "TemplateProcessing"/,
    ],
    ["truncation", edited((j) => j.truncation = { max_length: 8 }), /truncation is set/],
    ["version", edited((j) => j.version = "2.0"), /unknown tokenizer.json version "2.0"/],
    [
      "added token id",
      edited((j) => (j.added_tokens as Json[])[1].id = 99999),
      /added token "<\|im_start\|>" has id 99999 in the file, but tokenizers would give it id/,
    ],
    [
      "unk token",
      edited((j) => model(j).unk_token = "<unk>"),
      /unk_token "<unk>" is not in the vocabulary/,
    ],
  ];
  for (const [name, json, message] of cases) {
    assert.throws(() => loadTokenizerJson(json, { source: "my.json" }), (e: Error) => {
      assert.match(e.message, /^my\.json: /, name);
      assert.match(e.message, message, name);
      return true;
    });
  }
  // The untouched file loads (so the errors above come from the edits).
  assert.equal(loadTokenizerJson(base).vocabSize, 256 + 40 + 5);
});

Deno.test("an added token already in the vocabulary keeps the vocabulary's id", () => {
  const j = edited((j) => {
    const vocab = model(j).vocab as Record<string, number>;
    const added = j.added_tokens as Json[];
    // Now in the model, at the id it had as an added token; the other added tokens then start
    // after the larger vocabulary, which is where they already are.
    vocab["<|endoftext|>"] = added[0].id as number;
  });
  const tok = loadTokenizerJson(j);
  assert.equal(tok.tokenId("<|endoftext|>"), 296);
  assert.equal(tok.tokenId("<|im_start|>"), 297);
  assert.equal(tok.eosId, 296); // the default eos: <|endoftext|>
});

Deno.test("specials: defaults, explicit choice, and errors", () => {
  const tok = loadTokenizerJson(base);
  const eot = tok.tokenId("<|endoftext|>")!;
  assert.deepEqual([tok.bosId, tok.eosId, tok.padId, tok.stopIds], [null, eot, eot, [eot]]);
  const imEnd = tok.tokenId("<|im_end|>")!;
  const chosen = loadTokenizerJson(base, { specials: { eos: "<|im_end|>", stop: [eot, imEnd] } });
  assert.deepEqual([chosen.eosId, chosen.padId, chosen.stopIds], [imEnd, imEnd, [imEnd, eot]]);
  assert.throws(
    () => loadTokenizerJson(base, { specials: { eos: "<eos>" } }),
    /eos token "<eos>" is not in/,
  );
  assert.throws(
    () => loadTokenizerJson(base, { specials: { pad: 10 ** 6 } }),
    /pad id 1000000 is outside/,
  );
});

Deno.test("specialsFromConfigs follows tokenizer_config, then generation_config, then config", () => {
  assert.deepEqual(
    specialsFromConfigs({
      tokenizerConfig: { eos_token: "<|im_end|>", pad_token: "<|endoftext|>", bos_token: null },
      generationConfig: { eos_token_id: [151645, 151643], bos_token_id: 151643 },
      config: { eos_token_id: 151645, bos_token_id: 151643 },
    }),
    { eos: "<|im_end|>", pad: "<|endoftext|>", bos: null, stop: [151645, 151643, 151645] },
  );
  assert.deepEqual(
    specialsFromConfigs({ config: { eos_token_id: 7, pad_token_id: 3, bos_token_id: 1 } }),
    { eos: 7, pad: 3, bos: null, stop: [7] },
  );
  assert.deepEqual(
    specialsFromConfigs({
      tokenizerConfig: { add_bos_token: true, bos_token: { content: "<s>" }, eos_token: "</s>" },
    }),
    { eos: "</s>", bos: "<s>", stop: [] },
  );
});

Deno.test("readTokenizer: a Qwen-instruct-like folder; missing files and bad configs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "text_load_" });
  try {
    const tok0 = loadTokenizerJson(base);
    const eot = tok0.tokenId("<|endoftext|>")!;
    const imEnd = tok0.tokenId("<|im_end|>")!;
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(base));
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ eos_token: "<|im_end|>", pad_token: "<|endoftext|>", bos_token: null }),
    );
    await Deno.writeTextFile(
      `${dir}/generation_config.json`,
      JSON.stringify({ eos_token_id: [imEnd, eot], bos_token_id: eot }),
    );
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ vocab_size: 512, eos_token_id: imEnd }),
    );
    const tok = await readTokenizer(dir);
    assert.deepEqual([tok.bosId, tok.eosId, tok.padId, tok.stopIds], [null, imEnd, eot, [
      imEnd,
      eot,
    ]]);
    assert.deepEqual(
      Array.from(tok.encode("hi<|im_end|>")),
      Array.from(tok0.encode("hi<|im_end|>")),
    );

    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ vocab_size: 100 }));
    await assert.rejects(
      () => readTokenizer(dir),
      /301 token ids, more than the model's vocab_size 100/,
    );
    await Deno.writeTextFile(`${dir}/config.json`, "{ not json");
    await assert.rejects(() => readTokenizer(dir), /config\.json: not valid JSON/);
    await Deno.remove(`${dir}/config.json`);
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ eos_token: "<eos>" }),
    );
    await assert.rejects(
      () => readTokenizer(dir),
      /tokenizer\.json: eos token "<eos>" is not in the vocabulary/,
    );
    await Deno.remove(`${dir}/tokenizer.json`);
    await assert.rejects(() => readTokenizer(dir), /tokenizer\.json: cannot read the file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
