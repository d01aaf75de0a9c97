import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.ts";
import type { Row } from "../src/report/table.ts";
import { lineChartSpec, renderSvg } from "../src/report/mod.ts";
import {
  aggregateOverSeeds,
  clipToRange,
  compareGroups,
  finalSummary,
  groupLabel,
  type RunSeries,
} from "../src/sweep/aggregate.ts";
import {
  holmAdjust,
  studentTQuantile,
  studentTTwoSided,
  welchInterval,
  welchTTest,
} from "../src/sweep/stats.ts";
import { metricRange } from "../src/cli/commands/sweep_report.ts";

const KEYS: Array<Record<string, string | number>> = [
  { mode: "tis" },
  { mode: "jackpot", staleness: 64 },
  { mode: "none" },
  { mode: "jackpot", staleness: 8 },
];
// Fields in key order, then numbers by value and strings in natural order ("mode" before
// "staleness"; an absent staleness before any).
const SORTED = ["mode=jackpot staleness=8", "mode=jackpot staleness=64", "mode=none", "mode=tis"];

/**
 * Random runs: groups with 1 to 4 of the seeds 0–5 (`mode=none` always has one; groups share some
 * seeds and not others, for the paired comparisons), runs of random length over
 * x = 0, 2, 4, … with some rows dropped (evaluations at different points), `reward` on a coarse
 * grid (ties), `kl` null or absent in some rows.
 */
function randomRuns(rng: Rng): RunSeries[] {
  const runs: RunSeries[] = [];
  for (const key of KEYS) {
    const seeds = rng.shuffle(Array.from({ length: 6 }, (_, i) => i));
    const count = key.mode === "none" ? 1 : 1 + rng.int(4);
    for (const seed of seeds.slice(0, count)) {
      const rows: Row[] = [];
      const length = 2 + rng.int(8);
      for (let i = 0; i < length; i++) {
        if (i > 0 && rng.uniform() < 0.15) continue;
        const row: Row = { iteration: 2 * i, reward: Math.round(4 * rng.uniform()) / 4 };
        const u = rng.uniform();
        if (u < 0.15) row.kl = null;
        else if (u > 0.25) row.kl = 0.01 * rng.uniform();
        rows.push(row);
      }
      runs.push({ key, seed, rows });
    }
  }
  return runs;
}

function shuffled(rng: Rng, runs: RunSeries[]): RunSeries[] {
  return rng.shuffle(runs.map((r) => ({ ...r, rows: rng.shuffle([...r.rows]) })));
}

function assertClose(actual: unknown, expected: number, what: string) {
  assert.equal(typeof actual, "number", `${what}: ${actual}`);
  const err = Math.abs((actual as number) - expected);
  assert.ok(err <= 1e-12 * Math.abs(expected) + 1e-15, `${what}: ${actual} vs ${expected}`);
}

// The float64 statistics of one cell, written out with loops.
function reference(values: number[], confidence: number) {
  const n = values.length;
  let s = 0;
  for (const v of values) s += v;
  const mean = s / n;
  if (n === 1) return { n, mean, std: null, sem: null, lo: null, hi: null };
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  const std = Math.sqrt(ss / (n - 1)), sem = std / Math.sqrt(n);
  const half = studentTQuantile((1 + confidence) / 2, n - 1) * sem;
  return { n, mean, std, sem, lo: mean - half, hi: mean + half };
}

function checkStats(row: Row, prefix: string, values: number[], confidence: number, what: string) {
  if (values.length === 0) {
    for (const s of ["mean", "std", "sem", "lo", "hi"]) assert.equal(row[`${prefix}${s}`], null);
    return;
  }
  const ref = reference(values, confidence);
  for (const s of ["mean", "std", "sem", "lo", "hi"] as const) {
    const expected = ref[s];
    if (expected === null) assert.equal(row[`${prefix}${s}`], null, `${what} ${s}`);
    else assertClose(row[`${prefix}${s}`], expected, `${what} ${prefix}${s}`);
  }
}

Deno.test("aggregateOverSeeds matches a loop over the raw values, per group and x", () => {
  const rng = new Rng(4);
  for (let trial = 0; trial < 6; trial++) {
    const runs = randomRuns(rng);
    const confidence = trial % 2 === 0 ? 0.95 : 0.8;
    const rows = aggregateOverSeeds(runs, {
      x: "iteration",
      metrics: ["reward", "kl"],
      confidence,
    });
    let k = 0;
    for (const label of SORTED) {
      const group = runs.filter((r) => groupLabel(r.key) === label);
      const xs = [...new Set(group.flatMap((r) => r.rows.map((row) => row.iteration as number)))]
        .sort((a, b) => a - b);
      for (const x of xs) {
        const row = rows[k++];
        assert.equal(row.group, label);
        assert.equal(row.iteration, x);
        assert.equal(row.mode, group[0].key.mode);
        assert.equal(row.staleness, group[0].key.staleness ?? null);
        const reached = group.map((r) => r.rows.find((q) => q.iteration === x))
          .filter((q) => q !== undefined);
        assert.equal(row.n, reached.length, `${label} x=${x} n`);
        for (const m of ["reward", "kl"]) {
          const values: number[] = [];
          for (const q of reached) if (typeof q[m] === "number") values.push(q[m] as number);
          assert.equal(row[`${m}_n`], values.length, `${label} x=${x} ${m}_n`);
          // Values enter in seed order; the reference sorts them the same way for exact sums.
          const bySeed = group.filter((r) => r.rows.some((q) => q.iteration === x && q[m] != null))
            .sort((a, b) => a.seed - b.seed)
            .map((r) => r.rows.find((q) => q.iteration === x)![m] as number);
          assert.deepEqual([...bySeed].sort(), [...values].sort());
          checkStats(row, `${m}_`, bySeed, confidence, `${label} x=${x}`);
        }
      }
    }
    assert.equal(rows.length, k, "one row per (group, x)");
    // Every row has the same columns (a CSV needs that).
    const columns = Object.keys(rows[0]).sort();
    for (const row of rows) assert.deepEqual(Object.keys(row).sort(), columns);
  }
});

Deno.test("aggregateOverSeeds, finalSummary and compareGroups do not depend on run or row order", () => {
  const rng = new Rng(8);
  for (let trial = 0; trial < 5; trial++) {
    const runs = randomRuns(rng);
    const agg = aggregateOverSeeds(runs, { x: "iteration", metrics: ["kl", "reward"] });
    const fin = finalSummary(runs, { metric: "reward", x: "iteration", last: 3 });
    const cmp = compareGroups(runs, { metric: "kl", x: "iteration", baseline: "mode=tis" });
    for (let s = 0; s < 3; s++) {
      const other = shuffled(rng, runs);
      assert.deepStrictEqual(
        aggregateOverSeeds(other, { x: "iteration", metrics: ["kl", "reward"] }),
        agg,
      );
      assert.deepStrictEqual(
        finalSummary(other, { metric: "reward", x: "iteration", last: 3 }),
        fin,
      );
      assert.deepStrictEqual(
        compareGroups(other, { metric: "kl", x: "iteration", baseline: "mode=tis" }),
        cmp,
      );
      // Column order too (CSV headers).
      assert.deepEqual(
        Object.keys(aggregateOverSeeds(other, { x: "iteration", metrics: ["kl"] })[0]),
        [
          "mode",
          "staleness",
          "group",
          "iteration",
          "n",
          "kl_n",
          "kl_mean",
          "kl_std",
          "kl_sem",
          "kl_lo",
          "kl_hi",
        ],
      );
    }
  }
});

// A run's final value, recomputed: its rows by x, the non-null values of the metric, the mean of
// the last `last`.
function referenceFinal(run: RunSeries, metric: string, last: number): number | null {
  const rows = [...run.rows].sort((a, b) => (a.iteration as number) - (b.iteration as number));
  const values: number[] = [];
  for (const row of rows) if (typeof row[metric] === "number") values.push(row[metric] as number);
  if (values.length === 0) return null;
  const tail = values.slice(Math.max(0, values.length - last));
  let s = 0;
  for (const v of tail) s += v;
  return s / tail.length;
}

Deno.test("finalSummary: per-run means of the last values, then mean and interval over seeds", () => {
  const rng = new Rng(15);
  for (let trial = 0; trial < 6; trial++) {
    const runs = randomRuns(rng);
    const last = 1 + rng.int(4);
    const metric = trial % 2 === 0 ? "reward" : "kl";
    const rows = finalSummary(runs, { metric, x: "iteration", last });
    assert.deepEqual(rows.map((r) => r.group), SORTED);
    for (const row of rows) {
      const group = runs.filter((r) => groupLabel(r.key) === row.group)
        .sort((a, b) => a.seed - b.seed);
      const finals = group.map((r) => ({ seed: r.seed, value: referenceFinal(r, metric, last) }));
      const values = finals.flatMap((f) => (f.value === null ? [] : [f.value]));
      assert.equal(row.runs, group.length);
      assert.equal(row[`${metric}_n`], values.length);
      checkStats(row, `${metric}_`, values, 0.95, `${row.group} final`);
      // per_seed lists every run in seed order with 3 significant digits, '-' for no value.
      const parsed = (row[`${metric}_per_seed`] as string).split(" ").map((s) => s.split(":"));
      assert.deepEqual(parsed.map(([s]) => s), finals.map((f) => `s${f.seed}`));
      parsed.forEach(([, v], i) => {
        const f = finals[i].value;
        if (f === null) assert.equal(v, "-");
        else assert.ok(Math.abs(Number(v) - f) <= 5e-3 * Math.abs(f), `per_seed ${v} vs ${f}`);
      });
    }
  }
});

// The paired comparison written out: the seeds both runs have a final value for, in seed order,
// the differences' mean, t = mean / (sd / √n), p from the t distribution with n − 1 df.
function referencePaired(runs: RunSeries[], group: string, baseline: string, last: number) {
  const finals = (label: string) =>
    new Map(
      runs.filter((r) => groupLabel(r.key) === label)
        .map((r) => [r.seed, referenceFinal(r, "reward", last)]),
    );
  const a = finals(group), b = finals(baseline);
  const d: number[] = [];
  for (const seed of [...a.keys()].sort((x, y) => x - y)) {
    const va = a.get(seed), vb = b.get(seed);
    if (typeof va === "number" && typeof vb === "number") d.push(va - vb);
  }
  const n = d.length;
  if (n === 0) return { n, diff: null, test: null };
  let s = 0;
  for (const v of d) s += v;
  const diff = s / n;
  if (n < 2 || d.every((v) => v === d[0])) {
    return {
      n,
      diff: d.every((v) => v === d[0]) ? d[0] : diff,
      test: null,
    };
  }
  let ss = 0;
  for (const v of d) ss += (v - diff) ** 2;
  const se = Math.sqrt(ss / (n - 1) / n), t = diff / se;
  const half = studentTQuantile(0.975, n - 1) * se;
  return { n, diff, test: { t, p: studentTTwoSided(t, n - 1), lo: diff - half, hi: diff + half } };
}

Deno.test("compareGroups: Welch and paired tests of each group's finals against the baseline, Holm-adjusted", () => {
  const rng = new Rng(23);
  let pairedTests = 0, nullPaired = 0;
  for (let trial = 0; trial < 12; trial++) {
    const runs = randomRuns(rng);
    const baseline = SORTED[trial % SORTED.length];
    // The baseline by label or by key.
    const key = KEYS.find((k) => groupLabel(k) === baseline)!;
    const rows = compareGroups(runs, {
      metric: "reward",
      x: "iteration",
      last: 2,
      baseline: trial % 2 === 0 ? baseline : key,
    });
    assert.deepEqual(rows.map((r) => r.group), SORTED.filter((g) => g !== baseline));
    const finalsOf = (label: string) =>
      runs.filter((r) => groupLabel(r.key) === label).sort((a, b) => a.seed - b.seed)
        .map((r) => referenceFinal(r, "reward", 2)).filter((v): v is number => v !== null);
    const b = finalsOf(baseline);
    for (const row of rows) {
      const a = finalsOf(row.group as string);
      assert.equal(row.baseline, baseline);
      assert.equal(row.metric, "reward");
      assert.equal(row.n, a.length);
      assert.equal(row.baseline_n, b.length);
      const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;
      const constant = (xs: number[]) => xs.every((v) => v === xs[0]);
      assertClose(row.diff, mean(a) - mean(b), `${row.group} diff`);
      if (a.length < 2 || b.length < 2 || (constant(a) && constant(b))) {
        for (const c of ["t", "df", "p", "diff_lo", "diff_hi"]) assert.equal(row[c], null, c);
        continue;
      }
      const w = welchTTest(a, b), ci = welchInterval(w);
      assertClose(row.t, w.t, "t");
      assertClose(row.df, w.df, "df");
      assertClose(row.p, w.p, "p");
      assertClose(row.diff_lo, ci.lo, "diff_lo");
      assertClose(row.diff_hi, ci.hi, "diff_hi");
    }
    for (const row of rows) {
      const ref = referencePaired(runs, row.group as string, baseline, 2);
      assert.equal(row.paired_n, ref.n, `${row.group} paired_n`);
      if (ref.diff === null) assert.equal(row.paired_diff, null);
      else assertClose(row.paired_diff, ref.diff, `${row.group} paired_diff`);
      const cols = ["paired_t", "paired_p", "paired_diff_lo", "paired_diff_hi"];
      if (ref.test === null) {
        nullPaired++;
        for (const c of cols) assert.equal(row[c], null, `${row.group} ${c}`);
        continue;
      }
      pairedTests++;
      assertClose(row.paired_t, ref.test.t, "paired_t");
      assertClose(row.paired_p, ref.test.p, "paired_p");
      assertClose(row.paired_diff_lo, ref.test.lo, "paired_diff_lo");
      assertClose(row.paired_diff_hi, ref.test.hi, "paired_diff_hi");
    }
    // Holm over this call's comparisons, nulls passed through.
    const ps = rows.map((r) => r.p as number | null);
    assert.deepEqual(rows.map((r) => r.p_holm), holmAdjust(ps));
    assert.deepEqual(
      rows.map((r) => r.paired_p_holm),
      holmAdjust(rows.map((r) => r.paired_p as number | null)),
    );
  }
  // The random sweeps exercised both branches.
  assert.ok(pairedTests >= 5 && nullPaired >= 5, `${pairedTests} tests, ${nullPaired} nulls`);
});

Deno.test("compareGroups pairs seeds over the intersection: a missing seed, a run without values", () => {
  // Per seed a large shared effect; jackpot is 0.03 above tis in every seed but seed 4, which it
  // lacks; seed 2 of jackpot has no value. The baseline has seeds 1–5.
  const shared = [0, 0.3, 0.1, 0.5, 0.2, 0.4];
  const run = (mode: string, seed: number, value: number | null): RunSeries => ({
    key: { mode },
    seed,
    rows: [{ it: 0, acc: value === null ? null : 0.1 }, { it: 1, acc: value }],
  });
  const noise = [0, 0.004, -0.002, 0.001, 0, 0.003];
  const runs: RunSeries[] = [
    ...[1, 2, 3, 4, 5].map((s) => run("tis", s, shared[s])),
    ...[1, 2, 3, 5].map((s) => run("jackpot", s, s === 2 ? null : shared[s] + 0.03 + noise[s])),
    run("none", 4, 0.9), // two runs (Welch is defined), sharing only seed 4: one pair
    run("none", 6, 0.7),
  ];
  const rows = compareGroups(runs, { metric: "acc", x: "it", last: 1, baseline: "mode=tis" });
  const jp = rows.find((r) => r.group === "mode=jackpot")!;
  // Welch uses every value: jackpot's seeds 1, 3, 5 against tis's 1–5.
  assert.equal(jp.n, 3);
  assert.equal(jp.baseline_n, 5);
  // Pairs: seeds 1, 3, 5 (seed 2 has no jackpot value, seed 4 no jackpot run).
  const d = [1, 3, 5].map((s) => shared[s] + 0.03 + noise[s] - shared[s]);
  const m = (d[0] + d[1] + d[2]) / 3;
  const sd = Math.sqrt(d.reduce((s, v) => s + (v - m) ** 2, 0) / 2);
  assert.equal(jp.paired_n, 3);
  assertClose(jp.paired_diff, m, "paired_diff");
  assertClose(jp.paired_t, m / (sd / Math.sqrt(3)), "paired_t");
  const half = studentTQuantile(0.975, 2) * sd / Math.sqrt(3);
  assertClose(jp.paired_diff_lo, m - half, "paired_diff_lo");
  assertClose(jp.paired_diff_hi, m + half, "paired_diff_hi");
  // Another confidence reaches both intervals.
  const [at90] = compareGroups(runs, {
    metric: "acc",
    x: "it",
    last: 1,
    baseline: "mode=tis",
    confidence: 0.9,
  }).filter((r) => r.group === "mode=jackpot");
  const half90 = studentTQuantile(0.95, 2) * sd / Math.sqrt(3);
  assertClose(at90.paired_diff_lo, m - half90, "paired_diff_lo at 90%");
  assertClose(at90.paired_diff_hi, m + half90, "paired_diff_hi at 90%");
  // The shared effect makes Welch blind and the paired test sure.
  assert.ok((jp.p as number) > 0.1, `Welch p ${jp.p}`);
  assert.ok((jp.paired_p as number) < 0.01, `paired p ${jp.paired_p}`);
  // One pair: a difference but no paired test.
  const none = rows.find((r) => r.group === "mode=none")!;
  assert.equal(none.paired_n, 1);
  assertClose(none.paired_diff, 0.9 - shared[4], "one pair's difference");
  for (const c of ["paired_t", "paired_p", "paired_diff_lo", "paired_diff_hi", "paired_p_holm"]) {
    assert.equal(none[c], null, c);
  }
  // Holm: two Welch tests (the smaller p doubled, the larger at least that), one paired test (its
  // own p).
  const [small, large] = [jp, none].sort((x, y) => (x.p as number) - (y.p as number));
  assertClose(small.p_holm, Math.min(1, 2 * (small.p as number)), "Holm of the smaller p");
  assertClose(large.p_holm, Math.max(small.p_holm as number, large.p as number), "Holm, larger");
  assert.equal(jp.paired_p_holm, jp.paired_p);
  // Equal differences (jackpot exactly 0.25 above in every seed, up to rounding): null, not NaN.
  const flat = [1, 2, 3].flatMap((
    s,
  ) => [run("tis", s, 0.1 * s), run("jackpot", s, 0.1 * s + 0.25)]);
  const [f] = compareGroups(flat, { metric: "acc", x: "it", last: 1, baseline: "mode=tis" });
  assert.equal(f.paired_n, 3);
  assertClose(f.paired_diff, 0.25, "constant difference");
  assert.deepEqual([f.paired_t, f.paired_p, f.paired_diff_lo, f.paired_diff_hi], [
    null,
    null,
    null,
    null,
  ]);
  assert.equal(typeof f.p, "number"); // Welch is defined: each side has a spread
  // Column order: the existing ones unchanged, the new ones after.
  assert.deepEqual(Object.keys(f), [
    "mode",
    "group",
    "metric",
    "baseline",
    "n",
    "baseline_n",
    "mean",
    "baseline_mean",
    "diff",
    "diff_lo",
    "diff_hi",
    "t",
    "df",
    "p",
    "p_holm",
    "paired_n",
    "paired_diff",
    "paired_diff_lo",
    "paired_diff_hi",
    "paired_t",
    "paired_p",
    "paired_p_holm",
  ]);
});

Deno.test("a single-seed group has null spread; n counts the runs that reached each x", () => {
  const runs: RunSeries[] = [
    { key: { mode: "tis" }, seed: 1, rows: [{ it: 0, r: 0.5 }, { it: 1, r: 0.7 }] },
    { key: { mode: "tis" }, seed: 2, rows: [{ it: 0, r: 0.25 }] },
    { key: { mode: "jackpot" }, seed: 1, rows: [{ it: 0, r: null }, { it: 1, r: 0.9 }] },
  ];
  const rows = aggregateOverSeeds(runs, { x: "it", metrics: ["r"] });
  assert.deepEqual(rows.map((r) => [r.group, r.it, r.n, r.r_n, r.r_mean]), [
    ["mode=jackpot", 0, 1, 0, null],
    ["mode=jackpot", 1, 1, 1, 0.9],
    ["mode=tis", 0, 2, 2, 0.375],
    ["mode=tis", 1, 1, 1, 0.7],
  ]);
  assert.deepEqual([rows[3].r_std, rows[3].r_lo, rows[3].r_hi], [null, null, null]);
  // groupOrder overrides the default order.
  const ordered = aggregateOverSeeds(runs, {
    x: "it",
    metrics: ["r"],
    groupOrder: ["mode=tis", "mode=jackpot"],
  });
  assert.deepEqual(ordered.map((r) => r.group), [
    "mode=tis",
    "mode=tis",
    "mode=jackpot",
    "mode=jackpot",
  ]);
  assert.equal(groupLabel({}), "all");
});

Deno.test("bad sweeps are refused with a message naming the problem", () => {
  const ok: RunSeries = { key: { mode: "tis" }, seed: 1, rows: [{ it: 0, r: 1 }] };
  const agg = (runs: RunSeries[], metrics = ["r"]) => () =>
    aggregateOverSeeds(runs, { x: "it", metrics });
  assert.throws(agg([]), /no runs to aggregate/);
  assert.throws(agg([ok, { ...ok }]), /group mode=tis has seed 1 twice/);
  assert.throws(agg([ok], ["reward"]), /metric 'reward' is a column of no run \(columns: it, r\)/);
  assert.throws(agg([ok], []), /no metrics/);
  assert.throws(
    agg([{ ...ok, rows: [{ it: 0, r: 1 }, { r: 2 }] }]),
    /run mode=tis seed 1: row 1 has no x column 'it'/,
  );
  assert.throws(
    agg([{ ...ok, rows: [{ it: 3, r: 1 }, { it: 3, r: 2 }] }]),
    /run mode=tis seed 1 has two rows with it = 3/,
  );
  assert.throws(
    agg([{ ...ok, rows: [{ it: 0, r: 1 }, { it: 4, r: NaN }] }]),
    /run mode=tis seed 1, it 4: 'r' is NaN, not a finite number/,
  );
  assert.throws(
    agg([{ ...ok, rows: [{ it: 0, r: Infinity }] }]),
    /'r' is Infinity/,
  );
  assert.throws(agg([{ ...ok, rows: [{ it: 0, r: "x" }] }]), /'r' is 'x', not a finite number/);
  assert.throws(
    agg([{ ...ok, key: { n: 3 } }]),
    /key field 'n' clashes with the output column 'n'/,
  );
  assert.throws(agg([{ ...ok, key: { r_lo: 3 } }]), /key field 'r_lo' clashes/);
  assert.throws(
    agg([{ ...ok, key: { group: "mode=tis" } }]),
    /key field 'group' clashes .* \(the group label is made from the key's settings\)/,
  );
  assert.throws(agg([ok, { ...ok, key: { mode: NaN } }]), /key field 'mode' is NaN/);
  assert.throws(
    agg([{ ...ok, key: { s: 8 } }, { ...ok, key: { s: "8" } }]),
    /two groups have the label 's=8'/,
  );
  assert.throws(
    () => aggregateOverSeeds([ok], { x: "it", metrics: ["r"], groupOrder: ["mode=none"] }),
    /groupOrder does not list group mode=tis/,
  );
  assert.throws(
    () => finalSummary([ok], { metric: "r", x: "it", last: 0 }),
    /last must be an integer >= 1/,
  );
  assert.throws(
    () => compareGroups([ok], { metric: "r", x: "it", baseline: "mode=jackpot" }),
    /baseline 'mode=jackpot' is not a group \(groups: mode=tis\)/,
  );
});

Deno.test("lineChartSpec draws the aggregated curves: one line per group, bands from m_lo/m_hi", async () => {
  const rng = new Rng(31);
  const runs = randomRuns(rng);
  const rows = aggregateOverSeeds(runs, { x: "iteration", metrics: ["reward"] });
  const spec = lineChartSpec({
    title: "reward over seeds",
    data: rows,
    x: { field: "iteration" },
    y: { field: "reward_mean" },
    color: { field: "group" },
    band: { lower: "reward_lo", upper: "reward_hi" },
  });
  const svg = await renderSvg(spec);
  // Each mark container holds the paths of one series; a line path starts with a move (d="M…").
  const containers = (mark: string) =>
    [...svg.matchAll(new RegExp(`<g class="mark-${mark} role-mark[^>]*>(.*?)</g>`, "g"))]
      .map((m) => (m[1].match(/<path[^>]* d="M/g) ?? []).length);
  const lines = containers("line");
  assert.equal(lines.length, SORTED.length, "one line mark per group");
  for (const paths of lines) assert.ok(paths >= 1, "every group's line has a path");
  // Bands: drawn for the groups with an interval somewhere (at least two seeds at some x).
  const withBand = new Set(rows.filter((r) => r.reward_lo !== null).map((r) => r.group)).size;
  const bands = containers("area").filter((paths) => paths >= 1).length;
  assert.equal(bands, withBand, "one band per group that has intervals");
});

Deno.test("ranges: intervals of fractions are clipped to [0, 1], means untouched, values checked", () => {
  // clipToRange against its definition on random intervals and ranges
  const rng = new Rng(77);
  for (let i = 0; i < 2000; i++) {
    const a = 4 * rng.uniform() - 2, b = a + 3 * rng.uniform();
    const low = 2 * rng.uniform() - 1, high = low + 0.01 + rng.uniform();
    const [lo, hi] = clipToRange(a, b, [low, high]);
    assert.ok(
      low <= lo && lo <= hi && hi <= high,
      `[${a}, ${b}] in [${low}, ${high}]: [${lo}, ${hi}]`,
    );
    if (a >= low && a <= high) assert.equal(lo, a);
    if (b >= low && b <= high) assert.equal(hi, b);
  }
  assert.deepEqual(clipToRange(0.5, 2, [0, Infinity]), [0.5, 2]);

  // three seeds near 1: the t-interval of the mean reaches past 1, the clipped one stops at 1
  const runs: RunSeries[] = [1, 0.9, 1].map((acc, seed) => ({
    key: { mode: "jackpot" },
    seed,
    rows: [{ iteration: 0, accuracy: acc, kl: acc - 0.5 }],
  }));
  const free = aggregateOverSeeds(runs, { x: "iteration", metrics: ["accuracy", "kl"] })[0];
  assert.ok((free.accuracy_hi as number) > 1, "the unclipped interval passes 1");
  const clipped = aggregateOverSeeds(runs, {
    x: "iteration",
    metrics: ["accuracy", "kl"],
    ranges: { accuracy: [0, 1] },
  })[0];
  assert.equal(clipped.accuracy_hi, 1);
  assert.equal(clipped.accuracy_lo, free.accuracy_lo);
  for (const k of ["accuracy_mean", "accuracy_std", "accuracy_sem", "kl_lo", "kl_hi", "kl_mean"]) {
    assert.equal(clipped[k], free[k], k);
  }
  const final = finalSummary(runs, { metric: "accuracy", x: "iteration", range: [0, 1] })[0];
  const finalFree = finalSummary(runs, { metric: "accuracy", x: "iteration" })[0];
  assert.equal(final.accuracy_hi, 1);
  assert.equal(final.accuracy_lo, finalFree.accuracy_lo);

  // a value outside its declared range is an error naming it, and so is an empty range
  const bad = [...runs, {
    key: { mode: "jackpot" },
    seed: 9,
    rows: [{ iteration: 0, accuracy: 1.5 }],
  }];
  assert.throws(
    () =>
      aggregateOverSeeds(bad, {
        x: "iteration",
        metrics: ["accuracy"],
        ranges: { accuracy: [0, 1] },
      }),
    /accuracy = 1.5 in mode=jackpot at iteration 0 is outside its range \[0, 1\]/,
  );
  assert.throws(
    () => finalSummary(bad, { metric: "accuracy", x: "iteration", range: [0, 1] }),
    /accuracy = 1.5 \(final\) in mode=jackpot is outside its range/,
  );
  assert.throws(
    () => finalSummary(runs, { metric: "accuracy", x: "iteration", range: [1, 0] }),
    /range of accuracy must be \[low, high\] with low < high/,
  );

  // the sweep report's fractions
  for (
    const m of ["policy_accuracy", "actor_pass_at_4", "policy_mean_reward", "reward", "accept_rate"]
  ) {
    assert.deepEqual(metricRange(m), [0, 1], m);
  }
  for (const m of ["k3", "ess", "kl_policy_actor", "entropy_policy", "accuracy_gap"]) {
    assert.equal(metricRange(m), undefined, m);
  }
});
