/**
 * Encode and decode throughput of the tokenizer.json BPE (src/text/) on a synthetic Qwen2-layout
 * tokenizer with ~50K merges and a few MB of mixed text (words, code, CJK, digits, emoji).
 *
 * Reports MB/s of UTF-8 input for: the pre-tokenizer alone (NFC + regex split + byte map), encode
 * with a cold cache, encode again with the words cached, encode with the cache off (every word
 * through the merge heap), decode; and the naive reference loop on a slice, for scale.
 *
 * ```sh
 * deno run -A bench/text/encode.ts --mb 4 --merges 50000
 * ```
 *
 * @module
 */
import { benchArgs, benchInt, benchNumber } from "../args.ts";
import { mergeRanks, referenceBpe } from "../../src/text/bpe_reference.ts";
import { loadTokenizerJson } from "../../src/text/mod.ts";
import { preTokenize } from "../../src/text/pretokenize.ts";
import { onigurumaRegExp } from "../../src/text/regex.ts";
import { mixedText, prefixChainTokenizer, QWEN2_PATTERN } from "./synthetic.ts";

const SCRIPT = "bench/text/encode.ts";
const values = benchArgs(SCRIPT, "encode/decode throughput of the tokenizer.json BPE", {
  mb: { type: "string", default: "4", help: "MB of mixed text to encode" },
  merges: { type: "string", default: "50000", help: "merges of the synthetic tokenizer" },
  reps: { type: "string", default: "3", help: "timed repetitions (best is reported)" },
  json: { type: "string", help: "also write the figures to this JSON file" },
});
const mb = benchNumber(SCRIPT, values, "mb", 4, { min: 0.01 });
const mergeCount = benchInt(SCRIPT, values, "merges", 50_000, { min: 0 });
const reps = benchInt(SCRIPT, values, "reps", 3, { min: 1 });

const text = mixedText(mb * 1e6);
const bytes = new TextEncoder().encode(text).length;
const json = prefixChainTokenizer(text, mergeCount);
const merges = (json.model as { merges: string[] }).merges;
const t0 = performance.now();
const tok = loadTokenizerJson(json);
const loadMs = performance.now() - t0;

/** Best wall time of `reps` runs of `f`, in ms; `fresh` runs before each (untimed). */
function best(f: () => void, fresh: () => void = () => {}): number {
  let ms = Infinity;
  for (let r = 0; r < reps; r++) {
    fresh();
    const s = performance.now();
    f();
    ms = Math.min(ms, performance.now() - s);
  }
  return ms;
}
const rate = (ms: number, n = bytes) => n / 1e6 / (ms / 1e3);

const split = onigurumaRegExp(QWEN2_PATTERN);
const steps = [
  { kind: "split" as const, regex: split, behavior: "Isolated" as const, invert: false },
  { kind: "byteLevel" as const, addPrefixSpace: false, regex: null },
];
const preMs = best(() => void preTokenize(text.normalize("NFC"), steps));
let ids: Int32Array = new Int32Array(0);
const coldMs = best(() => ids = tok.encode(text), () => tok.clearCache());
const warmMs = best(() => ids = tok.encode(text));
const noCache = loadTokenizerJson(json, { cacheCapacity: 0 });
const uncachedMs = best(() => void noCache.encode(text));
let decoded = "";
const decodeMs = best(() => decoded = tok.decode(ids));
if (decoded !== text.normalize("NFC")) throw new Error("round trip failed");

// The naive loop on a slice of the same pieces (it is O(n²) per word and scans for the minimum).
const slice = text.slice(0, Math.min(text.length, 200_000));
const ranks = mergeRanks(merges.map((m) => m.split(" ") as [string, string]));
const pieces = preTokenize(slice.normalize("NFC"), steps);
const refStart = performance.now();
for (const p of pieces) referenceBpe(p, ranks);
const refMs = performance.now() - refStart;
const sliceBytes = new TextEncoder().encode(slice).length;

const figures = {
  device: `${Deno.build.os}-${Deno.build.arch}, deno ${Deno.version.deno}`,
  textBytes: bytes,
  merges: merges.length,
  vocabSize: tok.vocabSize,
  tokens: ids.length,
  bytesPerToken: bytes / ids.length,
  loadMs,
  preTokenizeMBps: rate(preMs),
  encodeColdMBps: rate(coldMs),
  encodeWarmMBps: rate(warmMs),
  encodeNoCacheMBps: rate(uncachedMs),
  decodeMBps: rate(decodeMs),
  referenceNoCacheMBps: rate(refMs, sliceBytes),
};
console.log(
  `${SCRIPT}: ${(bytes / 1e6).toFixed(2)} MB mixed text, ${merges.length} merges, ` +
    `${ids.length} tokens (${figures.bytesPerToken.toFixed(2)} bytes/token), load ${
      loadMs.toFixed(0)
    } ms`,
);
console.log(`  pre-tokenize only  ${figures.preTokenizeMBps.toFixed(2)} MB/s`);
console.log(`  encode, cold cache ${figures.encodeColdMBps.toFixed(2)} MB/s`);
console.log(`  encode, warm cache ${figures.encodeWarmMBps.toFixed(2)} MB/s`);
console.log(`  encode, no cache   ${figures.encodeNoCacheMBps.toFixed(2)} MB/s`);
console.log(`  decode             ${figures.decodeMBps.toFixed(2)} MB/s`);
console.log(
  `  naive reference    ${figures.referenceNoCacheMBps.toFixed(3)} MB/s (BPE only, no cache, ` +
    `${(sliceBytes / 1e3).toFixed(0)} KB slice)`,
);
if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(figures, null, 2) + "\n");
