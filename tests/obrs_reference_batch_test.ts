/**
 * Tests of the batch-level OBRS reference (SPEC §3–5, §8): the seeded mask, Z_approx / exact Z / κ /
 * w / ρ against the one-state reference, unbiasedness of ᾱ, defined statistics on empty batches,
 * log-ratio clamping, the top-k-only variant and the baselines.
 */
import assert from "node:assert/strict";
import { Rng, uniformAt } from "../src/util/rng.ts";
import {
  acceptanceProbs,
  baselineWeights,
  exactZ,
  logAcceptance,
  obrsBatch,
  type ObrsBatchResult,
  obrsBatchTopK,
  obrsDistribution,
  type ObrsOptions,
  sampleMask,
  softmax,
  topkIds,
  zApprox,
} from "../src/obrs/reference/mod.ts";
import { pairs, type RandomBatch, randomBatch, relErr } from "./obrs_reference_helpers.ts";

function row(x: Float64Array, t: number, vocab: number): Float64Array {
  return softmax(x.subarray(t * vocab, (t + 1) * vocab));
}

function randomOptions(rng: Rng, vocab: number): ObrsOptions {
  return {
    lambda: Math.exp(rng.normal()),
    k: 1 + rng.int(Math.min(vocab, 25)),
    c1: 1 + 4 * rng.uniform(),
    c2: 1 + rng.uniform(),
    target: rng.uniform() < 0.5 ? "ref" : "new",
    seed: rng.int(1 << 30),
  };
}

/** pa / pb as SPEC §4 computes it: a log-ratio clamped to ±20 before exp (0/0 counts as 1). */
function clampedRatio(pa: number, pb: number): number {
  const d = Math.log(pa) - Math.log(pb);
  return Math.exp(Number.isNaN(d) ? 0 : Math.min(20, Math.max(-20, d)));
}

/** No NaN anywhere and nothing infinite except log a = -Infinity (p_target(x) = 0). */
function allFinite(result: ObrsBatchResult): boolean {
  if (result.logAccept.some((v) => Number.isNaN(v) || v > 0)) return false;
  const arrays = [result.zApprox, result.zT, result.weight, result.rho];
  const numbers = Object.values(result.stats).filter((v): v is number => typeof v === "number");
  return arrays.every((a) => a.every((v) => Number.isFinite(v))) && numbers.every(Number.isFinite);
}

Deno.test("logAcceptance is log(acceptanceProbs), zero-probability conventions included", () => {
  const rng = new Rng(99);
  let maxErr = 0;
  let zeroInf = 0;
  for (const { p, q } of pairs(98, 20)) {
    const lambda = Math.exp(2 * rng.normal());
    const a = acceptanceProbs(p, q, lambda);
    for (let i = 0; i < p.length; i++) {
      const la = logAcceptance(Math.log(p[i]), Math.log(q[i]), lambda);
      if (q[i] === 0) zeroInf++;
      if (a[i] === 0 || a[i] === 1) assert.equal(Math.exp(la), a[i], `p = ${p[i]}, q = ${q[i]}`);
      else maxErr = Math.max(maxErr, relErr(Math.exp(la), a[i]));
    }
  }
  console.log(
    `logAcceptance vs acceptanceProbs: max rel error ${
      maxErr.toExponential(2)
    } (${zeroInf} with p_inf = 0)`,
  );
  assert.ok(zeroInf > 0 && maxErr < 1e-12);
});

Deno.test("sampleMask: contract u < a, frequencies within 4σ of a over seeds, same seed same mask", () => {
  const n = 64;
  const a = new Float64Array(n).map((_, i) => (i === 0 ? 0 : i === 1 ? 1 : (i - 1) / (n - 1)));
  const logA = a.map(Math.log);
  const seeds = 3000;
  const counts = new Float64Array(n);
  for (let s = 0; s < seeds; s++) {
    const m = sampleMask(logA, s);
    for (let i = 0; i < n; i++) {
      assert.equal(m[i], uniformAt(s, i, 0) < a[i] ? 1 : 0, "the GPU contract");
      counts[i] += m[i];
    }
  }
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const sd = Math.sqrt(seeds * a[i] * (1 - a[i]));
    const dev = Math.abs(counts[i] - seeds * a[i]);
    if (sd === 0) assert.equal(dev, 0, `a = ${a[i]} must be deterministic`);
    else worst = Math.max(worst, dev / sd);
  }
  console.log(
    `sampleMask: ${n} tokens x ${seeds} seeds, worst frequency deviation = ${
      worst.toFixed(2)
    } sigma`,
  );
  assert.ok(worst <= 4);
  assert.deepEqual(sampleMask(logA, 12345), sampleMask(logA, 12345));
  assert.notDeepEqual(sampleMask(logA, 1), sampleMask(logA, 2));
  assert.throws(() => sampleMask(new Float64Array([0.1]), 0), /must be <= 0/);
  assert.throws(() => sampleMask(new Float64Array([NaN]), 0), /must be <= 0/);
  assert.throws(() => sampleMask(new Float64Array([0]), 0.5), /seed must be an integer/);
});

Deno.test("obrsBatch agrees with the one-state reference: a, Z_approx, Z, mask, κ, w = p/P_OBRS, ρ, stats", () => {
  const rng = new Rng(101);
  const err = { accept: 0, zApprox: 0, zExact: 0, kappa: 0, weight: 0, rho: 0, stats: 0 };
  let worstOver = -Infinity;
  let tokens = 0;
  let zeroAccept = 0;
  for (let trial = 0; trial < 60; trial++) {
    const vocab = [2, 7, 50, 200][trial % 4];
    const batch = randomBatch(rng, 8 + rng.int(40), vocab, [0.1, 0.5, 2][trial % 3]);
    const options = randomOptions(rng, vocab);
    const r = obrsBatch(batch, options);
    const { lambda, c1, c2, target } = options;
    const targetRows = target === "new" ? batch.logpNew : batch.logpRef;
    let valid = 0;
    let zaSum = 0;
    let accepted = 0;
    const acceptedWeights: number[] = [];
    let clipped = 0;
    for (let t = 0; t < batch.ids.length; t++) {
      if (!batch.valid[t]) {
        assert.ok(r.mask[t] === 0 && r.weight[t] === 0 && r.rho[t] === 0 && r.zApprox[t] === 0);
        continue;
      }
      valid++;
      tokens++;
      if (r.logAccept[t] === -Infinity) zeroAccept++;
      const id = batch.ids[t];
      const pInf = row(batch.logpInf, t, vocab);
      const pTarget = row(targetRows, t, vocab);
      const pNew = row(batch.logpNew, t, vocab);
      const pRef = row(batch.logpRef, t, vocab);
      err.accept = Math.max(
        err.accept,
        relErr(Math.exp(r.logAccept[t]), acceptanceProbs(pTarget, pInf, lambda)[id]),
      );
      err.zApprox = Math.max(
        err.zApprox,
        relErr(r.zApprox[t], zApprox(pTarget, pInf, pNew, lambda, options.k)),
      );
      const z = exactZ(pTarget, pInf, lambda);
      err.zExact = Math.max(err.zExact, relErr(r.zExact![t], z));
      worstOver = Math.max(worstOver, r.zApprox[t] - r.zExact![t]);
      zaSum += r.zApprox[t];
      // w = Z_t·max(λ, p_target/p_inf) = (Z_t / Z)·p_target/P_OBRS, checked against P_OBRS itself.
      const P = obrsDistribution(pTarget, pInf, lambda);
      if (Math.abs(Math.log(pTarget[id] / pInf[id])) < 20) {
        err.weight = Math.max(
          err.weight,
          relErr(r.weight[t], (r.zT[t] / z) * (pTarget[id] / P[id])),
        );
      }
      const refOverNew = clampedRatio(pRef[id], pNew[id]); // p_ref or p_new may be 0 here
      const second = target === "new" ? Math.min(refOverNew, c2) : 1;
      err.rho = Math.max(err.rho, relErr(r.rho[t], Math.min(r.weight[t], c1) * second));
      assert.equal(r.mask[t], uniformAt(options.seed, t, 0) < Math.exp(r.logAccept[t]) ? 1 : 0);
      if (r.mask[t]) {
        accepted++;
        acceptedWeights.push(r.weight[t]);
        if (r.weight[t] > c1 || (target === "new" && refOverNew > c2)) clipped++;
      }
    }
    const s = r.stats;
    assert.equal(s.validCount, valid);
    assert.equal(s.acceptedCount, accepted);
    err.kappa = Math.max(err.kappa, relErr(s.kappa * (zaSum / valid), accepted / valid));
    const sw = acceptedWeights.reduce((a, b) => a + b, 0);
    const sw2 = acceptedWeights.reduce((a, b) => a + b * b, 0);
    if (accepted > 0) {
      err.stats = Math.max(
        err.stats,
        relErr(s.weightMean, sw / accepted),
        relErr(s.weightMax, Math.max(...acceptedWeights)),
        relErr(s.ess, (sw * sw) / sw2),
        relErr(s.clippedFraction, clipped / accepted),
      );
    }
    assert.ok(s.zApproxOverZ! <= 1 + 1e-12 && s.zApproxOverZ! > 0);
    assert.ok(allFinite(r));
  }
  console.log(
    `obrsBatch vs row reference over ${tokens} tokens (${zeroAccept} with a = 0): max rel error a ${
      err.accept.toExponential(2)
    }, ` +
      `Z_approx ${err.zApprox.toExponential(2)}, Z ${err.zExact.toExponential(2)}, ` +
      `kappa*mean(Z_approx) vs acceptRate ${err.kappa.toExponential(2)}, w vs Z_t/Z*p/P_OBRS ${
        err.weight.toExponential(2)
      }, rho ${err.rho.toExponential(2)}, stats ${
        err.stats.toExponential(2)
      }; max(Z_approx - Z) = ${worstOver.toExponential(2)}`,
  );
  assert.ok(worstOver <= 1e-15);
  for (const [name, e] of Object.entries(err)) assert.ok(e < 1e-9, `${name}: ${e}`);
});

/** Redraws ids from p_inf (so E over ids and masks of ᾱ is the mean exact Z). */
function redrawIds(rng: Rng, batch: RandomBatch): RandomBatch {
  const ids = batch.ids.map((_, t) => {
    const p = row(batch.logpInf, t, batch.vocab);
    let u = rng.uniform();
    let id = 0;
    for (let v = 0; v < p.length; v++) {
      if (p[v] > 0) id = v;
      if (u < p[v]) break;
      u -= p[v];
    }
    return id;
  });
  return { ...batch, ids };
}

Deno.test("ᾱ is unbiased for mean Z: over redrawn tokens and seeds, E[ᾱ] = mean exact Z within 4σ", () => {
  const rng = new Rng(111);
  let worst = 0;
  for (const vocab of [7, 50]) {
    const batch = randomBatch(rng, 48, vocab, 0.7);
    const options: ObrsOptions = { lambda: 1.3, k: 3, c1: 3, c2: 3, target: "new", seed: 0 };
    const trials = 300;
    let sumRate = 0;
    let meanZ = 0;
    let variance = 0;
    for (let trial = 0; trial < trials; trial++) {
      const r = obrsBatch(redrawIds(rng, batch), { ...options, seed: trial });
      sumRate += r.stats.acceptRate;
      if (trial === 0) {
        meanZ = r.stats.meanZExact!;
        for (let t = 0; t < batch.ids.length; t++) {
          if (batch.valid[t]) variance += r.zExact![t] * (1 - r.zExact![t]);
        }
        variance /= r.stats.validCount ** 2;
      }
    }
    const sigmas = Math.abs(sumRate / trials - meanZ) / Math.sqrt(variance / trials);
    worst = Math.max(worst, sigmas);
  }
  console.log(`acceptance rate vs mean Z: worst deviation ${worst.toFixed(2)} sigma`);
  assert.ok(worst <= 4);
});

Deno.test("empty batches: zero valid or zero accepted tokens give defined statistics, never NaN", () => {
  const rng = new Rng(121);
  const batch = randomBatch(rng, 12, 7);
  const options: ObrsOptions = { lambda: 1, k: 2, c1: 3, c2: 3, target: "new", seed: 3 };
  const none = obrsBatch({ ...batch, valid: new Uint8Array(12) }, options);
  assert.ok(allFinite(none));
  assert.equal(none.stats.validCount, 0);
  assert.equal(none.stats.kappa, 0);
  assert.equal(none.stats.acceptRate, 0);
  assert.equal(none.stats.zApproxOverZ, 1);
  assert.ok(none.mask.every((m) => m === 0) && none.weight.every((w) => w === 0));
  // λ = 1e30 rejects everything: κ = 0, so Z_t = w = ρ = 0.
  const rejected = obrsBatch(batch, { ...options, lambda: 1e30 });
  assert.ok(allFinite(rejected));
  assert.equal(rejected.stats.acceptedCount, 0);
  assert.ok(rejected.stats.validCount > 0);
  assert.equal(rejected.stats.kappa, 0);
  assert.equal(rejected.stats.ess, 0);
  assert.ok(rejected.weight.every((w) => w === 0) && rejected.rho.every((w) => w === 0));
  const empty = obrsBatch({
    vocab: 7,
    logpInf: new Float64Array(0),
    logpRef: new Float64Array(0),
    logpNew: new Float64Array(0),
    ids: new Int32Array(0),
    valid: new Uint8Array(0),
  }, options);
  assert.ok(allFinite(empty) && empty.stats.validCount === 0);
  console.log(
    "empty batches: all statistics finite (kappa = 0, ess = 0, Z_approx/Z = 1 with no tokens)",
  );
});

Deno.test("log-ratios are clamped at ±20 in w, ρ and the baselines; acceptance is not clamped", () => {
  const vocab = 3;
  const logpNew = Float64Array.from([Math.log(0.98), Math.log(0.01), Math.log(0.01)]);
  const logpInf = Float64Array.from([-40, Math.log(0.5), Math.log1p(-0.5 - Math.exp(-40))]);
  const batch = {
    vocab,
    logpInf,
    logpRef: logpNew.slice(),
    logpNew,
    ids: Int32Array.of(0),
    valid: Uint8Array.of(1),
  };
  const r = obrsBatch(batch, { lambda: 1, k: 1, c1: 1e12, c2: 3, target: "new", seed: 0 });
  assert.equal(r.logAccept[0], 0);
  assert.equal(r.mask[0], 1);
  assert.ok(relErr(r.weight[0], r.zT[0] * Math.exp(20)) < 1e-15, "w uses exp(20), not exp(40)");
  const tokens = {
    logpInf: Float64Array.of(-40),
    logpRef: Float64Array.of(0),
    logpNew: Float64Array.of(-45),
    valid: Uint8Array.of(1),
  };
  assert.equal(baselineWeights(tokens, { kind: "is" }).weight[0], Math.exp(20));
  assert.equal(baselineWeights(tokens, { kind: "no-clip" }).weight[0], Math.exp(-5));
  console.log(`clamp: w = Z_t * e^20 = ${r.weight[0].toExponential(3)} for a log-ratio of ~40`);
});

Deno.test("obrsBatchTopK: with full p_inf rows equals obrsBatch; without, Z_approx sums the captured ids", () => {
  const rng = new Rng(131);
  let maxErr = 0;
  for (let trial = 0; trial < 30; trial++) {
    const vocab = [7, 50, 200][trial % 3];
    const batch = randomBatch(rng, 16 + rng.int(16), vocab);
    const options = randomOptions(rng, vocab);
    const n = batch.ids.length;
    const capturedK = options.k;
    const infTopIds = new Int32Array(n * capturedK);
    const infTopLogp = new Float64Array(n * capturedK);
    const infSampledLogp = new Float64Array(n);
    for (let t = 0; t < n; t++) {
      const ids = topkIds(batch.logpInf.subarray(t * vocab, (t + 1) * vocab), capturedK);
      ids.forEach((id, j) => {
        infTopIds[t * capturedK + j] = id;
        infTopLogp[t * capturedK + j] = batch.logpInf[t * vocab + id];
      });
      infSampledLogp[t] = batch.logpInf[t * vocab + batch.ids[t]];
    }
    const sparse = { ...batch, capturedK, infTopIds, infTopLogp, infSampledLogp };
    const full = obrsBatch(batch, options);
    const withRows = obrsBatchTopK({ ...sparse, logpInfFull: batch.logpInf }, options);
    assert.deepEqual(withRows.mask, full.mask);
    for (const key of ["logAccept", "zApprox", "zT", "weight", "rho"] as const) {
      for (let t = 0; t < n; t++) maxErr = Math.max(maxErr, relErr(withRows[key][t], full[key][t]));
    }
    for (let t = 0; t < n; t++) {
      maxErr = Math.max(maxErr, relErr(withRows.zExact![t], full.zExact![t]));
    }
    const without = obrsBatchTopK(sparse, options);
    assert.equal(without.zExact, null);
    assert.equal(without.stats.meanZExact, null);
    const targetRows = options.target === "new" ? batch.logpNew : batch.logpRef;
    for (let t = 0; t < n; t++) {
      if (!batch.valid[t]) continue;
      let expected = 0;
      for (let j = 0; j < capturedK; j++) {
        const id = infTopIds[t * capturedK + j];
        expected += Math.min(
          Math.exp(infTopLogp[t * capturedK + j]),
          Math.exp(targetRows[t * vocab + id]) / options.lambda,
        );
      }
      maxErr = Math.max(maxErr, relErr(without.zApprox[t], expected));
      assert.ok(without.zApprox[t] <= full.zApprox[t] * (1 + 1e-12));
    }
    assert.ok(allFinite(without));
  }
  console.log(
    `obrsBatchTopK: max rel error vs obrsBatch / captured-only sum = ${maxErr.toExponential(2)}`,
  );
  assert.ok(maxErr < 1e-12);
  const one = {
    vocab: 3,
    capturedK: 2,
    logpRef: new Float64Array(3).fill(-Math.log(3)),
    logpNew: new Float64Array(3).fill(-Math.log(3)),
    ids: Int32Array.of(0),
    valid: Uint8Array.of(1),
    infTopIds: Int32Array.of(1, 1),
    infTopLogp: Float64Array.of(-1, -1),
    infSampledLogp: Float64Array.of(-1),
  };
  const opts: ObrsOptions = { lambda: 1, k: 1, c1: 3, c2: 3, target: "ref", seed: 0 };
  assert.throws(() => obrsBatchTopK(one, opts), /repeats id 1/);
  assert.throws(() => obrsBatchTopK({ ...one, infTopIds: Int32Array.of(0, 5) }, opts), /outside/);
  assert.throws(
    () => obrsBatchTopK({ ...one, capturedK: 3 }, opts),
    /infTopIds has 2 entries, expected 3/,
  );
});

Deno.test("baselines: IS, TIS, IcePop, no-clip, no-clip-obrs and mask-only match their formulas", () => {
  const rng = new Rng(141);
  let maxErr = 0;
  for (let trial = 0; trial < 30; trial++) {
    const vocab = [7, 50][trial % 2];
    const batch = randomBatch(rng, 32, vocab, 1);
    const n = batch.ids.length;
    const gather = (x: Float64Array) => Float64Array.from(batch.ids, (id, t) => x[t * vocab + id]);
    const tokens = {
      logpInf: gather(batch.logpInf),
      logpRef: gather(batch.logpRef),
      logpNew: gather(batch.logpNew),
      valid: batch.valid,
    };
    const cap = 0.5 + 2 * rng.uniform();
    const [alpha, beta] = [0.5 * rng.uniform(), 1 + rng.uniform()];
    const is = baselineWeights(tokens, { kind: "is" });
    const tis = baselineWeights(tokens, { kind: "tis", cap });
    const ice = baselineWeights(tokens, { kind: "icepop", alpha, beta });
    const noClip = baselineWeights(tokens, { kind: "no-clip" });
    const none = baselineWeights(tokens, { kind: "no-correction" });
    const options: ObrsOptions = { ...randomOptions(rng, vocab), target: "new" };
    const obrs = obrsBatch(batch, options);
    const noClipObrs = baselineWeights(tokens, { kind: "no-clip-obrs", obrs });
    const maskOnly = baselineWeights(tokens, {
      kind: "mask-only",
      lambda: options.lambda,
      seed: options.seed,
      target: "new",
    });
    for (let t = 0; t < n; t++) {
      if (!batch.valid[t]) {
        for (const b of [is, tis, ice, noClip, none, noClipObrs, maskOnly]) {
          assert.ok(b.weight[t] === 0 && b.mask[t] === 0);
        }
        continue;
      }
      const id = batch.ids[t];
      const pInf = row(batch.logpInf, t, vocab)[id];
      const pRef = row(batch.logpRef, t, vocab)[id];
      const pNew = row(batch.logpNew, t, vocab)[id];
      const ratio = clampedRatio(pRef, pInf);
      maxErr = Math.max(
        maxErr,
        relErr(is.weight[t], ratio),
        relErr(tis.weight[t], Math.min(ratio, cap)),
      );
      maxErr = Math.max(maxErr, relErr(noClip.weight[t], clampedRatio(pNew, pInf)));
      assert.equal(ice.mask[t], ratio >= alpha && ratio <= beta ? 1 : 0);
      maxErr = Math.max(maxErr, relErr(ice.weight[t], ice.mask[t] ? ratio : 0));
      assert.ok(is.mask[t] === 1 && none.weight[t] === 1 && none.mask[t] === 1);
      // Jackpot's no-clip weight: p_new / P_OBRS on accepted tokens, i.e. the OBRS w itself.
      assert.equal(noClipObrs.mask[t], obrs.mask[t]);
      assert.equal(maskOnly.mask[t], obrs.mask[t]);
      if (obrs.mask[t]) {
        const pTarget = row(batch.logpNew, t, vocab);
        const P = obrsDistribution(pTarget, row(batch.logpInf, t, vocab), options.lambda);
        maxErr = Math.max(
          maxErr,
          relErr(noClipObrs.weight[t], (obrs.zT[t] / obrs.zExact![t]) * (pNew / P[id])),
        );
        assert.equal(maskOnly.weight[t], 1);
      }
    }
  }
  console.log(`baselines: max rel error vs formulas = ${maxErr.toExponential(2)}`);
  assert.ok(maxErr < 1e-9);
  const tokens = {
    logpInf: Float64Array.of(-1),
    logpRef: Float64Array.of(-1),
    logpNew: Float64Array.of(-1),
    valid: Uint8Array.of(1),
  };
  assert.throws(() => baselineWeights(tokens, { kind: "tis", cap: 0 }), /cap must be/);
  assert.throws(
    () => baselineWeights(tokens, { kind: "icepop", alpha: 2, beta: 1 }),
    /alpha <= beta/,
  );
  assert.throws(
    () => baselineWeights(tokens, { kind: "mask-only", lambda: -1, seed: 0, target: "ref" }),
    /lambda/,
  );
  assert.throws(
    () => baselineWeights({ ...tokens, logpNew: Float64Array.of(NaN) }, { kind: "no-clip" }),
    /logpNew\[0\] = NaN/,
  );
});

Deno.test("bad batch inputs raise clear errors", () => {
  const batch = randomBatch(new Rng(151), 4, 5);
  const ok: ObrsOptions = { lambda: 1, k: 2, c1: 3, c2: 3, target: "new", seed: 0 };
  batch.valid.fill(1);
  assert.throws(() => obrsBatch(batch, { ...ok, lambda: 0 }), /lambda must be/);
  assert.throws(() => obrsBatch(batch, { ...ok, k: 0 }), /k must be an integer in \[1, V = 5\]/);
  assert.throws(() => obrsBatch(batch, { ...ok, k: 6 }), /k must be/);
  assert.throws(() => obrsBatch(batch, { ...ok, c1: -1 }), /c1 must be/);
  assert.throws(() => obrsBatch(batch, { ...ok, target: "old" as "new" }), /target must be/);
  assert.throws(() => obrsBatch(batch, { ...ok, seed: 0.5 }), /seed must be an integer/);
  assert.throws(() => obrsBatch({ ...batch, ids: Int32Array.of(0, 1, 9, 0) }, ok), /ids\[2\] = 9/);
  assert.throws(
    () => obrsBatch({ ...batch, logpRef: batch.logpRef.subarray(1) }, ok),
    /logpRef has 19 entries, expected 20/,
  );
  const unnormalised = batch.logpNew.slice();
  unnormalised[6] += 1;
  assert.throws(
    () => obrsBatch({ ...batch, logpNew: unnormalised }, ok),
    /logpNew row 1 is not normalised/,
  );
  const nan = batch.logpInf.slice();
  nan[3] = NaN;
  assert.throws(() => obrsBatch({ ...batch, logpInf: nan }, ok), /logpInf\[0, 3\] = NaN/);
  assert.throws(
    () => obrsBatch({ ...batch, valid: Uint8Array.of(1, 2, 1, 1) }, ok),
    /valid\[1\] = 2/,
  );
});
