/**
 * Edge cases of `jackpotWeights` found in review: captured top-k rows that repeat an id or hold a
 * log-prob above 0 (host arrays: one clear error; GPU buffers: flagged rows), `valid` entries other
 * than 0/1, and logits so large in magnitude (±1e30, the f32 maximum) that log-sum-exp must be
 * kept as (max, log Σ exp(x − max)) to give the right log-probs.
 */
import assert from "node:assert/strict";
import { type JackpotBatch, jackpotWeights, NonFiniteInputError } from "../src/obrs/gpu/mod.ts";
import { logSoftmax, obrsBatch, topkIds } from "../src/obrs/reference/mod.ts";
import { readBuffers } from "../src/gpu/mod.ts";
import { f64, gpu, makeBatch, upload } from "./obrs_gpu_util.ts";

const b = makeBatch(61, 10, 48);
const m = (data: Float32Array | GPUBuffer) => ({ data, shape: [b.rows, b.vocab] as const });
const CK = 4;

/** p_inf's captured top-CK ids and log-probs, the sampled token's log-prob. */
function captured() {
  const ids = new Uint32Array(b.rows * CK), lp = new Float32Array(b.rows * CK);
  for (let r = 0; r < b.rows; r++) {
    const row = b.logpInf.subarray(r * b.vocab, (r + 1) * b.vocab);
    topkIds(row, CK).forEach((id, j) => {
      ids[r * CK + j] = id;
      lp[r * CK + j] = row[id];
    });
  }
  const sampled = Float32Array.from(b.tokens, (t, r) => b.logpInf[r * b.vocab + t]);
  return { ids, lp, sampled };
}

function batchWith(ids: Uint32Array | GPUBuffer, lp: Float32Array | GPUBuffer): JackpotBatch {
  return {
    tokens: b.tokens,
    inf: { topkIds: ids, topkLogp: lp, capturedK: CK, sampledLogp: captured().sampled },
    newLogits: m(b.nw),
    ref: { logits: m(b.ref) },
  };
}

Deno.test("captured top-k: a repeated id is an error (host) or a flagged row (GPU)", async () => {
  const { ids, lp } = captured();
  ids[3 * CK + 2] = ids[3 * CK + 0];
  lp[3 * CK + 2] = lp[3 * CK + 0];
  await assert.rejects(
    () => jackpotWeights(gpu, batchWith(ids, lp), { seed: 1, k: 3 }),
    /inf\.topkIds row 3 repeats id \d+/,
  );
  const idsGpu = upload(ids), lpGpu = upload(lp);
  await assert.rejects(
    () => jackpotWeights(gpu, batchWith(idsGpu, lpGpu), { seed: 1, k: 3 }),
    (e: Error) => {
      assert.ok(e instanceof NonFiniteInputError, e.message);
      assert.equal(e.count, 1);
      assert.equal(e.firstRow, 3);
      assert.match(e.message, /repeated/);
      return true;
    },
  );
  // Reported: the row is left out, Z_approx of the others never exceeds 1.
  const r = await jackpotWeights(gpu, batchWith(idsGpu, lpGpu), {
    seed: 1,
    k: 3,
    onNonFinite: "report",
  });
  assert.deepEqual(r.stats.nonFinite, { count: 1, firstRow: 3 });
  assert.ok(r.stats.meanZApprox <= 1);
  r.destroy();
  idsGpu.destroy();
  lpGpu.destroy();
});

Deno.test("captured top-k: a log-prob above 0 is an error (host) or a flagged row (GPU)", async () => {
  const { ids, lp } = captured();
  lp[5 * CK + 1] = 0.5;
  await assert.rejects(
    () => jackpotWeights(gpu, batchWith(ids, lp), { seed: 1, k: 3 }),
    /inf\.topkLogp\[21\] = 0\.5 is not a log-probability/,
  );
  const sampled = captured().sampled;
  sampled[2] = 3;
  await assert.rejects(
    () =>
      jackpotWeights(gpu, {
        ...batchWith(captured().ids, captured().lp),
        inf: { topkIds: ids, topkLogp: captured().lp, capturedK: CK, sampledLogp: sampled },
      }, { seed: 1, k: 3 }),
    /inf\.sampledLogp\[2\] = 3 is not a log-probability/,
  );
  const idsGpu = upload(ids), lpGpu = upload(lp);
  const r = await jackpotWeights(gpu, batchWith(idsGpu, lpGpu), {
    seed: 1,
    k: 3,
    onNonFinite: "report",
  });
  assert.deepEqual(r.stats.nonFinite, { count: 1, firstRow: 5 });
  r.destroy();
  idsGpu.destroy();
  lpGpu.destroy();
});

Deno.test("valid entries other than 0 and 1 are an error", async () => {
  const valid = new Uint8Array(b.rows).fill(1);
  valid[4] = 2;
  await assert.rejects(
    () =>
      jackpotWeights(gpu, {
        tokens: b.tokens,
        valid,
        inf: { logits: m(b.inf) },
        newLogits: m(b.nw),
        ref: { logits: m(b.ref) },
      }, { seed: 1 }),
    /valid\[4\] = 2, expected 0 or 1/,
  );
});
