/**
 * Property tests of the one-state OBRS reference (SPEC §2): softmax, divergences, acceptance, Z,
 * P_OBRS, Theorem 3.3, monotonicity in λ, E[a] = Z by Monte Carlo, edge cases and bad inputs.
 */
import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.ts";
import {
  acceptanceProbs,
  chiSquare,
  exactZ,
  klDivergence,
  logSoftmax,
  maxDensityRatio,
  obrsDistribution,
  softmax,
  tvDistance,
} from "../src/obrs/reference/mod.ts";
import { maxRelErr, pairs, randomPair, relErr } from "./obrs_reference_helpers.ts";

Deno.test("softmax / logSoftmax: normalised, shift-invariant, -Infinity → 0, agree with each other", () => {
  const rng = new Rng(11);
  let maxErr = 0;
  for (let trial = 0; trial < 300; trial++) {
    const cols = 1 + rng.int(40);
    const rows = 1 + rng.int(4);
    const x = new Float64Array(rows * cols).map(() => rng.normal() * [0.1, 3, 300][trial % 3]);
    for (let i = 0; i < x.length; i++) if (rng.uniform() < 0.2) x[i] = -Infinity;
    for (let r = 0; r < rows; r++) if (x[r * cols] === -Infinity) x[r * cols] = rng.normal();
    const p = softmax(x, cols);
    const lp = logSoftmax(x, cols);
    const shifted = softmax(x.map((v) => v + 1000), cols);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < cols; j++) {
        const i = r * cols + j;
        s += p[i];
        if (x[i] === -Infinity) assert.ok(p[i] === 0 && lp[i] === -Infinity);
        else maxErr = Math.max(maxErr, relErr(Math.exp(lp[i]), p[i]), relErr(shifted[i], p[i]));
      }
      maxErr = Math.max(maxErr, Math.abs(s - 1));
    }
  }
  console.log(
    `softmax: max error (sum-1, exp(logSoftmax) vs softmax, shift) = ${maxErr.toExponential(2)}`,
  );
  assert.ok(maxErr < 1e-12);
  assert.throws(() => softmax(new Float64Array([-Infinity, -Infinity])), /all -Infinity/);
  assert.throws(() => logSoftmax(new Float64Array([0, NaN])), /NaN/);
  assert.throws(() => softmax(new Float64Array(5), 2), /multiple/);
});

Deno.test("divergences: KL ≥ 0, Pinsker TV ≤ √(KL/2), KL ≤ log(1 + χ²), zero on p = q", () => {
  let worstPinsker = -Infinity;
  let worstChi = -Infinity;
  let selfMax = 0;
  for (const { p, q } of pairs(21, 40)) {
    const kl = klDivergence(p, q);
    const tv = tvDistance(p, q);
    const chi = chiSquare(p, q);
    assert.ok(kl >= 0 && tv >= 0 && tv <= 1 + 1e-15 && chi >= 0);
    worstPinsker = Math.max(worstPinsker, tv - Math.sqrt(kl / 2));
    if (Number.isFinite(chi)) worstChi = Math.max(worstChi, kl - Math.log1p(chi));
    else assert.ok(q.some((v, i) => v === 0 && p[i] > 0));
    selfMax = Math.max(selfMax, klDivergence(p, p), tvDistance(p, p), chiSquare(p, p));
  }
  console.log(
    `divergences: max(TV-sqrt(KL/2)) = ${worstPinsker.toExponential(2)}, ` +
      `max(KL-log(1+chi2)) = ${worstChi.toExponential(2)}, max self-divergence = ${
        selfMax.toExponential(2)
      }`,
  );
  assert.ok(worstPinsker <= 1e-12 && worstChi <= 1e-12 && selfMax < 1e-12);
  const p = new Float64Array([1, 0]);
  const q = new Float64Array([0.5, 0.5]);
  assert.equal(klDivergence(q, p), Infinity);
  assert.equal(chiSquare(q, p), Infinity);
  assert.ok(Math.abs(klDivergence(p, q) - Math.log(2)) < 1e-15);
});

Deno.test("acceptance, Z and P_OBRS agree: Z = Σ q·a, P_OBRS ∝ q·a, P_OBRS = p·Z·max(λ, p/q)^-1…", () => {
  const rng = new Rng(31);
  let maxErr = 0;
  for (const { p, q } of pairs(32, 100)) {
    const lambda = Math.exp(rng.normal() * 2);
    const a = acceptanceProbs(p, q, lambda);
    const z = exactZ(p, q, lambda);
    const P = obrsDistribution(p, q, lambda);
    let qa = 0;
    for (let i = 0; i < p.length; i++) {
      assert.ok(a[i] >= 0 && a[i] <= 1);
      qa += q[i] * a[i];
    }
    maxErr = Math.max(maxErr, relErr(qa, z));
    let sumP = 0;
    for (let i = 0; i < p.length; i++) {
      sumP += P[i];
      maxErr = Math.max(maxErr, relErr(P[i], (q[i] * a[i]) / qa));
      // p/P_OBRS = Z·max(λ, p/q): the identity behind w (SPEC §4).
      if (P[i] > 0 && p[i] > 0 && q[i] > 0) {
        maxErr = Math.max(maxErr, relErr(p[i] / P[i], z * Math.max(lambda, p[i] / q[i])));
      }
    }
    maxErr = Math.max(maxErr, Math.abs(sumP - 1));
  }
  console.log(`row identities: max rel error = ${maxErr.toExponential(2)}`);
  assert.ok(maxErr < 1e-9);
});

Deno.test("Theorem 3.3: KL(p‖P_OBRS) ≤ KL(p‖q) for λ < max p/q", () => {
  const rng = new Rng(41);
  let worst = -Infinity;
  let count = 0;
  for (const { p, q } of pairs(42, 100)) {
    const lambdaMax = maxDensityRatio(p, q);
    const klq = klDivergence(p, q);
    for (let j = 0; j < 3; j++) {
      // Log-uniform below max p/q (capped when it is infinite), plus λ near it.
      const top = Number.isFinite(lambdaMax) ? lambdaMax : 1e6;
      const lambda = j === 2 ? top * (1 - 1e-9) : top * Math.exp(-rng.uniform() * 12);
      const kl = klDivergence(p, obrsDistribution(p, q, lambda));
      if (Number.isFinite(klq)) worst = Math.max(worst, kl - klq);
      else assert.ok(kl <= klq);
      count++;
    }
  }
  console.log(
    `Theorem 3.3: ${count} cases, max KL(p||P_OBRS) - KL(p||q) = ${worst.toExponential(2)}`,
  );
  assert.ok(worst <= 1e-12);
});

Deno.test("KL(p‖P_OBRS) is non-increasing in λ over a grid; Z non-increasing too", () => {
  let worstKl = -Infinity;
  let worstZ = -Infinity;
  for (const { p, q } of pairs(51, 30)) {
    const top = Math.min(maxDensityRatio(p, q), 1e8);
    let prevKl = Infinity;
    let prevZ = Infinity;
    for (let j = 0; j <= 24; j++) {
      const lambda = top * Math.exp(-12 + j * 0.6); // from far below to beyond max p/q
      const kl = klDivergence(p, obrsDistribution(p, q, lambda));
      const z = exactZ(p, q, lambda);
      if (Number.isFinite(prevKl)) worstKl = Math.max(worstKl, (kl - prevKl) / Math.max(1, prevKl));
      worstZ = Math.max(worstZ, z - prevZ);
      prevKl = kl;
      prevZ = z;
    }
  }
  console.log(
    `monotone in lambda: max KL increase (rel) = ${worstKl.toExponential(2)}, ` +
      `max Z increase = ${worstZ.toExponential(2)}`,
  );
  assert.ok(worstKl <= 1e-12 && worstZ <= 1e-15);
});

Deno.test("E[a] = Z by Monte Carlo: sample x ~ q, accept w.p. a(x)", () => {
  const rng = new Rng(61);
  const samples = 4000;
  let worstSigmas = 0;
  let pairsSeen = 0;
  for (const { p, q } of pairs(62, 12)) {
    const lambda = Math.exp(rng.normal());
    const a = acceptanceProbs(p, q, lambda);
    const z = exactZ(p, q, lambda);
    const cdf = new Float64Array(q.length);
    let c = 0;
    for (let i = 0; i < q.length; i++) cdf[i] = c += q[i];
    let accepted = 0;
    for (let s = 0; s < samples; s++) {
      const u = rng.uniform() * c;
      let lo = 0;
      let hi = q.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid] > u) hi = mid;
        else lo = mid + 1;
      }
      if (rng.uniform() < a[lo]) accepted++;
    }
    const sigma = Math.sqrt(Math.max(z * (1 - z), 0) / samples);
    const dev = Math.abs(accepted / samples - z);
    worstSigmas = Math.max(worstSigmas, sigma > 0 ? dev / sigma : dev > 1e-12 ? Infinity : 0);
    pairsSeen++;
  }
  console.log(
    `Monte Carlo E[a] = Z: ${pairsSeen} pairs x ${samples} samples, worst |dev| = ${
      worstSigmas.toFixed(2)
    } sigma`,
  );
  assert.ok(worstSigmas <= 4);
});

Deno.test("edge cases: p = q, zero-probability tokens, λ → 0, λ ≥ max p/q", () => {
  const rng = new Rng(71);
  let maxErr = 0;
  for (let trial = 0; trial < 300; trial++) {
    const { p, q } = randomPair(rng, [2, 7, 50][trial % 3], [0.05, 0.5, 5][trial % 3]);
    const lambda = Math.exp(rng.normal() * 2);
    // p = q: a = min(1, 1/λ) on the support, Z = min(1, 1/λ), P_OBRS = p.
    const zSelf = exactZ(p, p, lambda);
    maxErr = Math.max(maxErr, relErr(zSelf, Math.min(1, 1 / lambda)));
    maxErr = Math.max(maxErr, maxRelErr(obrsDistribution(p, p, lambda), p));
    const aSelf = acceptanceProbs(p, p, lambda);
    for (let i = 0; i < p.length; i++) {
      if (p[i] > 0) maxErr = Math.max(maxErr, relErr(aSelf[i], Math.min(1, 1 / lambda)));
    }
    // Zero-probability tokens: q_i = 0 → a_i = 1 (convention) and P_OBRS_i = 0; p_i = 0 < q_i → a_i = 0.
    const a = acceptanceProbs(p, q, lambda);
    const P = obrsDistribution(p, q, lambda);
    for (let i = 0; i < p.length; i++) {
      if (q[i] === 0) assert.ok(a[i] === 1 && P[i] === 0);
      else if (p[i] === 0) assert.ok(a[i] === 0 && P[i] === 0);
    }
    // λ → 0: everything p supports is accepted; P_OBRS = q restricted to supp p.
    const ratioMin = Math.min(
      ...Array.from(p).map((v, i) => (v > 0 && q[i] > 0 ? v / q[i] : Infinity)),
    );
    const tiny = ratioMin * 1e-3;
    let qOnP = 0;
    for (let i = 0; i < p.length; i++) if (p[i] > 0) qOnP += q[i];
    maxErr = Math.max(maxErr, relErr(exactZ(p, q, tiny), qOnP));
    const Ptiny = obrsDistribution(p, q, tiny);
    for (let i = 0; i < p.length; i++) {
      maxErr = Math.max(maxErr, relErr(Ptiny[i], p[i] > 0 ? q[i] / qOnP : 0));
    }
    // λ ≥ max p/q (finite when supp p ⊆ supp q): classical rejection sampling, P_OBRS = p, Z = 1/λ.
    const lmax = maxDensityRatio(p, q);
    if (Number.isFinite(lmax)) {
      for (const big of [lmax, lmax * 3]) {
        maxErr = Math.max(maxErr, maxRelErr(obrsDistribution(p, q, big), p));
        maxErr = Math.max(maxErr, relErr(exactZ(p, q, big), 1 / big));
      }
    }
  }
  console.log(`edge cases: max rel error = ${maxErr.toExponential(2)}`);
  assert.ok(maxErr < 1e-9);
});

Deno.test("bad inputs raise clear errors", () => {
  const p = new Float64Array([0.5, 0.5]);
  const q3 = new Float64Array([0.2, 0.3, 0.5]);
  assert.throws(() => exactZ(new Float64Array([1.5, -0.5]), p, 1), /pTarget\[1\] = -0.5/);
  assert.throws(() => exactZ(p, q3, 1), /length mismatch/);
  assert.throws(() => exactZ(p, new Float64Array([0.5, 0.6]), 1), /sums to/);
  assert.throws(() => acceptanceProbs(p, p, 0), /lambda must be/);
  assert.throws(() => acceptanceProbs(p, p, -1), /lambda must be/);
  assert.throws(() => obrsDistribution(p, p, NaN), /lambda must be/);
  assert.throws(
    () => obrsDistribution(new Float64Array([1, 0]), new Float64Array([0, 1]), 1),
    /disjoint/,
  );
  assert.throws(() => klDivergence(p, new Float64Array([NaN, 1])), /q\[0\] = NaN/);
  assert.throws(() => tvDistance(p, q3), /length mismatch/);
  assert.throws(() => chiSquare(new Float64Array(0), new Float64Array(0)), /empty/);
});
