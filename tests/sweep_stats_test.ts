import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.ts";
import {
  equalDifferences,
  holmAdjust,
  meanConfidenceInterval,
  pairedInterval,
  pairedTTest,
  regularizedIncompleteBeta,
  studentTCdf,
  studentTDensity,
  studentTQuantile,
  studentTTwoSided,
  welchInterval,
  welchTTest,
} from "../src/sweep/stats.ts";

const DFS = [1, 2, 3, 7.5, 30, 1e6];
const PS = [
  1e-12,
  1e-6,
  0.001,
  0.01,
  0.025,
  0.1,
  0.3,
  0.4999,
  0.5,
  0.7,
  0.9,
  0.975,
  0.99,
  0.999999,
];

function assertClose(actual: number, expected: number, rel: number, abs: number, what: string) {
  const err = Math.abs(actual - expected);
  assert.ok(
    err <= rel * Math.abs(expected) + abs,
    `${what}: got ${actual}, expected ${expected} (error ${err})`,
  );
}

// The t CDF by numerical integration of the density, independent of the incomplete beta: with
// t = √ν tan θ the density's kernel (1 + t²/ν)^(−(ν+1)/2) dt becomes √ν cos^(ν−1) θ dθ, a smooth
// integrand on (−π/2, π/2), so Simpson's rule (float64) converges fast and the normalising constant
// is the same integral over the whole interval (no Γ function involved).
// For many degrees of freedom the integrand is a peak of width 1/√ν, so the range is cut where it
// is below e^-450 (a relative 1e-196 of the peak) to keep the panels fine.
function cdfBySimpson(t: number, df: number, panels = 20000): number {
  const f = (th: number) => Math.exp((df - 1) * Math.log(Math.cos(th)));
  const edge = Math.min(Math.PI / 2, 30 / Math.sqrt(df));
  const simpson = (a: number, b: number) => {
    const h = (b - a) / panels;
    let s = f(a) + f(b);
    for (let i = 1; i < panels; i++) s += (i % 2 === 1 ? 4 : 2) * f(a + i * h);
    return (s * h) / 3;
  };
  const theta = Math.max(-edge, Math.min(edge, Math.atan(t / Math.sqrt(df))));
  return simpson(-edge, theta) / simpson(-edge, edge);
}

// Φ(x) by Marsaglia's series Φ(x) = ½ + φ(x) Σ x^(2k+1) / (1·3·…·(2k+1)), which converges for all x
// and is accurate to ~1e-15 for |x| < 8; the normal quantile is then found by bisection.
function normalCdf(x: number): number {
  let term = x, sum = x;
  for (let k = 1; k < 500 && Math.abs(term) > 1e-18 * Math.abs(sum); k++) {
    term *= (x * x) / (2 * k + 1);
    sum += term;
  }
  return 0.5 + sum * Math.exp(-0.5 * x * x - 0.5 * Math.log(2 * Math.PI));
}

function normalQuantile(p: number): number {
  let lo = -10, hi = 10;
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (lo + hi);
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

Deno.test("studentTCdf(studentTQuantile(p, df)) = p across p and df, in the smaller tail's precision", () => {
  for (const df of DFS) {
    for (const p of PS) {
      const t = studentTQuantile(p, df);
      assert.ok(Number.isFinite(t), `quantile(${p}, ${df}) = ${t}`);
      assert.equal(Math.sign(t), Math.sign(p - 0.5), `sign of quantile(${p}, ${df})`);
      const c = studentTCdf(t, df);
      // The CDF is accurate to ~1e-13 relative up to df = 1e4 and ~1e-11 at df = 1e6 (see stats.ts).
      assertClose(c, p, df > 1e4 ? 1e-10 : 1e-12, 3e-16, `cdf(quantile(${p}, ${df}))`);
      // Symmetry: the (1 − p)-quantile is the negated p-quantile (p2 and 1 − p2 are both exact).
      const p2 = Math.max(p, 1 - p);
      const upper = studentTQuantile(p2, df), lower = studentTQuantile(1 - p2, df);
      assertClose(upper, -lower, 1e-12, 1e-15, `symmetry ${p} ${df}`);
    }
  }
});

Deno.test("studentTQuantile matches the Cauchy (df = 1) and df = 2 closed forms", () => {
  const grid = [1e-9, 1e-4, 0.01, 0.05, 0.2, 0.37, 0.5, 0.63, 0.8, 0.95, 0.99, 0.9999];
  for (const p of grid) {
    // tan(π(p − ½)), written as −cot(πp) so that p near 0 does not sit on tan's pole.
    const cauchy = p === 0.5 ? 0 : -1 / Math.tan(Math.PI * p);
    assertClose(studentTQuantile(p, 1), cauchy, 1e-10, 1e-15, `df=1 p=${p}`);
    const two = (2 * p - 1) / Math.sqrt(2 * p * (1 - p));
    assertClose(studentTQuantile(p, 2), two, 1e-10, 1e-15, `df=2 p=${p}`);
  }
  // Far tails: the quantile of df = 1 at p = 1e-300 is −1/(πp) to 1e-12.
  for (const p of [1e-30, 1e-150, 1e-300]) {
    assertClose(studentTQuantile(p, 1), -1 / (Math.PI * p), 1e-12, 0, `df=1 far tail ${p}`);
  }
});

Deno.test("studentTQuantile approaches the normal quantile as df grows (Cornish–Fisher term)", () => {
  const df = 1e6;
  for (const p of [0.001, 0.01, 0.025, 0.1, 0.3, 0.6, 0.9, 0.975, 0.995]) {
    const z = normalQuantile(p);
    // t_ν(p) = z + (z³ + z)/(4ν) + O(ν⁻²): at ν = 1e6 the remainder is ~1e-11.
    const expected = z + (z ** 3 + z) / (4 * df);
    assertClose(studentTQuantile(p, df), expected, 1e-10, 1e-10, `df=1e6 p=${p}`);
    // Without the correction term they differ by more than the tolerance: the check has power.
    if (Math.abs(z) > 1) assert.ok(Math.abs(studentTQuantile(p, df) - z) > 1e-7);
  }
});

Deno.test("studentTCdf agrees with Simpson integration of the density", () => {
  for (const df of [1, 2, 3, 7.5, 30]) {
    for (const t of [-30, -4, -1.3, -0.2, 0, 0.05, 0.7, 2.5, 9]) {
      assertClose(studentTCdf(t, df), cdfBySimpson(t, df), 0, 1e-11, `cdf(${t}, ${df})`);
    }
  }
  // ±∞ are the distribution's ends.
  assert.equal(studentTCdf(Infinity, 3), 1);
  assert.equal(studentTCdf(-Infinity, 3), 0);
});

Deno.test("studentTCdf keeps its precision for many degrees of freedom, also where it switches forms", () => {
  // The incomplete beta switches between its direct and complementary fraction at
  // x = (a + 1)/(a + b + 2), i.e. at t*² = ν (b + 1)/(a + 1) with a = ν/2, b = ½; for large ν the
  // direct fraction is ill-conditioned there (it lost 1e-11 before the evaluation chose by error).
  // Measured: ≤ 1e-12 at ν = 1e4; at ν = 1e6 ≤ 3e-12 for t ≤ 3 and ≤ 2.5e-11 in the tails beyond,
  // where both forms are mediocre.
  for (const [df, nearTol, farTol] of [[1e4, 2e-12, 2e-12], [1e6, 1e-11, 5e-11]]) {
    const tStar = Math.sqrt(df * 1.5 / (df / 2 + 1));
    const near = [tStar * (1 - 1e-12), tStar, tStar * (1 + 1e-12), 1.9, 2.2, 2.5, 3];
    for (const [ts, tol] of [[near, nearTol], [[0.3, 1, 3.5, 4, 4.5, 6], farTol]] as const) {
      for (const t of ts) {
        // The lower tail, where both are far from 1 and relative errors are visible.
        const expected = cdfBySimpson(-t, df, 40000);
        assertClose(studentTCdf(-t, df), expected, tol, 0, `cdf(${-t}, ${df})`);
      }
    }
  }
});

Deno.test("studentTDensity is the derivative of studentTCdf (central differences)", () => {
  for (const df of [1, 2.5, 7.5, 30, 1e6]) {
    for (const t of [-5, -1.1, 0, 0.3, 2, 6]) {
      const h = 1e-5;
      const fd = (studentTCdf(t + h, df) - studentTCdf(t - h, df)) / (2 * h);
      assertClose(studentTDensity(t, df), fd, 1e-6, 1e-11, `density(${t}, ${df})`);
    }
  }
  assertClose(studentTDensity(0, 1), 1 / Math.PI, 1e-14, 0, "Cauchy density at 0");
});

Deno.test("regularizedIncompleteBeta matches closed forms and the binomial sum", () => {
  const rng = new Rng(5);
  for (let i = 0; i < 40; i++) {
    const x = rng.uniform();
    const a = 0.2 + 20 * rng.uniform();
    assertClose(
      regularizedIncompleteBeta(x, a, 1),
      x ** a,
      1e-13,
      1e-300,
      `I_x(a, 1) x=${x} a=${a}`,
    );
    assertClose(regularizedIncompleteBeta(x, 1, a), 1 - (1 - x) ** a, 1e-13, 1e-16, `I_x(1, b)`);
    const b = 0.2 + 50 * rng.uniform();
    const sum = regularizedIncompleteBeta(x, a, b) + regularizedIncompleteBeta(1 - x, b, a);
    assertClose(sum, 1, 0, 1e-13, `symmetry x=${x} a=${a} b=${b}`);
  }
  // For integers, I_x(a, b) = P(Binomial(a + b − 1, x) ≥ a).
  for (const [a, b] of [[1, 1], [3, 5], [12, 4], [30, 31], [2, 60]]) {
    const n = a + b - 1;
    for (const x of [0.01, 0.2, 0.5, 0.77, 0.97]) {
      let sum = 0;
      for (let j = a; j <= n; j++) {
        let lnChoose = 0;
        for (let k = 1; k <= j; k++) lnChoose += Math.log((n - j + k) / k);
        sum += Math.exp(lnChoose + j * Math.log(x) + (n - j) * Math.log1p(-x));
      }
      assertClose(regularizedIncompleteBeta(x, a, b), sum, 1e-11, 1e-15, `I_${x}(${a}, ${b})`);
    }
  }
  assert.equal(regularizedIncompleteBeta(0, 2, 3), 0);
  assert.equal(regularizedIncompleteBeta(1, 2, 3), 1);
  assert.throws(() => regularizedIncompleteBeta(1.5, 2, 3), /x must be in \[0, 1\]/);
  assert.throws(() => regularizedIncompleteBeta(0.5, 0, 3), /a must be finite and > 0/);
});

Deno.test("t functions refuse bad p, df and t", () => {
  assert.throws(() => studentTQuantile(0, 3), /p must be in \(0, 1\), got 0/);
  assert.throws(() => studentTQuantile(1, 3), /p must be in \(0, 1\)/);
  assert.throws(() => studentTQuantile(NaN, 3), /p must be in \(0, 1\), got NaN/);
  assert.throws(
    () => studentTQuantile(0.3, 0.5),
    /degrees of freedom must be a finite number >= 1/,
  );
  assert.throws(() => studentTQuantile(0.3, Infinity), /degrees of freedom/);
  assert.throws(() => studentTCdf(NaN, 3), /t is NaN/);
  assert.throws(() => studentTCdf(1, NaN), /degrees of freedom .* got NaN/);
});

Deno.test("meanConfidenceInterval matches a direct recomputation and handles n = 1", () => {
  const rng = new Rng(11);
  for (const n of [2, 3, 4, 7, 25]) {
    const xs = Array.from({ length: n }, () => 3 + 2 * rng.normal());
    if (n === 4) xs[1] = xs[2]; // a tie
    for (const confidence of [0.5, 0.9, 0.95, 0.99]) {
      let s = 0;
      for (const x of xs) s += x;
      const m = s / n;
      let ss = 0;
      for (const x of xs) ss += (x - m) ** 2;
      const std = Math.sqrt(ss / (n - 1));
      const half = studentTQuantile((1 + confidence) / 2, n - 1) * std / Math.sqrt(n);
      const ci = meanConfidenceInterval(xs, confidence);
      assert.equal(ci.n, n);
      assertClose(ci.mean, m, 1e-14, 0, "mean");
      assertClose(ci.std!, std, 1e-13, 0, "std");
      assertClose(ci.sem!, std / Math.sqrt(n), 1e-13, 0, "sem");
      assertClose(ci.lo!, m - half, 1e-13, 1e-15, "lo");
      assertClose(ci.hi!, m + half, 1e-13, 1e-15, "hi");
    }
  }
  assert.deepEqual(meanConfidenceInterval([0.7]), {
    n: 1,
    mean: 0.7,
    std: null,
    sem: null,
    lo: null,
    hi: null,
  });
  // A constant sample is exact: 0.1 + 0.1 + 0.1 = 0.30000000000000004 must not leak a spread.
  const flat = meanConfidenceInterval([0.1, 0.1, 0.1]);
  assert.deepEqual([flat.mean, flat.std, flat.sem, flat.lo, flat.hi], [0.1, 0, 0, 0.1, 0.1]);
  assert.throws(() => meanConfidenceInterval([]), /no values/);
  assert.throws(() => meanConfidenceInterval([1, 2, NaN]), /value 2 is NaN/);
  assert.throws(() => meanConfidenceInterval([1, -Infinity]), /value 1 is -Infinity/);
  assert.throws(() => meanConfidenceInterval([1, 2], 1), /confidence must be in \(0, 1\)/);
});

Deno.test("the 95% t interval covers the true mean in 95% of seeded normal samples", () => {
  const rng = new Rng(2026);
  const reps = 2000, mu = 1.7, sigma = 0.4;
  const band = 4 * Math.sqrt((0.95 * 0.05) / reps); // 4 binomial standard deviations
  for (const n of [3, 10]) {
    let covered = 0, coveredByZ = 0;
    for (let r = 0; r < reps; r++) {
      const xs = Array.from({ length: n }, () => mu + sigma * rng.normal());
      const ci = meanConfidenceInterval(xs);
      if (ci.lo! <= mu && mu <= ci.hi!) covered++;
      if (Math.abs(ci.mean - mu) <= 1.959964 * ci.sem!) coveredByZ++;
    }
    const rate = covered / reps;
    assert.ok(Math.abs(rate - 0.95) <= band, `n=${n}: coverage ${rate} outside 0.95 ± ${band}`);
    // The test can tell a wrong interval: the normal (z) interval undercovers at n = 3.
    if (n === 3) assert.ok(coveredByZ / reps < 0.95 - band, `z coverage ${coveredByZ / reps}`);
  }
});

function directWelch(a: number[], b: number[]) {
  const stats = (xs: number[]) => {
    let s = 0;
    for (const x of xs) s += x;
    const m = s / xs.length;
    let ss = 0;
    for (const x of xs) ss += (x - m) ** 2;
    return { m, v: ss / (xs.length - 1) / xs.length, n: xs.length };
  };
  const A = stats(a), B = stats(b);
  const t = (A.m - B.m) / Math.sqrt(A.v + B.v);
  const df = (A.v + B.v) ** 2 / (A.v ** 2 / (A.n - 1) + B.v ** 2 / (B.n - 1));
  return { t, df, diff: A.m - B.m };
}

Deno.test("welchTTest matches the direct formulas; its p matches the CDF and Simpson", () => {
  const rng = new Rng(99);
  for (let trial = 0; trial < 12; trial++) {
    const na = 2 + rng.int(8), nb = 2 + rng.int(8);
    const a = Array.from({ length: na }, () => 0.8 + 0.05 * rng.normal());
    const shift = trial % 3 === 0 ? 0 : 0.1 * rng.normal();
    const b = Array.from(
      { length: nb },
      () => 0.8 + shift + (0.01 + 0.1 * rng.uniform()) * rng.normal(),
    );
    const w = welchTTest(a, b);
    const d = directWelch(a, b);
    assertClose(w.t, d.t, 1e-12, 1e-14, "t");
    assertClose(w.df, d.df, 1e-12, 0, "df");
    assertClose(w.diff, d.diff, 1e-12, 1e-16, "diff");
    assert.ok(w.df >= Math.min(na, nb) - 1 && w.df <= na + nb - 2, `df ${w.df} out of its range`);
    assertClose(w.p, 2 * studentTCdf(-Math.abs(w.t), w.df), 1e-12, 1e-16, "p vs cdf");
    // Simpson's integrand cos^(ν−1) has a singular derivative at ±π/2 for fractional ν − 1 < 2,
    // which slows its convergence: compare where it is accurate.
    if (w.df >= 3) {
      assertClose(w.p, 2 * cdfBySimpson(-Math.abs(w.t), w.df), 0, 1e-9, "p vs Simpson");
    }
    // Swapping the samples flips t and keeps p.
    const s = welchTTest(b, a);
    assertClose(s.t, -w.t, 1e-14, 0, "swap t");
    assertClose(s.p, w.p, 1e-14, 0, "swap p");
    // The interval of the difference excludes 0 exactly when p < 0.05.
    const ci = welchInterval(w);
    assert.equal(ci.lo > 0 || ci.hi < 0, w.p < 0.05, `interval [${ci.lo}, ${ci.hi}] vs p ${w.p}`);
  }
  // Tiny p-values keep their precision (a 1 − CDF would round them to 0).
  const far = welchTTest([1, 1.001, 0.999], [0, 0.001, -0.001]);
  assert.ok(far.p > 0 && far.p < 1e-4, `p ${far.p}`);
  assertClose(far.p, studentTTwoSided(far.t, far.df), 1e-14, 0, "far p");
});

Deno.test("welchTTest: one constant sample gives df = n − 1 of the other; bad input is refused", () => {
  const a = [0.5, 0.5, 0.5, 0.5];
  const b = [0.4, 0.45, 0.52];
  const w = welchTTest(a, b);
  assertClose(w.df, b.length - 1, 1e-14, 0, "df with a constant sample");
  assert.throws(() => welchTTest([1, 1], [2, 2, 2]), /both samples have zero variance/);
  assert.throws(() => welchTTest([0.1, 0.1, 0.1], [0.7, 0.7]), /both samples have zero variance/);
  const exact = welchTTest([0.1, 0.1, 0.1], [0.2, 0.3]);
  assertClose(exact.df, 1, 1e-15, 0, "df with a constant 0.1 sample");
  assert.throws(() => welchTTest([1], [2, 3]), /sample a needs at least 2 values, got 1/);
  assert.throws(() => welchTTest([1, 2], [2, NaN, 3]), /sample b: value 1 is NaN/);
});

// The paired test written out with loops: the one-sample t statistic of the differences.
function directPaired(a: number[], b: number[]) {
  const n = a.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i] - b[i];
  const m = s / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (a[i] - b[i] - m) ** 2;
  const se = Math.sqrt(ss / (n - 1) / n);
  return { diff: m, se, t: m / se, df: n - 1 };
}

// Two-sided p of Student's t in closed form for df = 1 (Cauchy) and df = 2.
function closedFormP(t: number, df: number): number | null {
  if (df === 1) return 1 - (2 / Math.PI) * Math.atan(Math.abs(t));
  if (df === 2) return 1 - Math.abs(t) / Math.sqrt(2 + t * t);
  return null;
}

Deno.test("pairedTTest matches the direct formulas on random pairs; p matches closed forms and Simpson", () => {
  const rng = new Rng(314);
  for (let trial = 0; trial < 300; trial++) {
    const n = 2 + rng.int(11);
    const shared = Array.from({ length: n }, () => rng.normal());
    const shift = trial % 4 === 0 ? 0 : 0.3 * rng.normal();
    const kind = trial % 5; // 0: coarse grid (ties), 1: one peaked pair, others: plain noise
    const noise = () => (kind === 0 ? Math.round(4 * rng.normal()) / 8 : 0.2 * rng.normal());
    const a = shared.map((s) => s + shift + noise());
    const b = shared.map((s) => s + noise());
    if (kind === 1) a[rng.int(n)] += 50;
    if (equalDifferences(a, b)) {
      assert.throws(() => pairedTTest(a, b), /differences are equal/);
      continue;
    }
    const r = pairedTTest(a, b), d = directPaired(a, b);
    assert.equal(r.n, n);
    assert.equal(r.df, n - 1);
    assertClose(r.diff, d.diff, 1e-12, 1e-15, "diff");
    assertClose(r.se, d.se, 1e-12, 0, "se");
    assertClose(r.t, d.t, 1e-12, 1e-14, "t");
    assert.ok(r.p >= 0 && r.p <= 1, `p ${r.p}`);
    const closed = closedFormP(r.t, r.df);
    if (closed !== null) assertClose(r.p, closed, 1e-10, 1e-15, `closed-form p, df=${r.df}`);
    else assertClose(r.p, 2 * cdfBySimpson(-Math.abs(r.t), r.df), 0, 1e-9, "p vs Simpson");
    // The interval of the mean difference is the t interval of the differences, and it excludes 0
    // exactly when p < 1 − confidence.
    for (const confidence of [0.9, 0.95, 0.99]) {
      const ci = pairedInterval(r, confidence);
      const one = meanConfidenceInterval(a.map((v, i) => v - b[i]), confidence);
      assertClose(ci.lo, one.lo!, 1e-12, 1e-14, "lo");
      assertClose(ci.hi, one.hi!, 1e-12, 1e-14, "hi");
      assert.equal(ci.lo > 0 || ci.hi < 0, r.p < 1 - confidence, `[${ci.lo}, ${ci.hi}] p=${r.p}`);
    }
    // Swapping the sides flips t and the interval and keeps p; the order of the pairs is moot.
    const s = pairedTTest(b, a);
    assertClose(s.t, -r.t, 1e-12, 1e-14, "swap t");
    assertClose(s.p, r.p, 1e-12, 1e-16, "swap p");
    const perm = rng.shuffle(Array.from({ length: n }, (_, i) => i));
    const q = pairedTTest(perm.map((i) => a[i]), perm.map((i) => b[i]));
    assertClose(q.p, r.p, 1e-10, 1e-16, "permuted pairs");
  }
});

Deno.test("pairedTTest on Student's sleep data (Cushny & Peebles 1905), by hand and as R reports it", () => {
  // Extra hours of sleep of 10 patients under two drugs (R's `sleep` data set).
  const drug1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
  const drug2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];
  // By hand: the differences are 1.2 2.4 1.3 1.3 0 1 1.8 0.8 4.6 1.4, their sum 15.8, their mean
  // 1.58; the squared deviations from it sum to 13.616, so sd = √(13.616 / 9) and
  // t = 1.58 / √(13.616 / 90) with 9 degrees of freedom.
  const r = pairedTTest(drug2, drug1);
  assertClose(r.diff, 1.58, 1e-13, 0, "mean difference");
  assertClose(r.std, Math.sqrt(13.616 / 9), 1e-13, 0, "sd of the differences");
  assertClose(r.t, 1.58 / Math.sqrt(13.616 / 90), 1e-12, 0, "t");
  assert.equal(r.df, 9);
  // p from the formula, P(|T| ≥ t) = 2 ∫ density, independent of the incomplete beta.
  assertClose(r.p, 2 * cdfBySimpson(-r.t, 9), 1e-9, 0, "p vs Simpson");
  // R 4.x, `t.test(extra ~ group, data = sleep, paired = TRUE)` (the example of ?sleep) prints
  // t = -4.0621, df = 9, p-value = 0.002833, 95 percent CI -2.4598858 -0.7001142 (group 1 − 2).
  assertClose(r.t, 4.0621, 0, 5e-5, "R's t");
  assertClose(r.p, 0.002833, 0, 5e-7, "R's p");
  const ci = pairedInterval(r);
  assertClose(ci.lo, 0.7001142, 0, 5e-8, "R's lower end");
  assertClose(ci.hi, 2.4598858, 0, 5e-8, "R's upper end");
  // The same data unpaired: R's Welch test prints t = -1.8608, df = 17.776, p-value = 0.07939.
  // Pairing removes the patients' own variation, which dominates here.
  const w = welchTTest(drug2, drug1);
  assertClose(w.t, 1.8608, 0, 5e-5, "R's Welch t");
  assertClose(w.df, 17.776, 0, 5e-4, "R's Welch df");
  assertClose(w.p, 0.07939, 0, 5e-6, "R's Welch p");
});

Deno.test("the paired test has power where a shared per-seed effect hides a difference from Welch", () => {
  const rng = new Rng(77);
  const reps = 2000, n = 4, alpha = 0.05;
  const band = 4 * Math.sqrt((alpha * (1 - alpha)) / reps); // 4 binomial standard deviations
  // Per seed a shared effect of sd `shared` (the seed's prompts and initial weights), plus the
  // run's own noise (sd 0.1) on each side; the method adds `delta`.
  const rejections = (shared: number, delta: number) => {
    let paired = 0, welch = 0;
    for (let r = 0; r < reps; r++) {
      const s = Array.from({ length: n }, () => shared * rng.normal());
      const a = s.map((v) => v + delta + 0.1 * rng.normal());
      const b = s.map((v) => v + 0.1 * rng.normal());
      if (pairedTTest(a, b).p < alpha) paired++;
      if (welchTTest(a, b).p < alpha) welch++;
    }
    return { paired: paired / reps, welch: welch / reps };
  };
  // A small true difference (0.2) under a large shared effect (sd 1): the differences have sd
  // 0.14, so the paired test rejects often; Welch sees samples of sd ~1 and almost never does.
  const power = rejections(1, 0.2);
  assert.ok(power.paired > 0.3, `paired power ${power.paired}`);
  assert.ok(power.paired > power.welch + 0.25, `paired ${power.paired} vs Welch ${power.welch}`);
  // Under the null without a shared effect (independent samples), both reject at ≈ α.
  const indep = rejections(0, 0);
  assert.ok(Math.abs(indep.paired - alpha) <= band, `paired size ${indep.paired}`);
  assert.ok(Math.abs(indep.welch - alpha) <= band, `Welch size ${indep.welch}`);
  // Under the null with the shared effect the paired test still rejects at ≈ α; Welch, whose
  // samples are now positively correlated, is conservative (rejects less).
  const corr = rejections(1, 0);
  assert.ok(Math.abs(corr.paired - alpha) <= band, `paired size ${corr.paired}`);
  assert.ok(corr.welch <= alpha + band, `Welch size ${corr.welch}`);
});

Deno.test("pairedTTest: equal differences, unpaired lengths and bad values are refused, never NaN", () => {
  // 0.7 − 0.3 and 0.8 − 0.4 differ in the last bit: equal up to rounding, not a t of 1e15.
  assert.notEqual(0.7 - 0.3, 0.8 - 0.4);
  assert.ok(equalDifferences([0.7, 0.8, 0.5], [0.3, 0.4, 0.1]));
  assert.throws(() => pairedTTest([0.7, 0.8, 0.5], [0.3, 0.4, 0.1]), /all 3 differences are equal/);
  assert.throws(() => pairedTTest([1, 2, 3], [1, 2, 3]), /differences are equal \(0\)/);
  // A real difference one part in 1e9 is not rounding.
  assert.ok(!equalDifferences([0.7, 0.8], [0.3, 0.4 + 1e-9]));
  const tiny = pairedTTest([0.7, 0.8, 0.6], [0.3, 0.4 + 1e-9, 0.2]);
  assert.ok(Number.isFinite(tiny.t) && Number.isFinite(tiny.p), `t ${tiny.t} p ${tiny.p}`);
  assert.ok(equalDifferences([], []));
  assert.throws(() => equalDifferences([1], [1, 2]), /must pair up, got 1 and 2/);
  assert.throws(() => pairedTTest([1, 2, 3], [1, 2]), /must pair up, got 3 and 2 values/);
  assert.throws(() => pairedTTest([1], [2]), /needs at least 2 pairs, got 1/);
  assert.throws(() => pairedTTest([1, NaN], [2, 3]), /sample a: value 1 is NaN/);
  assert.throws(() => pairedTTest([1, 2], [Infinity, 3]), /sample b: value 0 is Infinity/);
  const ok = pairedTTest([1, 2], [0, 0.5]);
  assert.throws(() => pairedInterval(ok, 1.5), /confidence must be in \(0, 1\)/);
});

// Holm's procedure run literally at level α: sort the p-values, reject while p₍ⱼ₎ ≤ α/(m − j + 1)
// (j from 1), stop at the first that is not. Written (m − j + 1) p₍ⱼ₎ ≤ α so that the levels
// below, which are those products, compare exactly.
function holmRejects(ps: number[], alpha: number): boolean[] {
  const order = ps.map((_, i) => i).sort((i, j) => ps[i] - ps[j]);
  const rejected = ps.map(() => false);
  for (let j = 0; j < order.length; j++) {
    if (!((ps.length - j) * ps[order[j]] <= alpha)) break;
    rejected[order[j]] = true;
  }
  return rejected;
}

// The adjusted p-value by its definition: the smallest α at which the procedure rejects the
// hypothesis (capped at 1). Rejection sets only grow with α and change where α = (m − j + 1) p₍ⱼ₎,
// so trying those levels in increasing order finds it.
function bruteHolm(ps: (number | null)[]): (number | null)[] {
  const idx = ps.flatMap((p, i) => (p === null ? [] : [i]));
  const vals = idx.map((i) => ps[i] as number);
  const sorted = [...vals].sort((x, y) => x - y);
  const levels = [...new Set(sorted.map((p, j) => (sorted.length - j) * p))].sort((x, y) => x - y);
  const out: (number | null)[] = ps.map(() => null);
  idx.forEach((i, k) => {
    const level = levels.find((alpha) => holmRejects(vals, alpha)[k]);
    out[i] = Math.min(1, level ?? 1);
  });
  return out;
}

Deno.test("holmAdjust matches the procedure run at every level, with ties, nulls, 0 and 1", () => {
  const rng = new Rng(4242);
  const grid = [0, 0.001, 0.01, 0.02, 0.04, 0.05, 0.2, 0.5, 1];
  for (let trial = 0; trial < 400; trial++) {
    const m = rng.int(9);
    const ps: (number | null)[] = Array.from({ length: m }, () => {
      const u = rng.uniform();
      if (u < 0.15) return null;
      if (u < 0.5) return grid[rng.int(grid.length)]; // ties
      return rng.uniform() ** 3; // many small p-values
    });
    const adj = holmAdjust(ps);
    const ref = bruteHolm(ps);
    assert.equal(adj.length, m);
    ps.forEach((p, i) => {
      if (p === null) return assert.equal(adj[i], null, `null at ${i} of ${ps}`);
      assertClose(adj[i]!, ref[i]!, 1e-15, 0, `adjusted p ${i} of [${ps}]`);
      assert.ok(adj[i]! >= p && adj[i]! <= 1, `bounds at ${i}`);
      // Monotone: a smaller p never gets a larger adjusted value; tied p-values get equal ones.
      ps.forEach((q, j) => {
        if (q !== null && q <= p) assert.ok(adj[j]! <= adj[i]!, `monotone ${j} vs ${i}`);
      });
    });
    // Rejecting adjusted p ≤ α is Holm's procedure at level α.
    const present = ps.filter((p): p is number => p !== null);
    const adjPresent = adj.filter((p): p is number => p !== null);
    for (const alpha of [0.01, 0.05, 0.1]) {
      assert.deepEqual(adjPresent.map((q) => q <= alpha), holmRejects(present, alpha));
    }
  }
  assert.deepEqual(holmAdjust([]), []);
  assert.deepEqual(holmAdjust([null, 0.3]), [null, 0.3]);
  assert.throws(() => holmAdjust([0.1, NaN]), /p-value 1 is NaN, not a number in \[0, 1\]/);
  assert.throws(() => holmAdjust([1.5]), /p-value 0 is 1.5/);
  assert.throws(() => holmAdjust([-0.1]), /p-value 0 is -0.1/);
});
