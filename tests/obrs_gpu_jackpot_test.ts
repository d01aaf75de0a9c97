/**
 * `jackpotWeights` against the float64 reference (`obrsBatch`, `obrsBatchTopK`, `baselineWeights`)
 * on random batches: per-row log-probs, Z_approx, exact Z, the mask (identical for the same seed,
 * except where f32 and f64 acceptance straddle the uniform: counted and bounded), κ, w, ρ, the
 * baselines and the statistics; mask independence of the dispatch shape; mask frequencies.
 */
import assert from "node:assert/strict";
import { uniformAt } from "../src/util/rng.ts";
import {
  baselineWeights,
  klDivergence,
  obrsBatch,
  type ObrsBatchResult,
  obrsBatchTopK,
  topkIds,
} from "../src/obrs/reference/mod.ts";
import { type JackpotBatch, type JackpotParams, jackpotWeights } from "../src/obrs/gpu/mod.ts";
import { readBuffers } from "../src/gpu/mod.ts";
import { gpu, makeBatch } from "./obrs_gpu_util.ts";

type Batch = ReturnType<typeof makeBatch>;

async function readResult(r: Awaited<ReturnType<typeof jackpotWeights>>) {
  const bufs = [r.mask, r.w, r.rho, r.rowData, ...(r.baseline ? [r.baseline] : [])];
  const out = await readBuffers(gpu, bufs.map((buffer) => ({ buffer })));
  const n = r.rows;
  return {
    mask: new Uint32Array(out[0], 0, n),
    w: new Float32Array(out[1], 0, n),
    rho: new Float32Array(out[2], 0, n),
    rowData: new Float32Array(out[3], 0, n * 8),
    baseline: out[4] ? new Float32Array(out[4], 0, n * 4) : undefined,
  };
}

function relErr(a: number, b: number): number {
  if (a === b) return 0;
  return Math.abs(a - b) / Math.max(1e-30, Math.abs(b));
}

/** Compares GPU outputs with the reference result; returns the number of straddled mask rows. */
function compare(
  label: string,
  b: Batch,
  want: ObrsBatchResult,
  got: Awaited<ReturnType<typeof readResult>>,
  stats: Awaited<ReturnType<typeof jackpotWeights>>["stats"],
  seed: number,
): number {
  const { rows } = b;
  let straddles = 0, errZ = 0, errZe = 0, errW = 0;
  for (let r = 0; r < rows; r++) {
    if (!b.valid[r]) {
      assert.equal(got.mask[r], 0, `${label}: padded row ${r} accepted`);
      assert.equal(got.rho[r], 0);
      continue;
    }
    const o = r * 8;
    assert.equal(got.rowData[o + 7], 0, `${label}: row ${r} flagged ${got.rowData[o + 7]}`);
    errZ = Math.max(errZ, Math.abs(got.rowData[o + 4] - want.zApprox[r]));
    if (want.zExact) errZe = Math.max(errZe, Math.abs(got.rowData[o + 5] - want.zExact[r]));
    const la = got.rowData[o + 6];
    assert.ok(Math.abs(la - want.logAccept[r]) < 1e-4, `${label}: log a row ${r}`);
    if (got.mask[r] !== want.mask[r]) {
      // Only a uniform within f32 rounding of a may land on the other side.
      const u = uniformAt(seed, r, 0);
      assert.ok(Math.abs(u - Math.exp(want.logAccept[r])) < 1e-5, `${label}: mask row ${r}`);
      straddles++;
    }
  }
  assert.ok(straddles <= Math.max(1, rows / 500), `${label}: ${straddles} straddles`);
  assert.ok(errZ < 1e-5, `${label}: Z_approx error ${errZ}`);
  assert.ok(errZe < 1e-5, `${label}: exact Z error ${errZe}`);
  const s = want.stats;
  assert.equal(stats.validCount, s.validCount);
  if (straddles === 0) {
    assert.equal(stats.acceptedCount, s.acceptedCount);
    assert.ok(relErr(stats.kappa, s.kappa) < 1e-5, `${label}: κ ${stats.kappa} vs ${s.kappa}`);
    for (let r = 0; r < rows; r++) {
      errW = Math.max(errW, relErr(got.w[r], want.weight[r]), relErr(got.rho[r], want.rho[r]));
    }
    assert.ok(errW < 2e-5, `${label}: w/ρ relative error ${errW}`);
    for (
      const key of [
        "acceptRate",
        "meanZApprox",
        "weightMean",
        "weightMax",
        "rhoMean",
        "clipFractionC1",
        "clipFractionC2",
        "clippedFraction",
        "ess",
      ] as const
    ) {
      assert.ok(relErr(stats[key], s[key]) < 1e-4, `${label}: ${key} ${stats[key]} vs ${s[key]}`);
    }
    if (s.meanZExact !== null) {
      assert.ok(relErr(stats.meanZExact!, s.meanZExact) < 1e-4);
      assert.ok(relErr(stats.zApproxOverZ!, s.zApproxOverZ!) < 1e-4);
    }
  }
  console.log(
    `${label}: |ΔZ_approx| ${errZ.toExponential(1)}, |ΔZ| ${errZe.toExponential(1)}, ` +
      `rel Δw/ρ ${errW.toExponential(1)}, straddles ${straddles}/${rows}, ᾱ ${
        stats.acceptRate.toFixed(3)
      }, κ ${stats.kappa.toFixed(4)}`,
  );
  return straddles;
}

function logits(data: Float32Array, b: Batch) {
  return { data, shape: [b.rows, b.vocab] as const };
}

Deno.test("jackpotWeights (full logits) matches obrsBatch for both targets", async () => {
  for (
    const [seed, rows, vocab, k, lambda, target] of [
      [1, 40, 300, 20, 1, "new"],
      [2, 33, 1000, 5, 0.7, "ref"],
      [3, 1, 64, 64, 2, "new"],
      [4, 21, 97, 1, 1.3, "ref"],
      [5, 30, 500, 300, 1, "new"], // k beyond the streaming kernel: the sort path
      [6, 27, 301, 20, 0.8, "ref"], // row tiles of 8 rows (below)
    ] as const
  ) {
    const b = makeBatch(seed, rows, vocab);
    const opts = { lambda, k, c1: 2, c2: 1.5, target, seed: 100 + seed };
    const want = obrsBatch({
      vocab,
      logpInf: b.logpInf,
      logpRef: b.logpRef,
      logpNew: b.logpNew,
      ids: Int32Array.from(b.tokens),
      valid: b.valid,
    }, opts);
    const refSampled = Float32Array.from(b.tokens, (t, r) => b.logpRef[r * vocab + t]);
    const input: JackpotBatch = {
      tokens: b.tokens,
      valid: b.valid,
      inf: { logits: logits(b.inf, b) },
      newLogits: logits(b.nw, b),
      ref: target === "ref" ? { logits: logits(b.ref, b) } : { sampledLogp: refSampled },
    };
    const maxBindingBytes = seed === 6 ? vocab * 4 * 9 : undefined;
    const result = await jackpotWeights(gpu, input, { ...opts, exactZ: true, maxBindingBytes });
    const got = await readResult(result);
    compare(`seed ${seed} ${target} k ${k}`, b, want, got, result.stats, opts.seed);
    // Full-vocabulary KLs of the exact-Z pass, against the reference's klDivergence.
    const lpTarget = target === "new" ? b.logpNew : b.logpRef;
    let klIT = 0, klTI = 0, count = 0;
    for (let r = 0; r < rows; r++) {
      if (!b.valid[r]) continue;
      const row = (x: Float64Array) => x.subarray(r * vocab, (r + 1) * vocab).map(Math.exp);
      klIT += klDivergence(row(b.logpInf), row(lpTarget));
      klTI += klDivergence(row(lpTarget), row(b.logpInf));
      count++;
    }
    const { klInfTarget, klTargetInf } = result.stats;
    assert.ok(Math.abs(klInfTarget! - klIT / count) < 1e-5 + 1e-4 * klIT / count, `KL ${klIT}`);
    assert.ok(Math.abs(klTargetInf! - klTI / count) < 1e-5 + 1e-4 * klTI / count, `KL ${klTI}`);
    result.destroy();
  }
});

Deno.test("jackpotWeights (top-k captured at generation) matches obrsBatchTopK", async () => {
  for (const [seed, withFull] of [[11, false], [12, true]] as const) {
    const rows = 25, vocab = 400, k = 8, capturedK = 12;
    const b = makeBatch(seed, rows, vocab);
    const infTopIds = new Int32Array(rows * capturedK);
    const infTopLogp = new Float64Array(rows * capturedK);
    for (let r = 0; r < rows; r++) {
      const row = b.logpInf.subarray(r * vocab, (r + 1) * vocab);
      const ids = topkIds(row, capturedK).reverse(); // any order is allowed
      ids.forEach((id, j) => {
        infTopIds[r * capturedK + j] = id;
        infTopLogp[r * capturedK + j] = Math.fround(row[id]);
      });
    }
    const infSampledLogp = Float64Array.from(
      b.tokens,
      (t, r) => Math.fround(b.logpInf[r * vocab + t]),
    );
    const opts = { lambda: 1.2, k, c1: 3, c2: 3, target: "new" as const, seed: 7 };
    const want = obrsBatchTopK({
      vocab,
      capturedK,
      logpRef: b.logpRef,
      logpNew: b.logpNew,
      ids: Int32Array.from(b.tokens),
      valid: b.valid,
      infTopIds,
      infTopLogp,
      infSampledLogp,
      logpInfFull: withFull ? b.logpInf : undefined,
    }, opts);
    const result = await jackpotWeights(gpu, {
      tokens: b.tokens,
      valid: b.valid,
      inf: {
        topkIds: infTopIds,
        topkLogp: Float32Array.from(infTopLogp),
        capturedK,
        sampledLogp: Float32Array.from(infSampledLogp),
        logits: withFull ? logits(b.inf, b) : undefined,
      },
      newLogits: logits(b.nw, b),
      ref: { logits: logits(b.ref, b) },
    }, { ...opts, exactZ: withFull });
    compare(
      `captured top-${capturedK}${withFull ? " + full rows" : ""}`,
      b,
      want,
      await readResult(result),
      result.stats,
      opts.seed,
    );
    result.destroy();
  }
});

Deno.test("baseline weights (IS, TIS, IcePop) match baselineWeights", async () => {
  const b = makeBatch(21, 50, 200);
  const baseline = { tisCap: 1.5, icepopLow: 0.5, icepopHigh: 2 };
  const result = await jackpotWeights(gpu, {
    tokens: b.tokens,
    valid: b.valid,
    inf: { logits: logits(b.inf, b) },
    newLogits: logits(b.nw, b),
    ref: { logits: logits(b.ref, b) },
  }, { seed: 3, baseline });
  const got = await readResult(result);
  const tokens = {
    logpInf: Float64Array.from(b.tokens, (t, r) => b.logpInf[r * b.vocab + t]),
    logpRef: Float64Array.from(b.tokens, (t, r) => b.logpRef[r * b.vocab + t]),
    logpNew: Float64Array.from(b.tokens, (t, r) => b.logpNew[r * b.vocab + t]),
    valid: b.valid,
  };
  const is = baselineWeights(tokens, { kind: "is" });
  const tis = baselineWeights(tokens, { kind: "tis", cap: baseline.tisCap });
  const ice = baselineWeights(tokens, {
    kind: "icepop",
    alpha: baseline.icepopLow,
    beta: baseline.icepopHigh,
  });
  let worst = 0;
  for (let r = 0; r < b.rows; r++) {
    const g = got.baseline!.subarray(r * 4, r * 4 + 4);
    worst = Math.max(
      worst,
      relErr(g[0], is.weight[r]),
      relErr(g[1], tis.weight[r]),
      relErr(g[2], ice.weight[r]),
    );
    if (b.valid[r]) assert.equal(g[3], ice.mask[r], `IcePop mask row ${r}`);
  }
  assert.ok(worst < 2e-5, `baseline relative error ${worst}`);
  console.log(`baselines: max relative error ${worst.toExponential(1)}`);
  result.destroy();
});

Deno.test("the mask depends on (seed, row) only, not on tiles, top-k method, vec4 or batch size", async () => {
  const b = makeBatch(31, 24, 600);
  const base: JackpotBatch = {
    tokens: b.tokens,
    inf: { logits: logits(b.inf, b) },
    newLogits: logits(b.nw, b),
    ref: { logits: logits(b.ref, b) },
  };
  const params: JackpotParams = { seed: 99, lambda: 1.5, k: 20 };
  const masks: Uint32Array[] = [];
  const rhos: Float32Array[] = [];
  const stats: unknown[] = [];
  for (
    const extra of [
      {},
      { maxBindingBytes: 600 * 4 * 9 },
      { topkMethod: "sort" as const },
      { topkVec4: false },
    ]
  ) {
    const r = await jackpotWeights(gpu, base, { ...params, ...extra });
    const got = await readResult(r);
    masks.push(got.mask);
    rhos.push(got.rho);
    stats.push(r.stats);
    r.destroy();
  }
  // Row tiles and the top-k method change no arithmetic: the weights are identical too.
  assert.deepEqual(rhos[1], rhos[0]);
  assert.deepEqual(rhos[2], rhos[0]);
  // Scalar reads sum the row's exponentials in another order: the lse (and ρ) move by an ulp.
  assert.deepEqual(masks[3], masks[0]);
  rhos[3].forEach((v, i) => assert.ok(Math.abs(v - rhos[0][i]) <= 1e-6 * rhos[0][i], `ρ ${i}`));
  // The batch reductions run in a fixed order: the statistics are bit-identical as well.
  assert.deepEqual(stats[1], stats[0]);
  assert.deepEqual(stats[2], stats[0]);

  // The first 10 rows alone: same rows, same seed, same mask bits.
  const n = 10, v = b.vocab;
  const head = (x: Float32Array) => ({ data: x.slice(0, n * v), shape: [n, v] as const });
  const r = await jackpotWeights(gpu, {
    tokens: b.tokens.slice(0, n),
    inf: { logits: head(b.inf) },
    newLogits: head(b.nw),
    ref: { logits: head(b.ref) },
  }, params);
  const small = (await readResult(r)).mask;
  r.destroy();
  assert.deepEqual(masks[1], masks[0]);
  assert.deepEqual(masks[2], masks[0]);
  assert.deepEqual(small, masks[0].slice(0, n));
  const other = await jackpotWeights(gpu, base, { ...params, seed: 100 });
  const otherMask = (await readResult(other)).mask;
  other.destroy();
  assert.notDeepEqual(otherMask, masks[0], "a different seed should draw a different mask");
});

Deno.test("mask frequencies follow the acceptance probabilities (binomial tolerance)", async () => {
  const b = makeBatch(41, 1500, 40);
  const result = await jackpotWeights(gpu, {
    tokens: b.tokens,
    inf: { logits: logits(b.inf, b) },
    newLogits: logits(b.nw, b),
    ref: { logits: logits(b.ref, b) },
  }, { seed: 5, lambda: 1.5 });
  const got = await readResult(result);
  // Bucket rows by a; in each bucket accepted ~ Binomial-like with mean Σa, variance Σa(1 − a).
  const buckets = [0, 0.2, 0.4, 0.6, 0.8, 1.0001];
  for (let i = 0; i + 1 < buckets.length; i++) {
    let acc = 0, mean = 0, variance = 0, count = 0;
    for (let r = 0; r < b.rows; r++) {
      const a = Math.exp(got.rowData[r * 8 + 6]);
      if (a < buckets[i] || a >= buckets[i + 1]) continue;
      acc += got.mask[r];
      mean += a;
      variance += a * (1 - a);
      count++;
    }
    const z = variance > 0 ? (acc - mean) / Math.sqrt(variance) : acc - mean;
    console.log(
      `a in [${buckets[i]}, ${buckets[i + 1]}): ${count} rows, accepted ${acc}, expected ${
        mean.toFixed(1)
      }, z ${z.toFixed(2)}`,
    );
    assert.ok(Math.abs(z) < 4.5, `bucket ${i}: z = ${z}`);
  }
  result.destroy();
});
