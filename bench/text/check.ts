/**
 * Compares jackpot's tokenizer.json BPE (src/text/) with Hugging Face `tokenizers` on the files
 * and reference encodings that bench/torch/tokenizer_check.py writes (on a host with Python and
 * `tokenizers`): for every case, every string's ids (specials split, and not split when the
 * reference has them), its decodings with and without special tokens, and the decoding of every
 * single id (partial UTF-8 included).
 *
 * ```sh
 * python3 bench/torch/tokenizer_check.py --dir /tmp/tokcheck
 * deno run -A bench/text/check.ts --dir /tmp/tokcheck
 * ```
 *
 * Prints each mismatch (the first `--show` per case in full) and one line per case; exit 0 when
 * everything matches, 1 otherwise.
 *
 * @module
 */
import { benchArgs, benchInt, benchUsageError } from "../args.ts";
import { loadTokenizerJson } from "../../src/text/mod.ts";

const SCRIPT = "bench/text/check.ts";

/** One string of a case in expected.json. */
export interface ExpectedEncoding {
  text: string;
  ids: number[];
  decoded: string;
  decoded_skip: string;
  /** Ids with special tokens encoded as text (`encode_special_tokens`), when the reference has it. */
  ids_no_split?: number[];
}

/** One tokenizer of expected.json. */
export interface ExpectedCase {
  name: string;
  /** tokenizer.json, relative to the folder of expected.json. */
  tokenizer: string;
  vocab_size: number;
  encodings: ExpectedEncoding[];
  /** `decode([id])` for every id below vocab_size. */
  id_decodes: string[];
}

/** What one case's comparison found. */
export interface CaseResult {
  name: string;
  checks: number;
  mismatches: string[];
}

const show = (ids: ArrayLike<number>) => `[${Array.from(ids).join(", ")}]`;
const same = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  a.length === b.length && Array.from(a).every((x, i) => x === b[i]);

/** Compares one case; `tokenizerJson` is the text of its tokenizer.json. */
export function checkCase(c: ExpectedCase, tokenizerJson: string): CaseResult {
  const mismatches: string[] = [];
  let checks = 0;
  let tok;
  try {
    tok = loadTokenizerJson(tokenizerJson, { source: c.tokenizer });
  } catch (e) {
    return { name: c.name, checks: 1, mismatches: [`load: ${(e as Error).message}`] };
  }
  const check = (ok: boolean, what: () => string) => {
    checks++;
    if (!ok) mismatches.push(what());
  };
  check(
    tok.vocabSize === c.vocab_size,
    () => `vocab size ${tok.vocabSize}, expected ${c.vocab_size}`,
  );
  for (const e of c.encodings) {
    const text = JSON.stringify(e.text);
    let ids: Int32Array;
    try {
      ids = tok.encode(e.text);
    } catch (err) {
      check(false, () => `encode ${text} threw: ${(err as Error).message}`);
      continue;
    }
    check(same(ids, e.ids), () => `encode ${text}: ${show(ids)}, expected ${show(e.ids)}`);
    if (e.ids_no_split) {
      const plain = tok.encode(e.text, { splitSpecial: false });
      check(
        same(plain, e.ids_no_split),
        () =>
          `encode (specials as text) ${text}: ${show(plain)}, expected ${show(e.ids_no_split!)}`,
      );
    }
    const d = tok.decode(e.ids);
    check(
      d === e.decoded,
      () => `decode ${show(e.ids)}: ${JSON.stringify(d)}, expected ${JSON.stringify(e.decoded)}`,
    );
    const ds = tok.decode(e.ids, { skipSpecial: true });
    check(
      ds === e.decoded_skip,
      () =>
        `decode skipSpecial ${show(e.ids)}: ${JSON.stringify(ds)}, expected ${
          JSON.stringify(e.decoded_skip)
        }`,
    );
  }
  c.id_decodes.forEach((want, id) => {
    let got: string;
    try {
      got = tok.decode([id]);
    } catch (err) {
      got = `<threw ${(err as Error).message}>`;
    }
    check(
      got === want,
      () => `decode [${id}]: ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`,
    );
  });
  return { name: c.name, checks, mismatches };
}

if (import.meta.main) {
  const values = benchArgs(SCRIPT, "compare src/text with Hugging Face tokenizers' encodings", {
    dir: { type: "string", help: "folder written by bench/torch/tokenizer_check.py" },
    show: { type: "string", default: "10", help: "mismatches printed per case" },
    json: { type: "string", help: "also write the results to this JSON file" },
  });
  if (!values.dir) benchUsageError(SCRIPT, "--dir is required");
  const limit = benchInt(SCRIPT, values, "show", 10, { min: 0 });
  const dir = values.dir!;
  const expected = JSON.parse(await Deno.readTextFile(`${dir}/expected.json`)) as {
    tokenizers_version: string;
    cases: ExpectedCase[];
  };
  const results: CaseResult[] = [];
  for (const c of expected.cases) {
    const r = checkCase(c, await Deno.readTextFile(`${dir}/${c.tokenizer}`));
    results.push(r);
    for (const m of r.mismatches.slice(0, limit)) console.log(`  ${c.name}: ${m}`);
    if (r.mismatches.length > limit) {
      console.log(`  ${c.name}: ... ${r.mismatches.length - limit} more`);
    }
    console.log(
      `${r.mismatches.length === 0 ? "ok  " : "FAIL"} ${c.name}: ${
        r.checks - r.mismatches.length
      }/${r.checks} ` +
        `checks match tokenizers ${expected.tokenizers_version}`,
    );
  }
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(results, null, 2) + "\n");
  Deno.exit(results.every((r) => r.mismatches.length === 0) ? 0 : 1);
}
