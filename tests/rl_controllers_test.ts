/**
 * Tests of the RL controllers: lambdaForTokenBudget against a float64 bisection on A(λ) over random
 * batches (sizes 1–1000, ties, −Infinity ratios, ratios of e^{±80}, budgets near 0, ½ and 1), and
 * AdaptiveKLCoefficient against the recurrence written out by hand.
 */
import assert from "node:assert/strict";
import { AdaptiveKLCoefficient, lambdaForTokenBudget } from "../src/rl/controllers.ts";
import { Rng } from "../src/util/rng.ts";

/** A(L) = mean_i min(1, exp(r_i − L)), straight from the definition. */
function acceptanceAt(r: ArrayLike<number>, logLambda: number): number {
  let s = 0;
  for (let i = 0; i < r.length; i++) s += Math.min(1, Math.exp(r[i] - logLambda));
  return s / r.length;
}

/** The bracket [lo, hi] of log λ with A(lo) ≥ budget > A(hi), by 300 halvings (reference). */
function bisectLogLambda(r: ArrayLike<number>, budget: number): { lo: number; hi: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < r.length; i++) {
    if (r[i] === -Infinity) continue;
    lo = Math.min(lo, r[i]);
    hi = Math.max(hi, r[i]);
  }
  // A(max r − log budget + 1) ≤ budget / e < budget.
  hi = hi - Math.log(budget) + 1;
  for (let it = 0; it < 300; it++) {
    const mid = 0.5 * (lo + hi);
    if (mid === lo || mid === hi) break;
    if (acceptanceAt(r, mid) >= budget) lo = mid;
    else hi = mid;
  }
  return { lo, hi };
}

type Kind = "normal" | "wide" | "ties" | "neginf" | "peaked";

function randomRatios(rng: Rng, n: number, kind: Kind): Float64Array {
  const r = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    switch (kind) {
      case "normal":
        r[i] = 0.3 * rng.normal();
        break;
      case "wide":
        r[i] = -80 + 160 * rng.uniform();
        break;
      case "ties":
        r[i] = [-1, 0, 0.5][rng.int(3)];
        break;
      case "neginf":
        r[i] = rng.uniform() < 0.3 ? -Infinity : rng.normal();
        break;
      case "peaked":
        r[i] = rng.uniform() < 0.05 ? 40 + rng.normal() : -0.01 * rng.uniform();
        break;
    }
  }
  // At least one finite ratio, so every budget up to the finite fraction is reachable.
  if (r.every((x) => x === -Infinity)) r[rng.int(n)] = rng.normal();
  return r;
}

function finiteFraction(r: Float64Array): number {
  return r.filter((x) => x !== -Infinity).length / r.length;
}

Deno.test("lambdaForTokenBudget meets the budget and agrees with a bisection on A(λ)", () => {
  const kinds: Kind[] = ["normal", "wide", "ties", "neginf", "peaked"];
  let cases = 0;
  let maxErr = 0;
  for (let seed = 0; seed < 24; seed++) {
    const rng = new Rng(1000 + seed);
    for (const n of [1, 2, 7, 1000]) {
      for (const kind of kinds) {
        const r = randomRatios(rng, n, kind);
        const top = finiteFraction(r);
        const budgets = [1e-6, 1e-3, 0.5 * top, rng.uniform() * top, top * (1 - 1e-9), top];
        for (const budget of budgets) {
          if (!(budget > 0)) continue;
          const got = lambdaForTokenBudget(r, budget);
          const L = got.logLambda;
          assert.ok(Number.isFinite(L) && got.lambda > 0, `${kind} n=${n} ${budget}`);
          // λ and log λ describe the same number.
          assert.ok(Math.abs(Math.log(got.lambda) - L) <= 1e-13 * Math.max(1, Math.abs(L)));
          // The defining property, on an independent evaluation of A.
          const err = Math.abs(acceptanceAt(r, L) - budget);
          maxErr = Math.max(maxErr, err);
          assert.ok(err <= 1e-10, `A(λ) − budget = ${err} (${kind} n=${n} budget=${budget})`);
          assert.ok(Math.abs(got.acceptance - budget) <= 1e-10);
          // The same log λ as the bisection, within what A's slope there resolves: dA/dlogλ =
          // −(A − fraction accepting with 1).
          const { lo, hi } = bisectLogLambda(r, budget);
          let ones = 0;
          for (const x of r) if (x >= L) ones++;
          const slope = budget - ones / n;
          const tol = 1e-10 * (1 + Math.abs(L)) + (slope > 0 ? 1e-13 / slope : Infinity);
          if (budget === top) {
            // The whole (0, exp(min r)] meets the maximum; the largest of it is returned.
            const minR = Math.min(...r.filter((x) => x !== -Infinity));
            assert.equal(got.lambda, Math.exp(minR));
            assert.equal(L, minR);
          } else {
            assert.ok(L >= lo - tol && L <= hi + tol, `${L} outside [${lo}, ${hi}] ± ${tol}`);
          }
          cases++;
        }
      }
    }
  }
  assert.ok(cases > 2000, `only ${cases} cases`);
  assert.ok(maxErr < 1e-12, `largest |A(λ) − budget| ${maxErr}`);
});

Deno.test("lambdaForTokenBudget solves one ratio in closed form and budget 1 at the smallest ratio", () => {
  const rng = new Rng(7);
  for (let t = 0; t < 200; t++) {
    const r = -80 + 160 * rng.uniform();
    const budget = rng.uniform() * 0.999 + 1e-3;
    const got = lambdaForTokenBudget([r], budget);
    // min(1, e^r/λ) = ā with ā < 1 ⇒ λ = e^r/ā.
    const want = Math.exp(r) / budget;
    assert.ok(Math.abs(got.lambda - want) <= 1e-14 * want, `${got.lambda} vs ${want}`);
  }
  for (const n of [1, 2, 7, 1000]) {
    const r = randomRatios(rng, n, "wide");
    const got = lambdaForTokenBudget(r, 1);
    assert.equal(got.lambda, Math.exp(Math.min(...r)));
    assert.equal(got.acceptance, 1);
  }
});

Deno.test("lambdaForTokenBudget: λ is non-increasing in the budget, strictly below the maximum", () => {
  for (let seed = 0; seed < 10; seed++) {
    const rng = new Rng(50 + seed);
    const r = randomRatios(rng, 1 + rng.int(300), seed % 2 === 0 ? "neginf" : "ties");
    const top = finiteFraction(r);
    const budgets = Array.from({ length: 40 }, () => top * (1e-4 + 0.9999 * rng.uniform()));
    budgets.sort((a, b) => a - b);
    let prev = Infinity;
    for (const b of budgets) {
      const { logLambda } = lambdaForTokenBudget(r, b);
      assert.ok(logLambda < prev || b === budgets[0], `λ not decreasing at budget ${b}`);
      prev = logLambda;
    }
    // And A is non-increasing on a grid of λ (the property the solver relies on).
    let prevA = Infinity;
    for (let L = -5; L <= 5; L += 0.05) {
      const a = acceptanceAt(r, L);
      assert.ok(a <= prevA);
      prevA = a;
    }
  }
});

Deno.test("lambdaForTokenBudget does not overflow or underflow on ratios of e^{±700}", () => {
  const r = [700, 699, -700, -705, 0];
  for (const budget of [0.1, 0.3, 0.5, 0.9, 1]) {
    const got = lambdaForTokenBudget(r, budget);
    assert.ok(Number.isFinite(got.lambda) && got.lambda > 0);
    assert.ok(Math.abs(acceptanceAt(r, got.logLambda) - budget) <= 1e-12, `${budget}`);
  }
  // Both ratios at −750: λ = e^{−750}·2 is below float64's smallest positive number.
  assert.throws(
    () => lambdaForTokenBudget([-750, -750], 0.5),
    /budget 0.5 needs λ = exp\(-749.30.*outside float64's range/,
  );
});

Deno.test("lambdaForTokenBudget rejects bad input with messages naming the problem", () => {
  assert.throws(() => lambdaForTokenBudget([], 0.5), /at least one sampled token/);
  assert.throws(() => lambdaForTokenBudget([0, NaN, 1], 0.5), /logRatio\[1\] is NaN/);
  assert.throws(() => lambdaForTokenBudget([0, 1, Infinity], 0.5), /logRatio\[2\] is Infinity/);
  for (const b of [0, -0.1, 1.0000001, NaN, Infinity]) {
    assert.throws(() => lambdaForTokenBudget([0, 1], b), /budget must be in \(0, 1\], got /);
  }
  assert.throws(
    () => lambdaForTokenBudget([-Infinity, -Infinity], 0.5),
    /every one of the 2 log-ratios is -Infinity/,
  );
  assert.throws(
    () => lambdaForTokenBudget([0, -Infinity, 1, -Infinity], 0.6),
    /budget 0.6 unreachable: 2 of 4 tokens have p_target = 0, so the acceptance is at most 0.5/,
  );
  // The maximum itself is reachable.
  assert.equal(lambdaForTokenBudget([0, -Infinity, 1, -Infinity], 0.5).lambda, 1);
});

/** The controller's recurrence, written out again. */
function klStep(value: number, kl: number, target: number, horizon: number, steps: number) {
  let e = kl / target - 1;
  if (e > 0.2) e = 0.2;
  if (e < -0.2) e = -0.2;
  return value * (1 + (e * steps) / horizon);
}

Deno.test("AdaptiveKLCoefficient raises the weight above the target KL and lowers it below", () => {
  const ctl = new AdaptiveKLCoefficient({ initial: 1, target: 0.1, horizon: 10 });
  assert.ok(ctl.update(0.15) > 1, "KL above target must raise the distillation weight");
  const up = ctl.value;
  assert.ok(ctl.update(0.05) < up, "KL below target must lower it");
  const before = ctl.value;
  assert.equal(ctl.update(0.1), before, "at the target it stays");
  // The error is clipped at ±0.2: 10× and 1000× the target move it the same.
  const a = new AdaptiveKLCoefficient({ initial: 1, target: 0.1, horizon: 10 });
  const b = new AdaptiveKLCoefficient({ initial: 1, target: 0.1, horizon: 10 });
  assert.equal(a.update(1), b.update(100));
  assert.equal(a.value, 1.02);
  // A negative (k1) measurement clips at −0.2.
  assert.equal(new AdaptiveKLCoefficient({ initial: 1, target: 1, horizon: 1 }).update(-3), 0.8);
  // steps = 0 leaves it unchanged.
  assert.equal(a.update(5, 0), 1.02);
});

Deno.test("AdaptiveKLCoefficient follows the hand-written recurrence and respects its bounds", () => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 20; trial++) {
    const target = 0.01 + rng.uniform();
    const horizon = 1 + 4 * rng.uniform();
    const initial = 0.05 + rng.uniform();
    const min = initial * (0.5 + 0.4 * rng.uniform());
    const max = initial * (1.1 + rng.uniform());
    const ctl = new AdaptiveKLCoefficient({ initial, target, horizon, min, max });
    let v = initial;
    let hitMin = false;
    let hitMax = false;
    // A KL that drifts above and below the target, with several steps per update.
    for (let t = 0; t < 300; t++) {
      const kl = target * Math.exp(2 * Math.sin(t / 15) + 0.3 * rng.normal());
      const steps = 1 + rng.int(3);
      v = Math.min(max, Math.max(min, klStep(v, kl, target, horizon, steps)));
      hitMin ||= v === min;
      hitMax ||= v === max;
      assert.equal(ctl.update(kl, steps), v);
      assert.equal(ctl.value, v);
      assert.ok(v >= min && v <= max);
    }
    assert.ok(hitMin && hitMax, "the drift should reach both bounds");
  }
  // Default bounds: initial / 1000 and initial · 1000.
  const d = new AdaptiveKLCoefficient({ initial: 2, target: 1, horizon: 1 });
  assert.equal(d.min, 0.002);
  assert.equal(d.max, 2000);
  for (let t = 0; t < 200; t++) d.update(0);
  assert.equal(d.value, 0.002);
});

Deno.test("AdaptiveKLCoefficient rejects bad options and measurements", () => {
  const ok = { initial: 1, target: 0.1, horizon: 10 };
  for (const name of ["initial", "target", "horizon", "min", "max"] as const) {
    for (const bad of [0, -1, NaN, Infinity]) {
      assert.throws(
        () => new AdaptiveKLCoefficient({ ...ok, [name]: bad }),
        new RegExp(`${name} must be finite and > 0, got ${bad}`),
      );
    }
  }
  assert.throws(
    () => new AdaptiveKLCoefficient({ ...ok, min: 2 }),
    /needs min <= initial <= max, got 2, 1, 1000/,
  );
  assert.throws(
    () => new AdaptiveKLCoefficient({ ...ok, max: 0.5 }),
    /needs min <= initial <= max, got 0.001, 1, 0.5/,
  );
  const ctl = new AdaptiveKLCoefficient(ok);
  assert.throws(() => ctl.update(NaN), /measuredKL is NaN, not finite/);
  assert.throws(() => ctl.update(-Infinity), /measuredKL is -Infinity, not finite/);
  assert.throws(() => ctl.update(0.1, 50), /steps must be in \[0, 50\) \(5 · horizon\), got 50/);
  assert.throws(() => ctl.update(0.1, -1), /steps must be in .*got -1/);
  assert.equal(ctl.value, 1, "a rejected update leaves the value");
});
