import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.ts";
import {
  DEFAULT_FIGURE2_CONFIG,
  FIGURE2_COLUMNS,
  type Figure2Config,
  type Figure2Row,
  klLevels,
  mean,
  median,
  NOISE_MODELS,
  runFigure2,
  runFigure2Async,
  stdDev,
  summarizeFigure2,
  validateFigure2Config,
} from "../src/sim/mod.ts";

const SMALL: Figure2Config = {
  ...DEFAULT_FIGURE2_CONFIG,
  vocab: 200,
  trials: 12,
  levels: 4,
  lambdas: [0.5, 1, 1.5, 3],
  budgets: [0.8, 0.95],
};

const rows = runFigure2(SMALL);

function rowsAt(rs: readonly Figure2Row[], noise: string, rule: string, level: number) {
  return rs.filter((r) => r.noise === noise && r.rule === rule && r.kl_target === level);
}

Deno.test("one finite row per (noise, lambda or budget, level), in the documented order", () => {
  const levels = klLevels(SMALL.klMax, SMALL.levels);
  const expected: [string, string, number][] = [];
  for (const noise of SMALL.noise) {
    for (const l of SMALL.lambdas) for (const k of levels) expected.push([noise, `lambda ${l}`, k]);
    for (const b of SMALL.budgets) for (const k of levels) expected.push([noise, `budget ${b}`, k]);
  }
  assert.deepEqual(
    rows.map((
      r,
    ) => [r.noise, r.rule === "lambda" ? `lambda ${r.lambda}` : `budget ${r.budget}`, r.kl_target]),
    expected,
  );
  for (const r of rows) {
    assert.deepEqual(Object.keys(r), [...FIGURE2_COLUMNS]);
    for (const c of FIGURE2_COLUMNS) {
      const v = r[c];
      if (typeof v === "number") assert.ok(Number.isFinite(v), `${c} = ${v}`);
    }
    assert.equal(r.trials, SMALL.trials);
  }
});

Deno.test("KL before sits on the calibrated level for every trial", () => {
  for (const r of rows) {
    assert.ok(
      Math.abs(r.kl_before - r.kl_target) <= 1e-6 * r.kl_target,
      `${r.kl_before} vs ${r.kl_target}`,
    );
  }
});

Deno.test("at lambda = 1 the acceptance rate is 1 - TV(p, q) (Z = sum min(p, q))", () => {
  for (const r of rows.filter((r) => r.rule === "lambda" && r.lambda === 1)) {
    assert.ok(Math.abs(r.acceptance_mean - (1 - r.tv_before)) < 1e-12);
    // Pinsker: TV <= sqrt(KL / 2) for every trial, so the mean obeys it too (Jensen).
    assert.ok(1 - r.acceptance_mean <= Math.sqrt(r.kl_before / 2) + 1e-12);
  }
});

Deno.test("OBRS never moves away from the target and tightens as lambda grows (Thm 3.3, 3.4)", () => {
  for (const noise of SMALL.noise) {
    for (const level of klLevels(SMALL.klMax, SMALL.levels)) {
      const byLambda = rowsAt(rows, noise, "lambda", level);
      for (const r of byLambda) {
        assert.ok(r.kl_after <= r.kl_before * (1 + 1e-9), `${noise} λ=${r.lambda}`);
        assert.ok(r.kl_ratio_mean <= 1 + 1e-9 && r.kl_ratio_median <= 1 + 1e-9);
        assert.ok(r.acceptance_max <= 1 + 1e-12 && r.acceptance_min > 0);
        // Z <= 1/λ since Σ p/λ = 1/λ.
        assert.ok(r.acceptance_max <= 1 / r.lambda + 1e-12);
      }
      for (let i = 1; i < byLambda.length; i++) {
        const [a, b] = [byLambda[i - 1], byLambda[i]];
        assert.ok(
          b.kl_after <= a.kl_after + 1e-15,
          `${noise}: KL after rose from λ=${a.lambda} to ${b.lambda}`,
        );
        assert.ok(b.acceptance_mean <= a.acceptance_mean + 1e-15);
      }
    }
  }
});

Deno.test("budget rows accept at the budget on average and report the solved lambda", () => {
  const budgetRows = rows.filter((r) => r.rule === "budget");
  assert.equal(budgetRows.length, SMALL.noise.length * SMALL.budgets.length * SMALL.levels);
  for (const r of budgetRows) {
    assert.ok(
      Math.abs(r.acceptance_mean - r.budget!) < 1e-8,
      `${r.acceptance_mean} vs ${r.budget}`,
    );
    assert.ok(r.lambda > 0 && r.lambda <= 1 / r.budget!);
  }
});

Deno.test("the same seed gives the same rows; a model's rows do not depend on the others", () => {
  assert.deepEqual(runFigure2(SMALL), rows);
  const other = runFigure2({ ...SMALL, seed: 1 });
  assert.notDeepEqual(other.map((r) => r.acceptance_mean), rows.map((r) => r.acceptance_mean));
  const alone = runFigure2({ ...SMALL, noise: ["temperature"], lambdas: [1], budgets: [] });
  assert.deepEqual(
    alone,
    rows.filter((r) => r.noise === "temperature" && r.rule === "lambda" && r.lambda === 1),
  );
});

Deno.test("progress is reported once per (noise model, trial)", () => {
  const seen: [number, number][] = [];
  runFigure2({ ...SMALL, trials: 3, lambdas: [1], budgets: [] }, {
    onProgress: (d, t) => seen.push([d, t]),
  });
  const total = SMALL.noise.length * 3;
  assert.deepEqual(seen, Array.from({ length: total }, (_, i) => [i + 1, total]));
});

Deno.test("runFigure2Async gives the same rows, yields to timers and stops when aborted", async () => {
  let timerRan = false;
  setTimeout(() => (timerRan = true), 0);
  assert.deepEqual(await runFigure2Async(SMALL, { yieldEveryMs: 0 }), rows);
  assert.ok(timerRan, "the sweep never yielded to the event loop");

  const controller = new AbortController();
  let units = 0;
  const reason = new Error("stop here");
  await assert.rejects(
    runFigure2Async(SMALL, {
      signal: controller.signal,
      onProgress: (done) => {
        units = done;
        if (done === 5) controller.abort(reason);
      },
    }),
    (e) => e === reason,
  );
  assert.equal(units, 5);
  await assert.rejects(runFigure2Async(SMALL, { signal: AbortSignal.abort() }));
});

Deno.test("summarizeFigure2 matches the rows it summarises", () => {
  const s = summarizeFigure2(rows, 1);
  const at = rows.filter((r) => r.rule === "lambda" && r.lambda === 1);
  const acc = at.map((r) => r.acceptance_mean).sort((a, b) => a - b);
  assert.deepEqual(s.acceptanceRange, [acc[0], acc.at(-1)]);
  assert.equal(s.acceptanceWorstTrial, Math.min(...at.map((r) => r.acceptance_min)));
  assert.equal(s.medianKlRatio, median(at.map((r) => r.kl_ratio_median)));
  for (const m of NOISE_MODELS) {
    const ratios = at.filter((r) => r.noise === m).map((r) => r.kl_ratio_median);
    assert.deepEqual(s.klRatioRangeByNoise[m], [Math.min(...ratios), Math.max(...ratios)]);
  }
  assert.throws(() => summarizeFigure2(rows, 7), /no results at lambda = 7/);
});

Deno.test("klLevels are evenly spaced up to klMax and printable", () => {
  assert.deepEqual(klLevels(0.03, 10).map((x) => String(x)), [
    "0.003",
    "0.006",
    "0.009",
    "0.012",
    "0.015",
    "0.018",
    "0.021",
    "0.024",
    "0.027",
    "0.03",
  ]);
  const rng = new Rng(9);
  for (let i = 0; i < 20; i++) {
    const max = rng.uniform(), n = 1 + rng.int(30);
    const ls = klLevels(max, n);
    assert.equal(ls.length, n);
    ls.forEach((l, k) => assert.ok(Math.abs(l - ((k + 1) * max) / n) <= 1e-11 * max));
  }
});

Deno.test("invalid settings are refused with a sentence naming them", () => {
  const bad: [Partial<Figure2Config>, RegExp][] = [
    [{ vocab: 1 }, /vocab must be an integer >= 2/],
    [{ concentration: 0 }, /concentration must be a positive number/],
    [{ trials: 0 }, /trials must be >= 1/],
    [{ noise: [] }, /at least one noise model/],
    [{ noise: ["logit", "logit"] }, /must not repeat/],
    [{ lambdas: [1, -2] }, /lambda must be a positive number, got -2/],
    [{ lambdas: [], budgets: [] }, /at least one lambda or budget/],
    [{ budgets: [1.5] }, /budget must be in \(0, 1\]/],
    [{ klMax: NaN }, /klMax must be a positive number/],
    [{ levels: 2.5 }, /levels must be >= 1/],
    [{ seed: 0.5 }, /seed must be an integer/],
  ];
  for (const [patch, message] of bad) {
    assert.throws(() => validateFigure2Config({ ...SMALL, ...patch }), message);
  }
});

Deno.test("stats: mean, stdDev and median agree with their definitions on random data", () => {
  const rng = new Rng(10);
  for (const n of [1, 2, 3, 10, 101]) {
    const xs = Array.from({ length: n }, () => rng.normal() * 5 + 2);
    const m = mean(xs);
    assert.ok(Math.abs(xs.reduce((a, x) => a + (x - m), 0)) < 1e-9);
    const sd = stdDev(xs);
    if (n === 1) assert.equal(sd, 0);
    else assert.ok(Math.abs(sd * sd * (n - 1) - xs.reduce((a, x) => a + (x - m) ** 2, 0)) < 1e-9);
    const med = median(xs);
    const below = xs.filter((x) => x < med).length, above = xs.filter((x) => x > med).length;
    assert.ok(below <= n / 2 && above <= n / 2);
  }
  assert.throws(() => mean([]), /empty/);
  assert.throws(() => median([]), /empty/);
});
