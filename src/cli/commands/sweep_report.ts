/**
 * The report of a sweep: every finished run's tables gathered, each group aggregated over its
 * seeds, and the paper's comparisons written as tables, charts with 95% bands, and one page.
 *
 * Written into the sweep folder:
 * ```
 * summary/curves.csv/json       per group × rollouts: mean, sd, sem, 95% interval, n of each metric
 * summary/evals.csv/json        the same for the evaluations (accuracy of both models)
 * summary/final.csv/json        per group: final accuracy and late-training means, over seeds
 * summary/comparisons.csv/json  each group's final accuracy against the baseline group: Welch's
 *                               test and the paired t test by seed, p-values also Holm-adjusted
 * summary/runs.csv/json         every run: status, final accuracy, seconds
 * summary/*.vl.json, *.svg      charts; index.html the page
 * ```
 * The x axis is rollouts (sequences sampled so far), not iterations, so that sweeps whose groups
 * sample different batch sizes (the staleness preset) share one axis.
 *
 * @module
 */
import {
  htmlReport,
  lineChartSpec,
  renderSvg,
  type ReportSection,
  type Row,
  rowsToTable,
  tableToHtml,
  writeFileAtomic,
  writeJsonAtomic,
  writeTable,
} from "../../report/mod.ts";
import { expandSweep, groupLabels, type SweepPlan, type SweepRun } from "../../sweep/plan.ts";
import {
  aggregateOverSeeds,
  compareGroups,
  finalSummary,
  type MetricRange,
  type RunSeries,
} from "../../sweep/mod.ts";
import { isComplete, planTask, pretrainDir, runDir } from "./sweep_run.ts";

/** Iteration metrics the report aggregates (those present in at least one run). */
export const CURVE_METRICS = [
  "reward",
  "accept_rate",
  "k3",
  "kl_policy_actor",
  "ess",
  "clip_fraction",
  "entropy_policy",
] as const;

/**
 * The range of a metric whose values are fractions or means of rewards in [0, 1] (accuracy,
 * Pass@k, reward, acceptance, clip fraction): its t-intervals are clipped to [0, 1], since a
 * mean there cannot leave it. Undefined for the others (KL estimates, ESS, entropy).
 */
export function metricRange(metric: string): MetricRange | undefined {
  const fraction = /(^|_)accuracy$|_pass_at_\d+$|(^|_)mean_reward$/.test(metric) ||
    ["reward", "solved", "accept_rate", "clip_fraction", "stopped"].includes(metric);
  return fraction ? [0, 1] : undefined;
}

const rangesOf = (metrics: readonly string[]): Record<string, MetricRange> =>
  Object.fromEntries(metrics.flatMap((m) => {
    const r = metricRange(m);
    return r ? [[m, r]] : [];
  }));

/** Number of last iterations whose mean is a run's late-training value. */
export const LATE_ITERATIONS = 5;

/** What {@link writeSweepReport} found and wrote. */
export interface SweepReport {
  /** Every run with its status. */
  runs: { id: string; status: "done" | "failed" | "missing" }[];
  /** Runs not finished (failed or missing). */
  missing: number;
  /** Whether every run finished. */
  complete: boolean;
  /** One line for the console. */
  summary: string;
  /** Final-accuracy rows per group. */
  final: Row[];
  /** The rows of `comparisons.csv` (see `compareGroups`); empty without a finished baseline. */
  comparisons: Row[];
}

interface FinishedRun {
  run: SweepRun;
  iterations: Row[];
  evals: Row[];
  seconds: number;
}

async function readRows(path: string): Promise<Row[]> {
  return JSON.parse(await Deno.readTextFile(path)) as Row[];
}

// A run's rows with `rollouts`: sequences sampled before the row's numbers were taken.
async function readRun(dir: string, run: SweepRun): Promise<FinishedRun> {
  const folder = runDir(dir, run);
  const config = JSON.parse(await Deno.readTextFile(`${folder}/config.json`));
  const t = config.config.trainer;
  const perIteration = t.prompts * t.groupSize;
  const iterations = (await readRows(`${folder}/iterations.json`)).map((r): Row => ({
    ...r,
    rollouts: ((r.iteration as number) + 1) * perIteration,
  }));
  const evals = (await readRows(`${folder}/evals.json`)).map((r): Row => ({
    ...r,
    rollouts: (r.iteration as number) * perIteration,
  }));
  const seconds = iterations.reduce(
    (s, r) => s + ((r.rollout_seconds as number) ?? 0) + ((r.train_seconds as number) ?? 0),
    0,
  );
  return { run, iterations, evals, seconds };
}

const present = (rows: readonly Row[][], metric: string) =>
  rows.some((rs) => rs.some((r) => typeof r[metric] === "number" && Number.isFinite(r[metric])));

const series = (runs: readonly FinishedRun[], pick: (r: FinishedRun) => Row[]): RunSeries[] =>
  runs.map((r) => ({ key: r.run.group, seed: r.run.seed, rows: pick(r) }));

const fmt = (x: unknown, digits = 3) => typeof x === "number" ? x.toFixed(digits) : "–";
const pct = (x: unknown) => typeof x === "number" ? `${(100 * x).toFixed(1)}%` : "–";
// A difference of fractions in percentage points, signed.
const pts = (x: unknown) =>
  typeof x === "number" ? `${x >= 0 ? "+" : "−"}${Math.abs(100 * x).toFixed(1)}` : "–";
const pValue = (x: unknown) =>
  typeof x !== "number" ? "–" : x < 0.001 ? x.toExponential(1) : x.toFixed(3);

/**
 * Reads every finished run of the plan, aggregates, and writes `summary/`, the charts and
 * `index.html` into `dir`. Unfinished runs are left out and counted (a partial report is useful
 * while a sweep runs on a cluster); groups with a single finished seed get no interval.
 */
export async function writeSweepReport(plan: SweepPlan, dir: string): Promise<SweepReport> {
  const all = expandSweep(plan);
  const finished: FinishedRun[] = [];
  const statuses: SweepReport["runs"] = [];
  for (const run of all) {
    if (await isComplete(runDir(dir, run))) {
      finished.push(await readRun(dir, run));
      statuses.push({ id: run.id, status: "done" });
    } else {
      const failed = await Deno.stat(`${runDir(dir, run)}/error.txt`).then(() => true, () => false);
      statuses.push({ id: run.id, status: failed ? "failed" : "missing" });
    }
  }
  const missing = all.length - finished.length;
  const out = `${dir}/summary`;
  await Deno.mkdir(out, { recursive: true });
  const runRows: Row[] = [];
  for (const [i, run] of all.entries()) {
    const f = finished.find((x) => x.run === run);
    const lastEval = f?.evals[f.evals.length - 1];
    runRows.push({
      index: run.index,
      id: run.id,
      group: run.groupLabel,
      seed: run.seed,
      status: statuses[i].status,
      final_policy_accuracy: (lastEval?.policy_accuracy as number | undefined) ?? null,
      final_actor_accuracy: (lastEval?.actor_accuracy as number | undefined) ?? null,
      seconds: f?.seconds ?? null,
    });
  }
  await writeTable(out, "runs", rowsToTable(runRows));
  const sections: ReportSection[] = [
    { kind: "text", text: plan.description },
    {
      kind: "text",
      text:
        `${finished.length} of ${all.length} runs finished (${plan.seeds.length} seeds × ${
          all.length / plan.seeds.length
        } groups) on ${planTask(plan)}.` +
        (missing > 0
          ? ` Left out: ${
            statuses.filter((s) => s.status !== "done").map((s) => `${s.id} (${s.status})`).join(
              ", ",
            )
          }.`
          : ""),
    },
  ];
  let final: Row[] = [];
  let comparisons: Row[] = [];
  if (finished.length > 0) {
    const iterationRows = finished.map((f) => f.iterations);
    const evalRows = finished.map((f) => f.evals);
    const curveMetrics = CURVE_METRICS.filter((m) => present(iterationRows, m));
    const evalMetrics = Object.keys(finished[0].evals[0] ?? {}).filter((m) =>
      m !== "iteration" && m !== "rollouts" && present(evalRows, m)
    );
    const groupOrder = groupLabels(plan); // tables and legends in the plan's order
    const curves = aggregateOverSeeds(series(finished, (f) => f.iterations), {
      x: "rollouts",
      metrics: curveMetrics,
      groupOrder,
      ranges: rangesOf(curveMetrics),
    });
    const evals = aggregateOverSeeds(series(finished, (f) => f.evals), {
      x: "rollouts",
      metrics: evalMetrics,
      groupOrder,
      ranges: rangesOf(evalMetrics),
    });
    await writeTable(out, "curves", rowsToTable(curves));
    await writeTable(out, "evals", rowsToTable(evals));
    final = finalTable(finished, groupOrder);
    await writeTable(out, "final", rowsToTable(final));
    sections.push({
      kind: "html",
      heading: "Final values over seeds (mean, 95% t-interval; clipped to [0, 1] for fractions)",
      html: tableToHtml(rowsToTable(final.map(displayRow))),
    });
    if (plan.baseline && finished.some((f) => f.run.groupLabel === plan.baseline)) {
      comparisons = compareGroups(
        series(finished, (f) => f.evals),
        { metric: "policy_accuracy", x: "rollouts", last: 1, baseline: plan.baseline, groupOrder },
      );
      await writeTable(out, "comparisons", rowsToTable(comparisons));
      sections.push({
        kind: "html",
        heading: `Final policy accuracy against ${plan.baseline}: Welch's t-test and the paired ` +
          "t-test by seed (differences in points, 95% intervals; p, Holm-adjusted in brackets)",
        html: tableToHtml(rowsToTable(comparisons.map(displayComparison))),
      });
      sections.push({ kind: "text", text: COMPARISON_NOTE });
    }
    const charts = [
      {
        name: "accuracy",
        rows: evals,
        metric: "policy_accuracy",
        title: "policy accuracy (greedy)",
      },
      { name: "reward", rows: curves, metric: "reward", title: "mean reward of the rollouts" },
      { name: "k3", rows: curves, metric: "k3", title: "actor-policy KL (k3)" },
      { name: "acceptance", rows: curves, metric: "accept_rate", title: "OBRS acceptance" },
      {
        name: "actor_accuracy",
        rows: evals,
        metric: "actor_accuracy",
        title: "rollout-model accuracy",
      },
    ].filter((c) => c.rows.some((r) => typeof r[`${c.metric}_mean`] === "number"));
    for (const c of charts) {
      const spec = lineChartSpec({
        title: c.title,
        data: c.rows.filter((r) => typeof r[`${c.metric}_mean`] === "number"),
        x: { field: "rollouts", title: "rollouts sampled" },
        y: { field: `${c.metric}_mean`, title: c.metric },
        color: { field: "group" },
        colorOrder: groupOrder,
        band: { lower: `${c.metric}_lo`, upper: `${c.metric}_hi` },
        width: 320,
        height: 220,
      });
      await writeJsonAtomic(`${out}/${c.name}.vl.json`, spec);
      const svg = await renderSvg(spec);
      await writeFileAtomic(`${out}/${c.name}.svg`, svg);
      sections.push({
        kind: "svg",
        heading: c.title,
        svg,
        caption: `Mean over seeds; the band is the 95% t-interval (none for a single seed).`,
      });
    }
  }
  sections.push({ kind: "html", heading: "Runs", html: tableToHtml(rowsToTable(runRows)) });
  sections.push({
    kind: "keyValues",
    heading: "Plan",
    entries: {
      name: plan.name,
      rl: plan.rl,
      pretrain: plan.pretrain ?? "none",
      axes: Object.fromEntries(plan.axes.map((a) => [a.name, a.values])),
      seeds: plan.seeds,
      baseline: plan.baseline ?? "none",
      pretrained: plan.pretrain
        ? Object.keys(plan.pretrain).map((r) => pretrainDir(dir, r as "policy" | "actor"))
        : "none",
    },
  });
  await writeFileAtomic(
    `${dir}/index.html`,
    htmlReport({ title: `jackpot sweep ${plan.name}`, sections }),
  );
  const summary = final.length === 0
    ? `${plan.name}: no finished runs yet`
    : `${plan.name}: final policy accuracy, mean [95% interval] over seeds: ` +
      final.map((r) =>
        `${r.group} ${pct(r.policy_accuracy_mean)}` +
        (typeof r.policy_accuracy_lo === "number"
          ? ` [${pct(r.policy_accuracy_lo)}, ${pct(r.policy_accuracy_hi)}]`
          : "")
      ).join(", ") + comparisonSummary(comparisons);
  return { runs: statuses, missing, complete: missing === 0, summary, final, comparisons };
}

const COMPARISON_NOTE = "Runs of two groups with the same seed share their evaluation prompts, " +
  "prompt order and initial weights, so the paired test (over the seeds both groups finished) " +
  "cancels that shared variation and is the one to read when most seeds are paired; Welch's test " +
  "treats the groups as independent samples and uses every finished run. Reading only " +
  "Holm-adjusted p-values (in brackets) of at most 0.05 as differences keeps the chance of any " +
  "false positive in the table below 5%.";

// One comparison for the page: both tests side by side, differences in percentage points.
function displayComparison(r: Row): Row {
  const interval = (d: string) =>
    typeof r[`${d}_lo`] === "number"
      ? `${pts(r[d])} [${pts(r[`${d}_lo`])}, ${pts(r[`${d}_hi`])}]`
      : pts(r[d]);
  const p = (raw: unknown, holm: unknown) =>
    typeof raw === "number" ? `${pValue(raw)} (${pValue(holm)})` : "–";
  return {
    group: r.group,
    seeds: `${r.n} vs ${r.baseline_n}`,
    "Welch: Δ points": interval("diff"),
    "Welch: p (Holm)": p(r.p, r.p_holm),
    pairs: r.paired_n,
    "paired: Δ points": interval("paired_diff"),
    "paired: p (Holm)": p(r.paired_p, r.paired_p_holm),
  };
}

// The console's line on the comparisons: each group's difference by both tests.
function comparisonSummary(comparisons: readonly Row[]): string {
  if (comparisons.length === 0) return "";
  const holm = comparisons.length > 1;
  const p = (raw: unknown, adjusted: unknown) =>
    `p ${pValue(raw)}` + (holm && typeof raw === "number" ? ` (Holm ${pValue(adjusted)})` : "");
  return `. Against ${comparisons[0].baseline}, in points: ` +
    comparisons.map((r) =>
      `${r.group} Welch ${pts(r.diff)}, ${p(r.p, r.p_holm)}; ` +
      `paired over ${r.paired_n} seeds ${pts(r.paired_diff)}, ${p(r.paired_p, r.paired_p_holm)}`
    ).join("; ");
}

// Per group: final accuracies (the last evaluation) and late-training means of the iteration
// metrics, each over seeds.
function finalTable(finished: readonly FinishedRun[], groupOrder: readonly string[]): Row[] {
  const acc = finalSummary(series(finished, (f) => f.evals), {
    metric: "policy_accuracy",
    x: "rollouts",
    last: 1,
    groupOrder,
    range: metricRange("policy_accuracy"),
  });
  const tables = [acc];
  for (const metric of ["reward", "k3", "accept_rate"]) {
    if (!present(finished.map((f) => f.iterations), metric)) continue;
    tables.push(finalSummary(series(finished, (f) => f.iterations), {
      metric,
      x: "rollouts",
      last: LATE_ITERATIONS,
      groupOrder,
      range: metricRange(metric),
    }));
  }
  return mergeByGroup(tables);
}

function mergeByGroup(tables: Row[][]): Row[] {
  const byGroup = new Map<string, Row>();
  for (const t of tables) {
    for (const r of t) {
      const g = String(r.group);
      byGroup.set(g, { ...(byGroup.get(g) ?? {}), ...r });
    }
  }
  return [...byGroup.values()];
}

function displayRow(r: Row): Row {
  const ci = (m: string, f: (x: unknown) => string) =>
    typeof r[`${m}_mean`] === "number"
      ? `${f(r[`${m}_mean`])} [${f(r[`${m}_lo`])}, ${f(r[`${m}_hi`])}]`
      : "–";
  return {
    group: r.group,
    seeds: r.runs ?? null,
    "final policy accuracy": ci("policy_accuracy", pct),
    [`reward, last ${LATE_ITERATIONS}`]: ci("reward", (x) => fmt(x)),
    [`k3, last ${LATE_ITERATIONS}`]: ci("k3", (x) => fmt(x, 4)),
    [`acceptance, last ${LATE_ITERATIONS}`]: ci("accept_rate", pct),
  };
}
