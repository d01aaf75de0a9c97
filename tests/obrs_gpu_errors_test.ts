/**
 * Bad input to `jackpotWeights`: each mistake gets one clear error before any GPU work, and
 * NaN/+Inf logits are detected and reported (count and first row), never turned into weights.
 */
import assert from "node:assert/strict";
import { readBuffers } from "../src/gpu/mod.ts";
import {
  type JackpotBatch,
  type JackpotParams,
  jackpotWeights,
  NonFiniteInputError,
} from "../src/obrs/gpu/mod.ts";
import { gpu, makeBatch } from "./obrs_gpu_util.ts";

const b = makeBatch(51, 12, 50);
const m = (data: Float32Array, rows = b.rows, vocab = b.vocab) => ({
  data,
  shape: [rows, vocab] as const,
});
const good: JackpotBatch = {
  tokens: b.tokens,
  inf: { logits: m(b.inf) },
  newLogits: m(b.nw),
  ref: { logits: m(b.ref) },
};

async function rejects(input: JackpotBatch, params: JackpotParams, pattern: RegExp) {
  await assert.rejects(() => jackpotWeights(gpu, input, params), (e: Error) => {
    assert.ok(e instanceof RangeError, `${e.name}: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("parameter errors: k > V, λ ≤ 0, c1 ≤ 0, c2 ≤ 0, seed, target", async () => {
  await rejects(good, { seed: 1, k: 51 }, /k = 51 exceeds the vocabulary size V = 50/);
  await rejects(good, { seed: 1, k: 0 }, /k must be an integer >= 1/);
  await rejects(good, { seed: 1, lambda: 0 }, /lambda must be a finite number > 0, got 0/);
  await rejects(good, { seed: 1, lambda: -1 }, /lambda must be a finite number > 0/);
  await rejects(good, { seed: 1, lambda: NaN }, /lambda must be a finite number > 0/);
  await rejects(good, { seed: 1, c1: 0 }, /c1 must be a finite number > 0/);
  await rejects(good, { seed: 1, c2: -2 }, /c2 must be a finite number > 0/);
  await rejects(good, { seed: 1.5 }, /seed must be an integer/);
  await rejects(good, { seed: 1, target: "old" as "new" }, /target must be "ref" or "new"/);
  await rejects(
    good,
    { seed: 1, baseline: { tisCap: 2, icepopLow: 3, icepopHigh: 1 } },
    /IcePop band/,
  );
});

Deno.test("shape errors: vocab or row mismatch between models, short buffers, bad ids", async () => {
  const wide = new Float32Array(b.rows * 51);
  await rejects(
    { ...good, inf: { logits: m(wide, b.rows, 51) } },
    { seed: 1 },
    /p_inf logits are \[12, 51\] but p_new logits are \[12, 50\]/,
  );
  await rejects(
    { ...good, ref: { logits: m(b.ref.subarray(0, 11 * 50), 11, 50) } },
    { seed: 1 },
    /p_ref logits are \[11, 50\] but p_new/,
  );
  await rejects(
    { ...good, newLogits: m(b.nw.subarray(0, 100)) },
    { seed: 1 },
    /p_new logits hold 400 bytes, fewer than \[12, 50\]/,
  );
  await rejects({ ...good, tokens: b.tokens.subarray(0, 5) }, { seed: 1 }, /tokens has 5 entries/);
  const badTokens = b.tokens.slice();
  badTokens[4] = 50;
  await rejects({ ...good, tokens: badTokens }, { seed: 1 }, /tokens\[4\] = 50 is outside/);
  await rejects(
    { ...good, ref: undefined },
    { seed: 1, target: "ref" },
    /target "ref" needs p_ref logits/,
  );
  await rejects({ ...good, ref: undefined }, { seed: 1 }, /target "new" needs p_ref/);
  await rejects(
    {
      ...good,
      inf: {
        topkIds: new Uint32Array(12 * 3),
        topkLogp: new Float32Array(12 * 3),
        capturedK: 3,
        sampledLogp: new Float32Array(12),
      },
    },
    { seed: 1, exactZ: true },
    /exactZ needs the full logits of the rollout model/,
  );
});

Deno.test("NaN/±Inf logits are reported with count and first row, never weighted", async () => {
  const inf = b.inf.slice(), nw = b.nw.slice();
  inf[3 * 50 + 7] = NaN;
  nw[8 * 50 + 1] = Infinity;
  nw.fill(-Infinity, 9 * 50, 10 * 50); // all -Inf row
  const bad: JackpotBatch = { ...good, inf: { logits: m(inf) }, newLogits: m(nw) };
  await assert.rejects(() => jackpotWeights(gpu, bad, { seed: 1 }), (e: Error) => {
    assert.ok(e instanceof NonFiniteInputError);
    assert.equal(e.count, 3);
    assert.equal(e.firstRow, 3);
    assert.match(e.message, /3 valid row\(s\) have NaN or \+Inf .*first: row 3/);
    return true;
  });
  const r = await jackpotWeights(gpu, bad, { seed: 1, onNonFinite: "report" });
  assert.deepEqual(r.stats.nonFinite, { count: 3, firstRow: 3 });
  // The other rows: exactly what a batch with those rows marked as padding gives.
  const valid = Uint8Array.from({ length: b.rows }, (_, i) => ([3, 8, 9].includes(i) ? 0 : 1));
  const clean = await jackpotWeights(gpu, { ...good, valid }, { seed: 1 });
  const [m1, w1, m2, w2] = await readBuffers(
    gpu,
    [r.mask, r.rho, clean.mask, clean.rho].map((buffer) => ({ buffer })),
  );
  assert.deepEqual(new Uint32Array(m1), new Uint32Array(m2));
  assert.deepEqual(new Float32Array(w1), new Float32Array(w2));
  for (const i of [3, 8, 9]) assert.equal(new Float32Array(w1)[i], 0);
  assert.equal(r.stats.validCount, clean.stats.validCount);
  assert.equal(r.stats.kappa, clean.stats.kappa);
  r.destroy();
  clean.destroy();
});

Deno.test("captured log-probs that are NaN or ids out of range are reported", async () => {
  const ids = new Uint32Array(12 * 2).map((_, i) => i % 2);
  const logp = new Float32Array(12 * 2).fill(-1);
  const sampled = new Float32Array(12).fill(-2);
  logp[5 * 2 + 1] = NaN;
  sampled[7] = Infinity;
  const r = await jackpotWeights(gpu, {
    ...good,
    inf: { topkIds: ids, topkLogp: logp, capturedK: 2, sampledLogp: sampled },
  }, { seed: 1, k: 2, onNonFinite: "report" });
  assert.deepEqual(r.stats.nonFinite, { count: 2, firstRow: 5 });
  r.destroy();
  const badIds = ids.slice();
  badIds[3] = 50;
  await rejects(
    { ...good, inf: { topkIds: badIds, topkLogp: logp, capturedK: 2, sampledLogp: sampled } },
    { seed: 1, k: 2 },
    /inf.topkIds\[3\] = 50 is outside/,
  );
});
