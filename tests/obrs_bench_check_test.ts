/**
 * The OBRS benchmark's correctness gate (bench/obrs/check.ts): every numbered top-k version, every
 * log-sum-exp version and every fused-pass variant passes it on the CPU adapter, a recorder that
 * gets one id wrong or the lse slightly wrong is caught, and `--only` patterns select cases.
 */
import assert from "node:assert/strict";
import { Checker } from "../bench/obrs/check.ts";
import { DEFAULT_ONLY, matchesOnly } from "../bench/obrs/main.ts";
import { FUSED_VARIANTS, LSE_VERSIONS, TOPK_VERSIONS } from "../bench/obrs/versions.ts";
import { recordRowTopk } from "../src/obrs/gpu/mod.ts";
import { edgeMatrix } from "../bench/obrs/check.ts";
import { gpu, upload, zeros } from "./obrs_gpu_util.ts";

function setup(rows: number, vocab: number, k: number) {
  const x = edgeMatrix(rows, vocab, 3);
  const tokens = Uint32Array.from({ length: rows }, (_, r) => (r * 37) % vocab);
  for (let r = 0; r < rows; r++) {
    while (x[r * vocab + tokens[r]] === -Infinity) tokens[r] = (tokens[r] + 1) % vocab;
  }
  const b = {
    logits: upload(x),
    rows,
    vocab,
    k,
    tokens: upload(tokens),
    vals: zeros(rows * k * 4),
    ids: zeros(rows * k * 4),
    info: zeros(rows * 16),
    lse: zeros(rows * 4),
  };
  // A small "timed" matrix and a small edge matrix keep this fast on the CPU adapter.
  const checker = new Checker(gpu, b, tokens, 1000);
  const destroy = () => {
    checker.destroy();
    for (const buf of [b.logits, b.tokens, b.vals, b.ids, b.info, b.lse]) buf.destroy();
  };
  return { b, checker, destroy };
}

Deno.test("bench check: every version and variant agrees with the reference", async () => {
  const { b, checker, destroy } = setup(9, 2000, 20);
  const placeholder = zeros(16);
  const tb = { ...b, placeholder, maxBindingBytes: 1 << 27 };
  for (const v of TOPK_VERSIONS) {
    if (v.skip(tb)) continue;
    const why = await checker.check(
      "topk",
      (batch, c) => v.record(gpu, batch, { ...tb, ...c, logits: c.logits as GPUBuffer }),
    );
    assert.equal(why, undefined, `${v.id}: ${why}`);
  }
  for (const v of LSE_VERSIONS) {
    const why = await checker.check(
      "lse",
      (batch, c) => v.record(gpu, batch, { x: c.logits, rows: c.rows, vocab: c.vocab, lse: c.lse }),
    );
    assert.equal(why, undefined, `${v.id}: ${why}`);
  }
  for (const v of FUSED_VARIANTS) {
    const why = await checker.check(
      "fused",
      (batch, c) => recordRowTopk(gpu, batch, { ...c, ...v.opts }),
    );
    assert.equal(why, undefined, `${v.id}: ${why}`);
  }
  placeholder.destroy();
  destroy();
});

Deno.test("bench check: a wrong recorder is reported, with the first mismatch", async () => {
  const { checker, destroy } = setup(7, 1000, 5);
  // k = 4 outputs read as k = 5: the last id of every row is whatever was left there.
  const wrongK = await checker.check(
    "topk",
    (batch, c) => recordRowTopk(gpu, batch, { ...c, k: c.k - 1, withLse: false }),
  );
  assert.match(wrongK ?? "", /^edge matrix row \d+ \(V 1000\): (id|value)\[/);
  // Raw values where log-probs are expected.
  const raw = await checker.check(
    "fused",
    (batch, c) => recordRowTopk(gpu, batch, { ...c, withLse: false }),
  );
  assert.match(raw ?? "", /value\[0\] .*, want /);
  destroy();
});

Deno.test("bench --only patterns", () => {
  assert.ok(matchesOnly("v11-s4", undefined));
  assert.ok(matchesOnly("v11-s4", "v9,v11*"));
  assert.ok(matchesOnly("v9", "v9,v11*"));
  assert.ok(!matchesOnly("v9-wg64-cap128", "v9,v11*"));
  assert.ok(matchesOnly("fused-g8", " fused* "));
  assert.ok(!matchesOnly("jackpot", "fused*"));
  assert.ok(matchesOnly("v11-s8", "all"));
  assert.ok(matchesOnly("v9-wg64-cap128", DEFAULT_ONLY) && matchesOnly("fused", DEFAULT_ONLY));
  assert.ok(!matchesOnly("v10-g8", DEFAULT_ONLY) && !matchesOnly("lse-v2-l8", DEFAULT_ONLY));
});
