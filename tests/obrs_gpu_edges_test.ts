/**
 * Edge cases of `jackpotWeights` found in review: captured top-k rows that repeat an id or hold a
 * log-prob above 0 (host arrays: one clear error; GPU buffers: flagged rows), `valid` entries other
 * than 0/1, logits so large in magnitude (±1e30, the f32 maximum) that log-sum-exp must be kept as
 * (max, log Σ exp(x − max)) to give the right log-probs, and option values or input types that
 * used to run and return garbage.
 */
import assert from "node:assert/strict";
import {
  type JackpotBatch,
  type JackpotParams,
  jackpotWeights,
  NonFiniteInputError,
} from "../src/obrs/gpu/mod.ts";
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

/** Rows whose logits are huge in magnitude: ±1e30 mixed with 0, the f32 extremes, large offsets. */
function hugeRows(vocab: number, seed: number): Float32Array[] {
  const rng = makeBatch(seed, 1, vocab).inf; // a normal-ish row to perturb
  const rows: Float32Array[] = [];
  rows.push(Float32Array.from({ length: vocab }, (_, i) => [1e30, -1e30, 0][i % 3]));
  const ext = new Float32Array(vocab).fill(-3.4028234663852886e38);
  ext[5] = 3.4028234663852886e38;
  ext[6] = 3.4028234663852886e38;
  rows.push(ext);
  rows.push(rng.map((v) => 1e6 + v)); // f32 spacing 1/16 at 1e6: log-sum-exp must not round away
  rows.push(rng.map((v, i) => -1e5 + v * (i % 2 ? 1 : 2)));
  rows.push(rng.map((v, i) => (i % 4 === 0 ? 1e30 : 1e30 - 1e24 * Math.abs(v))));
  return rows;
}

Deno.test("huge logits (±1e30, f32 max, 1e6 offsets): log-probs, Z and weights match float64", async () => {
  // The reference itself: log-softmax of [1e30, 1e30] is log 1/2 each, not 0.
  const two = logSoftmax(new Float64Array([1e30, 1e30]));
  assert.ok(Math.abs(two[0] + Math.LN2) < 1e-12, `reference log-softmax ${two[0]}`);
  for (const [vocab, topkMethod] of [[48, "stream"], [37, "stream"], [48, "sort"]] as const) {
    const infRows = hugeRows(vocab, 1), newRows = hugeRows(vocab, 2);
    const rows = infRows.length;
    const inf = new Float32Array(rows * vocab), nw = new Float32Array(rows * vocab);
    infRows.forEach((x, r) => inf.set(x, r * vocab));
    // p_new: the same kind of row, rotated so its top-k differs from p_inf's.
    newRows.forEach((x, r) => nw.set(x.map((_, i) => x[(i + 1) % vocab]), r * vocab));
    const tokens = Uint32Array.from({ length: rows }, (_, r) => [0, 5, 7, 3, 4][r]);
    const logpInf = logSoftmax(f64(inf), vocab), logpNew = logSoftmax(f64(nw), vocab);
    const opts = { lambda: 0.9, k: 4, c1: 3, c2: 3, target: "ref" as const, seed: 3 };
    const want = obrsBatch({
      vocab,
      logpInf,
      logpRef: logpNew,
      logpNew,
      ids: Int32Array.from(tokens),
      valid: new Uint8Array(rows).fill(1),
    }, opts);
    const lm = (d: Float32Array) => ({ data: d, shape: [rows, vocab] as const });
    const r = await jackpotWeights(gpu, {
      tokens,
      inf: { logits: lm(inf) },
      newLogits: lm(nw),
      ref: { logits: lm(nw) },
    }, { ...opts, exactZ: true, topkMethod });
    const [rdb, wb] = await readBuffers(gpu, [r.rowData, r.w].map((buffer) => ({ buffer })));
    const rd = new Float32Array(rdb), w = new Float32Array(wb);
    for (let t = 0; t < rows; t++) {
      const o = t * 8, at = `V ${vocab} ${topkMethod} row ${t}`;
      assert.equal(rd[o + 7], 0, `${at} flagged`);
      assert.ok(Math.abs(rd[o] - logpInf[t * vocab + tokens[t]]) < 1e-5, `${at}: ℓ_inf ${rd[o]}`);
      assert.ok(Math.abs(rd[o + 4] - want.zApprox[t]) < 1e-5, `${at}: Z_approx ${rd[o + 4]}`);
      assert.ok(Math.abs(rd[o + 5] - want.zExact![t]) < 1e-5, `${at}: Z ${rd[o + 5]}`);
      assert.ok(Math.abs(w[t] - want.weight[t]) < 1e-5 * (1 + want.weight[t]), `${at}: w ${w[t]}`);
    }
    assert.ok(Math.abs(r.stats.kappa - want.stats.kappa) < 1e-5 * want.stats.kappa);
    r.destroy();
  }
});

Deno.test("bad option values and input types are errors, not silent garbage", async () => {
  const good: JackpotBatch = {
    tokens: b.tokens,
    inf: { logits: m(b.inf) },
    newLogits: m(b.nw),
    ref: { logits: m(b.ref) },
  };
  const rejects = (batch: JackpotBatch, params: JackpotParams, pattern: RegExp) =>
    assert.rejects(() => jackpotWeights(gpu, batch, params), pattern);
  // An unknown top-k method used to skip the top-k of p_new altogether (κ off by 4×).
  await rejects(good, { seed: 1, topkMethod: "heap" as "sort" }, /topkMethod must be/);
  await rejects(good, { seed: 1, maxBindingBytes: NaN }, /maxBindingBytes must be/);
  // float64 logits (what the reference takes) passed the byte-size check and were read as f32.
  await rejects(
    { ...good, inf: { logits: { data: b.logpInf as unknown as Float32Array, shape: [10, 48] } } },
    { seed: 1 },
    /p_inf logits must be a Float32Array or a GPUBuffer, got Float64Array/,
  );
  await rejects(
    { ...good, tokens: new Float32Array(b.rows) as unknown as Uint32Array },
    { seed: 1 },
    /tokens must be a Uint32Array, an Int32Array or a GPUBuffer, got Float32Array/,
  );
  // A GPU buffer without STORAGE usage: WebGPU rejects the bind group; the result was all zeros.
  const noStorage = gpu.device.createBuffer({
    size: b.nw.byteLength,
    usage: GPUBufferUsage.COPY_DST,
  });
  await rejects({ ...good, newLogits: m(noStorage) }, { seed: 1 }, /p_new logits.*STORAGE usage/);
  noStorage.destroy();
  // A destroyed input buffer: the submit fails validation; that is an error, not zero weights.
  const gone = upload(b.nw);
  gone.destroy();
  await rejects({ ...good, newLogits: m(gone) }, { seed: 1 }, /WebGPU rejected the batch/);
});

Deno.test("repeated calls, throwing calls and destroy() twice leave no GPU buffer behind", async () => {
  const good: JackpotBatch = {
    tokens: b.tokens,
    valid: b.valid,
    inf: { logits: m(b.inf) },
    newLogits: m(b.nw),
    ref: { logits: m(b.ref) },
  };
  const bad: JackpotBatch = { ...good, inf: { logits: m(b.inf.map((v, i) => i === 7 ? NaN : v)) } };
  const baseline = { tisCap: 2, icepopLow: 0.5, icepopHigh: 2 };
  const configs: JackpotParams[] = [
    { seed: 1, exactZ: true, baseline },
    { seed: 2, k: 40, topkMethod: "sort" },
    { seed: 3, maxBindingBytes: b.vocab * 4 * 3 },
  ];
  const round = async () => {
    for (const p of configs) {
      const r = await jackpotWeights(gpu, good, p);
      r.destroy();
      r.destroy(); // a second destroy is harmless
    }
    await assert.rejects(() => jackpotWeights(gpu, bad, { seed: 4 }), NonFiniteInputError);
  };
  await round(); // creates the shared placeholders and pipelines once
  const live = new Set<GPUBuffer>();
  const device = gpu.device;
  const create = device.createBuffer;
  device.createBuffer = function (d: GPUBufferDescriptor): GPUBuffer {
    const buf = create.call(device, d);
    live.add(buf);
    const destroy = buf.destroy;
    buf.destroy = () => {
      live.delete(buf);
      destroy.call(buf);
    };
    return buf;
  };
  try {
    for (let i = 0; i < 3; i++) await round();
  } finally {
    device.createBuffer = create;
  }
  assert.equal(live.size, 0, `${live.size} buffers left: ${[...live].map((x) => x.label)}`);
});
