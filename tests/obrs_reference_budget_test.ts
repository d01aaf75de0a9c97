/**
 * Tests of the budget solver and of Theorem 3.4: at a given acceptance budget no other acceptance rule
 * (random, perturbed OBRS, hard threshold) gets a lower KL(p ‖ q̂) than OBRS.
 */
import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.ts";
import {
  acceptanceProbs,
  exactZ,
  klDivergence,
  lambdaForBudget,
  lambdaForBudgetBatch,
  maxBudget,
  obrsDistribution,
} from "../src/obrs/reference/mod.ts";
import { pairs, randomPair } from "./obrs_reference_helpers.ts";

/** Σ q·a, computed from acceptance probabilities (a path independent of Z's formula). */
function budgetOf(q: Float64Array, a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < q.length; i++) s += q[i] * a[i];
  return s;
}

/** q̂ ∝ q·a. */
function acceptedDistribution(q: Float64Array, a: Float64Array): Float64Array {
  const s = budgetOf(q, a);
  return q.map((v, i) => (v * a[i]) / s);
}

/** a − b, with 0 when both are +Infinity (p puts mass where q has none: every rule is infinite). */
function gap(a: number, b: number): number {
  return a === b ? 0 : a - b;
}

/** Scales a rule to min(1, c·b) with Σ q·min(1, c·b) = budget (bisection on c); null if unreachable. */
function rescale(q: Float64Array, b: Float64Array, budget: number): Float64Array | null {
  const at = (c: number) => b.map((v) => Math.min(1, c * v));
  let hi = 1;
  while (budgetOf(q, at(hi)) < budget) {
    hi *= 2;
    if (hi > 1e300) return null;
  }
  let lo = 0;
  for (let it = 0; it < 200; it++) {
    const mid = 0.5 * (lo + hi);
    if (budgetOf(q, at(mid)) < budget) lo = mid;
    else hi = mid;
  }
  return at(hi);
}

Deno.test("lambdaForBudget meets random budgets to 1e-9 (checked through Σ q·a)", () => {
  const rng = new Rng(91);
  let maxErr = 0;
  let count = 0;
  for (const { p, q } of pairs(92, 60)) {
    const top = maxBudget(p, q);
    for (const budget of [rng.uniform() * top, top * (1 - 1e-3 * rng.uniform()), top, 1e-4 * top]) {
      if (!(budget > 0)) continue;
      const lambda = lambdaForBudget(p, q, budget);
      assert.ok(lambda > 0 && Number.isFinite(lambda));
      maxErr = Math.max(maxErr, Math.abs(budgetOf(q, acceptanceProbs(p, q, lambda)) - budget));
      count++;
    }
  }
  console.log(
    `lambdaForBudget: ${count} budgets, max |Σ q·a(λ) - budget| = ${maxErr.toExponential(2)}`,
  );
  assert.ok(maxErr <= 1e-9);
});

Deno.test("lambdaForBudgetBatch: mean Z over rows meets the budget; one row equals lambdaForBudget", () => {
  const rng = new Rng(93);
  let maxErr = 0;
  for (let trial = 0; trial < 60; trial++) {
    const vocab = [2, 7, 50][trial % 3];
    const rows = 1 + rng.int(16);
    const ps: Float64Array[] = [];
    const qs: Float64Array[] = [];
    let top = 0;
    for (let n = 0; n < rows; n++) {
      const { p, q } = randomPair(rng, vocab, [0.05, 0.5, 5][rng.int(3)]);
      ps.push(p);
      qs.push(q);
      top += maxBudget(p, q) / rows;
    }
    const budget = top * (0.05 + 0.95 * rng.uniform());
    const lambda = lambdaForBudgetBatch(ps, qs, budget);
    const mean = ps.reduce((s, p, n) => s + exactZ(p, qs[n], lambda), 0) / rows;
    maxErr = Math.max(maxErr, Math.abs(mean - budget));
    if (rows === 1) {
      const single = lambdaForBudget(ps[0], qs[0], budget);
      maxErr = Math.max(maxErr, Math.abs(exactZ(ps[0], qs[0], single) - budget));
    }
  }
  console.log(`lambdaForBudgetBatch: max |mean Z - budget| = ${maxErr.toExponential(2)}`);
  assert.ok(maxErr <= 1e-9);
});

Deno.test("Theorem 3.4: random, perturbed and hard-threshold rules never beat OBRS at equal budget", () => {
  const rng = new Rng(94);
  let minGap = Infinity; // min over rules of KL(rule) - KL(OBRS); must stay >= -tolerance
  let minPerturbedGap = Infinity;
  let rules = 0;
  for (const { p, q } of pairs(95, 25)) {
    const top = maxBudget(p, q);
    const budget = top * (0.05 + 0.9 * rng.uniform());
    // A budget-relative tolerance: KL moves with log(budget), and budgets here go down to ~1e-4.
    const lambda = lambdaForBudget(p, q, budget, 1e-13 * budget);
    const klObrs = klDivergence(p, obrsDistribution(p, q, lambda));
    const aObrs = acceptanceProbs(p, q, lambda);
    const candidates: [string, Float64Array | null][] = [];
    for (let j = 0; j < 3; j++) {
      candidates.push(["random", rescale(q, q.map(() => rng.uniform() ** 3), budget)]);
    }
    for (let j = 0; j < 2; j++) {
      const eps = [0.3, 0.01][j];
      const b = aObrs.map((v) => Math.max(1e-12, v * Math.exp(eps * rng.normal())));
      candidates.push(["perturbed", rescale(q, b, budget)]);
    }
    for (const [kind, a] of candidates) {
      if (!a) continue;
      const g = gap(klDivergence(p, acceptedDistribution(q, a)), klObrs);
      if (kind === "perturbed") minPerturbedGap = Math.min(minPerturbedGap, g);
      minGap = Math.min(minGap, g);
      rules++;
    }
    // Hard thresholds: accept fully the tokens whose ratio p/q is at least t; compare at their budget.
    const ratios = Array.from(p).map((v, i) => (q[i] > 0 ? v / q[i] : Infinity));
    for (let j = 0; j < 2; j++) {
      const t = ratios[rng.int(ratios.length)];
      const a = q.map((_, i) => (ratios[i] >= t ? 1 : 0));
      const b = budgetOf(q, a);
      if (!(b > 0) || b > top) continue;
      const l = lambdaForBudget(p, q, b, 1e-13 * b);
      const g = gap(
        klDivergence(p, acceptedDistribution(q, a)),
        klDivergence(p, obrsDistribution(p, q, l)),
      );
      minGap = Math.min(minGap, g);
      rules++;
    }
  }
  console.log(
    `Theorem 3.4: ${rules} rules, min KL(rule) - KL(OBRS) = ${minGap.toExponential(2)} ` +
      `(perturbed OBRS only: ${minPerturbedGap.toExponential(2)})`,
  );
  assert.ok(minGap >= -1e-11);
});

Deno.test("budget solver: bad budgets and unreachable budgets raise RangeError", () => {
  const p = new Float64Array([0.5, 0.5]);
  const q = new Float64Array([0.8, 0.2]);
  for (const bad of [0, -0.1, 1.5, NaN]) {
    assert.throws(() => lambdaForBudget(p, q, bad), RangeError);
    assert.throws(() => lambdaForBudget(p, q, bad), /budget must be in \(0, 1\]/);
  }
  // p puts no mass on token 1, so 30% of q is always rejected: Z(λ → 0) = 0.7.
  assert.throws(
    () => lambdaForBudget(new Float64Array([1, 0]), new Float64Array([0.7, 0.3]), 0.9),
    /exceeds/,
  );
  assert.throws(
    () => lambdaForBudget(new Float64Array([1, 0]), new Float64Array([0, 1]), 0.5),
    /disjoint/,
  );
  assert.throws(() => lambdaForBudgetBatch([p], [], 0.5), /row count mismatch/);
  assert.throws(() => lambdaForBudgetBatch([], [], 0.5), /at least one row/);
  assert.throws(
    () => lambdaForBudget(p, new Float64Array([0.5, 0.25, 0.25]), 0.5),
    /length mismatch/,
  );
});
