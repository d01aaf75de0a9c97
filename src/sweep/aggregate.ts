/**
 * A sweep's runs summarised over their seeds: the mean and t confidence interval of each metric at
 * each iteration (the curves with error bands of the paper's training figures), each group's final
 * value, and tests of each group's final value against a baseline group: Welch's (unpaired) and
 * the paired t test over the seeds both groups ran, each with Holm-adjusted p-values.
 *
 * A *group* is the set of runs that share their settings (`key`) and differ only in their seed.
 * Outputs are plain rows ({@linkcode Row}), ready for `rowsToTable`, CSV and `lineChartSpec`.
 * Everything is float64 and independent of the order of the runs and of their rows: values are
 * always combined in seed order, rows in x order.
 *
 * @module
 */
import type { Row } from "../report/table.ts";
import { mean } from "../util/stats.ts";
import {
  equalDifferences,
  holmAdjust,
  isConstant,
  meanConfidenceInterval,
  pairedInterval,
  pairedTTest,
  welchInterval,
  welchTTest,
} from "./stats.ts";

/** One run: the settings that define its group, its seed and its per-iteration rows. */
export interface RunSeries {
  /** The group's settings, e.g. `{ mode: "tis" }` or `{ mode: "jackpot", staleness: 8 }`. */
  key: Record<string, string | number>;
  /** The run's seed; unique within its group. */
  seed: number;
  /** Its rows (e.g. iterations.csv or evals.csv), each with a finite number in the x column. */
  rows: readonly Row[];
}

/** Options of {@linkcode aggregateOverSeeds}. */
export interface AggregateOptions {
  /** The column the rows are indexed by, e.g. `iteration`; kept under its own name. */
  x: string;
  /** The columns to summarise, e.g. `["reward", "k3"]`. */
  metrics: readonly string[];
  /** Confidence of the intervals (default 0.95). */
  confidence?: number;
  /** Group labels in the order the output lists them (default: by key values, see below). */
  groupOrder?: readonly string[];
  /**
   * The range each listed metric's values lie in (an accuracy: `[0, 1]`): its interval is clipped
   * to it (see {@linkcode clipToRange}); a value outside it is an error.
   */
  ranges?: Readonly<Record<string, MetricRange>>;
}

/** The closed range `[low, high]` a metric's values lie in; either end may be infinite. */
export type MetricRange = readonly [number, number];

/**
 * `[lo, hi]` clipped to `range`. A t-interval on values that lie in a range can reach past it (an
 * accuracy of 0.98 ± 0.05 over three seeds), though the mean it brackets cannot: clipping drops only
 * impossible values, so the interval keeps its coverage, and a table no longer shows 103%.
 *
 * @example
 * ```ts
 * clipToRange(0.93, 1.03, [0, 1]); // [0.93, 1]
 * ```
 */
export function clipToRange(lo: number, hi: number, range: MetricRange): [number, number] {
  return [Math.min(Math.max(lo, range[0]), range[1]), Math.max(Math.min(hi, range[1]), range[0])];
}

function checkRange(metric: string, range: MetricRange): void {
  const [a, b] = range;
  if (Number.isNaN(a) || Number.isNaN(b) || !(a < b)) {
    throw new RangeError(
      `the range of ${metric} must be [low, high] with low < high, got [${a}, ${b}]`,
    );
  }
}

// Mean and t-interval of `values`, the interval clipped to the metric's range when it has one.
function interval(
  values: number[],
  confidence: number | undefined,
  metric: string,
  range: MetricRange | undefined,
  at: string,
): ReturnType<typeof meanConfidenceInterval> {
  const ci = meanConfidenceInterval(values, confidence);
  if (range === undefined) return ci;
  for (const v of values) {
    if (v < range[0] || v > range[1]) {
      throw new RangeError(
        `${metric} = ${v} ${at} is outside its range [${range[0]}, ${range[1]}]`,
      );
    }
  }
  if (ci.lo === null || ci.hi === null) return ci;
  const [lo, hi] = clipToRange(ci.lo, ci.hi, range);
  return { ...ci, lo, hi };
}

/** Options of {@linkcode finalSummary}. */
export interface FinalOptions {
  /** The column whose final value is summarised, e.g. `accuracy`. */
  metric: string;
  /** The column the rows are ordered by, e.g. `iteration`. */
  x: string;
  /** A run's final value is the mean of its last `last` values of the metric (default 5). */
  last?: number;
  /** Confidence of the intervals (default 0.95). */
  confidence?: number;
  /** Group labels in the order the output lists them. */
  groupOrder?: readonly string[];
  /** The range the metric's values lie in: its interval is clipped to it (see {@linkcode clipToRange}). */
  range?: MetricRange;
}

/** Options of {@linkcode compareGroups}. */
export interface CompareOptions extends FinalOptions {
  /** The group the others are compared with: its label (`mode=tis`) or its key (`{ mode: "tis" }`). */
  baseline: string | Record<string, string | number>;
}

/**
 * A group's label: its settings as `name=value`, space-separated in key order (the same text as
 * the sweep plan's group labels), or `all` for an empty key.
 *
 * @example
 * ```ts
 * groupLabel({ mode: "jackpot", staleness: 8 }); // "mode=jackpot staleness=8"
 * ```
 */
export function groupLabel(key: Record<string, string | number>): string {
  const parts = Object.entries(key).map(([k, v]) => `${k}=${v}`);
  return parts.length > 0 ? parts.join(" ") : "all";
}

interface Group {
  key: Record<string, string | number>;
  label: string;
  /** Its runs in seed order, each with its rows in x order. */
  runs: Array<{ seed: number; rows: Row[] }>;
}

interface Grouping {
  groups: Group[];
  /** Every key field, in output order. */
  fields: string[];
}

function where(group: string, seed: number): string {
  return `run ${group} seed ${seed}`;
}

function xValue(row: Row, x: string, run: string, i: number): number {
  const v = row[x];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new RangeError(
      `${run}: row ${i} has ${v === undefined ? "no" : `a non-numeric (${v})`} x column '${x}'`,
    );
  }
  return v;
}

// A metric value: null or absent is "no value" (skipped), anything but a finite number is refused
// (a NaN or ±∞ is a run that diverged; skipping it would make that run look healthy).
function metricValue(row: Row, metric: string, run: string, x: string, xv: number): number | null {
  const v = row[metric];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new RangeError(
      `${run}, ${x} ${xv}: '${metric}' is ${typeof v === "string" ? `'${v}'` : v}, ` +
        "not a finite number (use null for a missing value)",
    );
  }
  return v;
}

// Orders values of one key field: absent first, then numbers by value, then strings in natural
// order ("8x" before "64x"), with plain code-unit order breaking the collator's ties.
const collator = new Intl.Collator("en", { numeric: true });
function compareValues(a: string | number | undefined, b: string | number | undefined): number {
  if (a === b) return 0;
  if (a === undefined || b === undefined) return a === undefined ? -1 : 1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "number" || typeof b === "number") return typeof a === "number" ? -1 : 1;
  return collator.compare(a, b) || (a < b ? -1 : 1);
}

// `columns`: the output's other columns, which a key field must not shadow.
function groupRuns(
  runs: readonly RunSeries[],
  x: string,
  groupOrder: readonly string[] | undefined,
  columns: readonly string[],
): Grouping {
  const taken = new Set(["group", x, ...columns]);
  if (runs.length === 0) throw new RangeError("no runs to aggregate");
  const byIdentity = new Map<string, Group>();
  const labels = new Map<string, string>(); // label → identity
  for (const run of runs) {
    for (const [k, v] of Object.entries(run.key)) {
      if (taken.has(k)) {
        throw new RangeError(
          `key field '${k}' clashes with the output column '${k}'` +
            (k === "group" ? " (the group label is made from the key's settings)" : "; rename it"),
        );
      }
      if (typeof v === "number" ? !Number.isFinite(v) : typeof v !== "string") {
        throw new RangeError(`key field '${k}' is ${v}; it must be a string or a finite number`);
      }
    }
    if (typeof run.seed !== "number" || !Number.isFinite(run.seed)) {
      throw new RangeError(`run ${groupLabel(run.key)} has seed ${run.seed}, not a finite number`);
    }
    // Identity keeps field order and value types: { s: 8 } and { s: "8" } are different groups.
    const identity = JSON.stringify(Object.entries(run.key));
    const label = groupLabel(run.key);
    const other = labels.get(label);
    if (other !== undefined && other !== identity) {
      throw new RangeError(
        `two groups have the label '${label}' (keys ${other} and ${identity}); ` +
          "use one value type and one field order per setting",
      );
    }
    labels.set(label, identity);
    let group = byIdentity.get(identity);
    if (!group) {
      group = { key: run.key, label, runs: [] };
      byIdentity.set(identity, group);
    }
    if (group.runs.some((r) => r.seed === run.seed)) {
      throw new RangeError(`group ${label} has seed ${run.seed} twice`);
    }
    const name = where(label, run.seed);
    const indexed = run.rows.map((row, i) => ({ row, xv: xValue(row, x, name, i) }));
    indexed.sort((p, q) => p.xv - q.xv);
    for (let i = 1; i < indexed.length; i++) {
      if (indexed[i].xv === indexed[i - 1].xv) {
        throw new RangeError(`${name} has two rows with ${x} = ${indexed[i].xv}`);
      }
    }
    group.runs.push({ seed: run.seed, rows: indexed.map((r) => r.row) });
  }
  const groups = [...byIdentity.values()];
  for (const g of groups) g.runs.sort((a, b) => a.seed - b.seed);

  // Fields in the order keys list them (ties by name), so that the output does not depend on
  // which run came first.
  const position = new Map<string, number>();
  for (const g of groups) {
    Object.keys(g.key).forEach((k, i) => position.set(k, Math.min(position.get(k) ?? i, i)));
  }
  const fields = [...position.keys()].sort((a, b) =>
    position.get(a)! - position.get(b)! || (a < b ? -1 : a > b ? 1 : 0)
  );
  if (groupOrder) {
    const rank = new Map(groupOrder.map((label, i) => [label, i]));
    for (const g of groups) {
      if (!rank.has(g.label)) throw new RangeError(`groupOrder does not list group ${g.label}`);
    }
    groups.sort((a, b) => rank.get(a.label)! - rank.get(b.label)!);
  } else {
    groups.sort((a, b) => {
      for (const f of fields) {
        const c = compareValues(a.key[f], b.key[f]);
        if (c !== 0) return c;
      }
      return 0;
    });
  }
  return { groups, fields };
}

function checkMetricPresent(runs: readonly RunSeries[], metric: string): void {
  if (typeof metric !== "string" || metric === "") {
    throw new RangeError(`metric names must be non-empty strings, got '${metric}'`);
  }
  for (const run of runs) for (const row of run.rows) if (metric in row) return;
  const columns = new Set<string>();
  for (const run of runs) {
    for (const row of run.rows) for (const c of Object.keys(row)) columns.add(c);
  }
  throw new RangeError(
    `metric '${metric}' is a column of no run (columns: ${[...columns].join(", ") || "none"})`,
  );
}

function keyColumns(g: Group, fields: readonly string[]): Row {
  const row: Row = {};
  for (const f of fields) row[f] = g.key[f] ?? null;
  row.group = g.label;
  return row;
}

/**
 * Mean and t confidence interval of each metric over a group's seeds, at each x: one row per
 * (group, x value) in group then x order, with the key fields (null where a group's key lacks
 * one), `group` (its label), the x column under its own name, `n` (runs that reached this x) and
 * per metric `m_n` (runs with a value there), `m_mean`, `m_std`, `m_sem`, `m_lo`, `m_hi`. A null
 * or absent metric value is skipped, not counted as 0; statistics that a single value does not
 * define are null. Runs of different lengths: each x aggregates the runs that reached it.
 *
 * Groups are ordered by `groupOrder`, or else field by field (fields in key order; numbers by
 * value, strings in natural order). Throws a RangeError naming the problem for: no runs, a
 * (group, seed) twice, a metric that is a column of no run, a row without a finite x, two rows
 * of a run with the same x, a metric value that is not a finite number or null.
 *
 * @example
 * ```ts
 * const rows = aggregateOverSeeds(runs, { x: "iteration", metrics: ["reward"] });
 * lineChartSpec({
 *   title: "reward", data: rows, x: { field: "iteration" }, y: { field: "reward_mean" },
 *   color: { field: "group" }, band: { lower: "reward_lo", upper: "reward_hi" },
 * });
 * ```
 */
export function aggregateOverSeeds(runs: readonly RunSeries[], options: AggregateOptions): Row[] {
  const { x, metrics, confidence = 0.95, groupOrder, ranges = {} } = options;
  if (metrics.length === 0) throw new RangeError("aggregateOverSeeds: no metrics asked for");
  for (const [m, r] of Object.entries(ranges)) checkRange(m, r);
  if (new Set(metrics).size !== metrics.length) {
    throw new RangeError(`aggregateOverSeeds: a metric is listed twice (${metrics.join(", ")})`);
  }
  const stats = ["n", "mean", "std", "sem", "lo", "hi"];
  const columns = ["n", ...metrics.flatMap((m) => stats.map((s) => `${m}_${s}`))];
  const { groups, fields } = groupRuns(runs, x, groupOrder, columns);
  for (const m of metrics) checkMetricPresent(runs, m);
  const out: Row[] = [];
  for (const g of groups) {
    const xs = new Set<number>();
    for (const r of g.runs) for (const row of r.rows) xs.add(row[x] as number);
    // Each run's rows are in x order: walk them with one cursor per run.
    const cursor = g.runs.map(() => 0);
    for (const xv of [...xs].sort((a, b) => a - b)) {
      const reached: Array<{ seed: number; row: Row }> = [];
      g.runs.forEach((r, i) => {
        if (cursor[i] < r.rows.length && r.rows[cursor[i]][x] === xv) {
          reached.push({ seed: r.seed, row: r.rows[cursor[i]++] });
        }
      });
      const row: Row = { ...keyColumns(g, fields), [x]: xv, n: reached.length };
      for (const m of metrics) {
        const values: number[] = [];
        for (const { seed, row: src } of reached) {
          const v = metricValue(src, m, where(g.label, seed), x, xv);
          if (v !== null) values.push(v);
        }
        const ci = values.length > 0
          ? interval(values, confidence, m, ranges[m], `in ${g.label} at ${x} ${xv}`)
          : null;
        row[`${m}_n`] = values.length;
        row[`${m}_mean`] = ci?.mean ?? null;
        row[`${m}_std`] = ci?.std ?? null;
        row[`${m}_sem`] = ci?.sem ?? null;
        row[`${m}_lo`] = ci?.lo ?? null;
        row[`${m}_hi`] = ci?.hi ?? null;
      }
      out.push(row);
    }
  }
  return out;
}

interface GroupFinals {
  group: Group;
  /** Per run in seed order: the mean of its last values, or null when it has none. */
  finals: Array<{ seed: number; value: number | null }>;
}

function groupFinals(
  runs: readonly RunSeries[],
  options: FinalOptions,
  columns: readonly string[],
): { fields: string[]; groups: GroupFinals[] } {
  const { metric, x, last = 5, groupOrder } = options;
  if (!Number.isInteger(last) || last < 1) {
    throw new RangeError(`last must be an integer >= 1, got ${last}`);
  }
  const { groups, fields } = groupRuns(runs, x, groupOrder, columns);
  checkMetricPresent(runs, metric);
  return {
    fields,
    groups: groups.map((group) => ({
      group,
      finals: group.runs.map((r) => {
        const values: number[] = [];
        for (const row of r.rows) {
          const v = metricValue(row, metric, where(group.label, r.seed), x, row[x] as number);
          if (v !== null) values.push(v);
        }
        return { seed: r.seed, value: values.length > 0 ? mean(values.slice(-last)) : null };
      }),
    })),
  };
}

function present(finals: GroupFinals["finals"]): number[] {
  return finals.flatMap((f) => (f.value === null ? [] : [f.value]));
}

/**
 * Each group's final value over its seeds: per run, the mean of its last `last` non-null values
 * of `metric` (in x order; fewer if it has fewer); across the group's runs, with `m` the metric:
 * `m_n` (runs with a value), `m_mean`, `m_std`, `m_sem`, `m_lo`, `m_hi` (null where undefined)
 * and `m_per_seed`, e.g. `s1:0.812 s2:0.790 s3:-` (3 significant digits, `-` for a run without a
 * value). Rows carry the key fields, `group` and `runs` (the group's runs), in group order; the
 * metric-named columns let the summaries of several metrics be merged into one row per group.
 *
 * @example
 * ```ts
 * const finals = finalSummary(runs, { metric: "accuracy", x: "iteration", last: 3 });
 * // [{ mode: "tis", group: "mode=tis", runs: 3, accuracy_n: 3, accuracy_mean: 0.71, … }, …]
 * ```
 */
export function finalSummary(runs: readonly RunSeries[], options: FinalOptions): Row[] {
  const m = options.metric;
  const stats = ["n", "mean", "std", "sem", "lo", "hi", "per_seed"];
  const { fields, groups } = groupFinals(runs, options, ["runs", ...stats.map((s) => `${m}_${s}`)]);
  if (options.range) checkRange(m, options.range);
  return groups.map(({ group, finals }) => {
    const values = present(finals);
    const ci = values.length > 0
      ? interval(values, options.confidence, m, options.range, `(final) in ${group.label}`)
      : null;
    return {
      ...keyColumns(group, fields),
      runs: finals.length,
      [`${m}_n`]: values.length,
      [`${m}_mean`]: ci?.mean ?? null,
      [`${m}_std`]: ci?.std ?? null,
      [`${m}_sem`]: ci?.sem ?? null,
      [`${m}_lo`]: ci?.lo ?? null,
      [`${m}_hi`]: ci?.hi ?? null,
      [`${m}_per_seed`]: finals
        .map((f) => `s${f.seed}:${f.value === null ? "-" : f.value.toPrecision(3)}`)
        .join(" "),
    };
  });
}

/**
 * Each group's final values (as in {@linkcode finalSummary}) against the `baseline` group's, by
 * Welch's test and by the paired t test: one row per other group, in group order, with
 *
 * - the key fields, `group`, `metric`, `baseline`;
 * - Welch (all runs with a value on each side): `n`, `baseline_n`, `mean`, `baseline_mean`, `diff`
 *   (mean − baseline mean), its confidence interval `diff_lo`/`diff_hi`, `t`, `df`, `p`
 *   (two-sided) and `p_holm`;
 * - paired by seed (the seeds both groups have a value for): `paired_n` (pairs), `paired_diff`
 *   (mean of the per-seed differences), its interval `paired_diff_lo`/`paired_diff_hi`,
 *   `paired_t`, `paired_p` (two-sided, df = paired_n − 1) and `paired_p_holm`.
 *
 * Runs with the same seed share their seed's randomness (evaluation prompts, prompt order, initial
 * weights), so the paired test cancels it and has more power when it matters; it uses only the
 * seeds both groups finished. A statistic is null where undefined: fewer than 2 values on a side
 * or both sides without variance (Welch), fewer than 2 pairs or all differences equal (paired);
 * `paired_diff` is null only without pairs. `p_holm` and `paired_p_holm` are Holm–Bonferroni
 * adjusted over the rows of this call ({@linkcode holmAdjust}; nulls do not count), so a p below
 * 0.05 there holds for the whole table; `p` and `paired_p` are per comparison.
 *
 * @example
 * ```ts
 * compareGroups(runs, { metric: "accuracy", x: "iteration", baseline: "mode=tis" });
 * ```
 */
export function compareGroups(runs: readonly RunSeries[], options: CompareOptions): Row[] {
  const columns = [
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
  ];
  const { fields, groups: all } = groupFinals(runs, options, columns);
  const wanted = typeof options.baseline === "string"
    ? options.baseline
    : groupLabel(options.baseline);
  const base = all.find((g) => g.group.label === wanted);
  if (!base) {
    throw new RangeError(
      `baseline '${wanted}' is not a group (groups: ${all.map((g) => g.group.label).join(", ")})`,
    );
  }
  const b = present(base.finals);
  const baseBySeed = new Map(base.finals.map((f) => [f.seed, f.value]));
  const rows = all.filter((g) => g !== base).map(({ group, finals }): Row => {
    const a = present(finals);
    const ma = a.length > 0 ? mean(a) : null, mb = b.length > 0 ? mean(b) : null;
    let test: { diff_lo: number; diff_hi: number; t: number; df: number; p: number } | null = null;
    if (a.length >= 2 && b.length >= 2 && !(isConstant(a) && isConstant(b))) {
      const w = welchTTest(a, b);
      const ci = welchInterval(w, options.confidence);
      test = { diff_lo: ci.lo, diff_hi: ci.hi, t: w.t, df: w.df, p: w.p };
    }
    return {
      ...keyColumns(group, fields),
      metric: options.metric,
      baseline: base.group.label,
      n: a.length,
      baseline_n: b.length,
      mean: ma,
      baseline_mean: mb,
      diff: ma !== null && mb !== null ? ma - mb : null,
      diff_lo: test?.diff_lo ?? null,
      diff_hi: test?.diff_hi ?? null,
      t: test?.t ?? null,
      df: test?.df ?? null,
      p: test?.p ?? null,
      p_holm: null,
      ...pairedColumns(finals, baseBySeed, options.confidence),
      paired_p_holm: null,
    };
  });
  const holm = holmAdjust(rows.map((r) => r.p as number | null));
  const pairedHolm = holmAdjust(rows.map((r) => r.paired_p as number | null));
  rows.forEach((r, i) => {
    r.p_holm = holm[i];
    r.paired_p_holm = pairedHolm[i];
  });
  return rows;
}

// The paired columns of one comparison: finals and baseline values of the seeds both have, in
// seed order (finals are in seed order).
function pairedColumns(
  finals: GroupFinals["finals"],
  baseBySeed: ReadonlyMap<number, number | null>,
  confidence: number | undefined,
): Row {
  const a: number[] = [], b: number[] = [];
  for (const f of finals) {
    const v = baseBySeed.get(f.seed);
    if (f.value !== null && v !== undefined && v !== null) {
      a.push(f.value);
      b.push(v);
    }
  }
  const d = a.map((v, i) => v - b[i]);
  let test: { lo: number; hi: number; t: number; p: number } | null = null;
  if (a.length >= 2 && !equalDifferences(a, b)) {
    const r = pairedTTest(a, b);
    test = { ...pairedInterval(r, confidence), t: r.t, p: r.p };
  }
  return {
    paired_n: a.length,
    // A constant list of differences is its own mean (see isConstant).
    paired_diff: d.length === 0 ? null : isConstant(d) ? d[0] : mean(d),
    paired_diff_lo: test?.lo ?? null,
    paired_diff_hi: test?.hi ?? null,
    paired_t: test?.t ?? null,
    paired_p: test?.p ?? null,
  };
}
