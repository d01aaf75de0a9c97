/**
 * Tests of the evaluation summaries: Pass@k against the exact binomial ratio in BigInt, and
 * summarizeSamples against an enumeration of every k-subset of every prompt's samples.
 */
import assert from "node:assert/strict";
import { passAtK, summarizeSamples } from "../src/rl/evaluation.ts";
import { Rng } from "../src/util/rng.ts";

function binomial(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let c = 1n;
  for (let i = 1; i <= k; i++) c = (c * BigInt(n - k + i)) / BigInt(i);
  return c;
}

/** 1 − C(n−c, k)/C(n, k) from exact integers, rounded once to float64 via a 2^80 scale. */
function passAtKExact(n: number, c: number, k: number): number {
  const den = binomial(n, k);
  const num = den - binomial(n - c, k);
  const scale = 1n << 80n;
  return Number((num * scale) / den) / 2 ** 80;
}

Deno.test("passAtK equals the exact binomial ratio for every n ≤ 20, c, k", () => {
  let cases = 0;
  for (let n = 1; n <= 20; n++) {
    for (let c = 0; c <= n; c++) {
      for (let k = 1; k <= n; k++) {
        const got = passAtK(n, c, k);
        const want = passAtKExact(n, c, k);
        assert.ok(Math.abs(got - want) <= 1e-14, `n=${n} c=${c} k=${k}: ${got} vs ${want}`);
        cases++;
      }
      if (c === 0) { for (let k = 1; k <= n; k++) assert.equal(passAtK(n, 0, k), 0); }
      if (c === n) { for (let k = 1; k <= n; k++) assert.equal(passAtK(n, n, k), 1); }
    }
    // k = n: one draw takes every sample, so any correct sample passes.
    for (let c = 1; c <= n; c++) assert.equal(passAtK(n, c, n), 1);
    // k = 1: the fraction correct.
    for (let c = 0; c <= n; c++) assert.ok(Math.abs(passAtK(n, c, 1) - c / n) <= 1e-15);
  }
  // Σ_{n ≤ 20} (n + 1)·n triples were checked.
  assert.equal(cases, (20 * 21 * 41) / 6 + (20 * 21) / 2);
});

Deno.test("passAtK stays accurate for large n (where C(n, k) overflows float64)", () => {
  const rng = new Rng(3);
  for (let t = 0; t < 30; t++) {
    const n = 200 + rng.int(1800);
    const c = rng.int(n + 1);
    const k = 1 + rng.int(Math.min(n, 300));
    const got = passAtK(n, c, k);
    const want = passAtKExact(n, c, k);
    assert.ok(Number.isFinite(got) && Math.abs(got - want) <= 1e-12, `n=${n} c=${c} k=${k}`);
  }
});

Deno.test("passAtK rejects non-integers and out-of-range counts", () => {
  assert.throws(() => passAtK(4.5, 1, 1), /integers, got n=4.5/);
  assert.throws(() => passAtK(4, 1, 1.5), /integers, got .*k=1.5/);
  assert.throws(() => passAtK(4, NaN, 1), /integers/);
  assert.throws(() => passAtK(4, 5, 1), /0 <= c <= n .*c=5/);
  assert.throws(() => passAtK(4, -1, 1), /0 <= c <= n/);
  assert.throws(() => passAtK(4, 1, 5), /1 <= k <= n.*k=5/);
  assert.throws(() => passAtK(4, 1, 0), /1 <= k <= n.*k=0/);
});

/** Every k-subset of {0..n−1}, as index arrays. */
function subsets(n: number, k: number): number[][] {
  const out: number[][] = [];
  const pick = (start: number, acc: number[]) => {
    if (acc.length === k) {
      out.push(acc.slice());
      return;
    }
    for (let i = start; i < n; i++) {
      acc.push(i);
      pick(i + 1, acc);
      acc.pop();
    }
  };
  pick(0, []);
  return out;
}

Deno.test("summarizeSamples matches an enumeration of every k-subset of every prompt", () => {
  for (let seed = 0; seed < 12; seed++) {
    const rng = new Rng(200 + seed);
    const groupSize = 1 + rng.int(8);
    const prompts = 1 + rng.int(6);
    const binary = seed % 3 === 0;
    // Continuous rewards on a coarse grid, so some sit exactly on the threshold (≥ counts).
    const rewards = Float64Array.from(
      { length: prompts * groupSize },
      () => binary ? rng.int(2) : rng.int(9) / 8 - 0.25,
    );
    const threshold = binary ? 1 : rng.int(9) / 8 - 0.25;
    const ks = Array.from({ length: groupSize }, (_, i) => i + 1);
    const s = summarizeSamples(rewards, groupSize, ks, threshold);
    assert.equal(s.prompts, prompts);
    assert.equal(s.groupSize, groupSize);
    let total = 0;
    for (const r of rewards) total += r;
    assert.ok(Math.abs(s.meanReward - total / rewards.length) <= 1e-15);
    for (const k of ks) {
      let meanSum = 0;
      let passSum = 0;
      for (let p = 0; p < prompts; p++) {
        const group = rewards.subarray(p * groupSize, (p + 1) * groupSize);
        const all = subsets(groupSize, k);
        let m = 0;
        let hits = 0;
        for (const sub of all) {
          let subSum = 0;
          for (const i of sub) subSum += group[i];
          m += subSum / k;
          if (sub.some((i) => group[i] >= threshold)) hits++;
        }
        meanSum += m / all.length;
        passSum += hits / all.length;
      }
      assert.ok(Math.abs(s.meanAt[k] - meanSum / prompts) <= 1e-13, `Mean@${k}`);
      assert.ok(Math.abs(s.passAt[k] - passSum / prompts) <= 1e-13, `Pass@${k}`);
    }
  }
});

Deno.test("summarizeSamples reads rewards prompt-major and defaults the threshold to 1", () => {
  // Prompt 0 all correct, prompt 1 none: prompt-major gives Pass@1 = ½; a sample-major reading of
  // the same array (groups [1, 0], [1, 0], [1, 0]) would give 1 for Pass@2.
  const s = summarizeSamples([1, 1, 1, 0, 0, 0], 3, [1, 2]);
  assert.equal(s.passAt[1], 0.5);
  assert.equal(s.passAt[2], 0.5);
  assert.equal(s.meanAt[2], 0.5);
  // 0.99 is below the default threshold.
  assert.equal(summarizeSamples([0.99, 0.99], 2, [2]).passAt[2], 0);
  assert.deepEqual(Object.keys(summarizeSamples([0, 1], 2, []).passAt), []);
});

Deno.test("summarizeSamples rejects bad input with messages naming the problem", () => {
  assert.throws(() => summarizeSamples([1, 0, 1], 2, [1]), /3 rewards is not a multiple of/);
  assert.throws(() => summarizeSamples([], 2, [1]), /at least one prompt/);
  assert.throws(() => summarizeSamples([1, 0], 0, [1]), /groupSize must be a positive integer/);
  assert.throws(() => summarizeSamples([1, 0], 1.5, [1]), /groupSize .* got 1.5/);
  assert.throws(
    () => summarizeSamples([1, 0, 0, NaN], 2, [1]),
    /reward 3 \(prompt 1\) is NaN/,
  );
  assert.throws(() => summarizeSamples([Infinity, 0], 2, [1]), /reward 0 \(prompt 0\) is Infinity/);
  assert.throws(
    () => summarizeSamples([1, 0], 2, [3]),
    /k must be an integer in \[1, groupSize = 2\], got 3/,
  );
  assert.throws(() => summarizeSamples([1, 0], 2, [0]), /got 0/);
  assert.throws(() => summarizeSamples([1, 0], 2, [1.5]), /got 1.5/);
  assert.throws(() => summarizeSamples([1, 0], 2, [1], NaN), /threshold is NaN/);
});
