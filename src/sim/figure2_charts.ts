/**
 * The Figure 2 charts as Vega-Lite specs: (a) acceptance against KL(p‖q), (b) KL(p‖P_OBRS)
 * against KL(p‖q) with the y = x line, (c) their ratio. One panel per noise model, one line per λ.
 *
 * @module
 */
import { lineChartSpec, type TopLevelSpec } from "../report/mod.ts";
import type { Figure2Row } from "./figure2.ts";

/** A named chart of a Figure 2 run (`name` is the file stem: `<name>.vl.json`, `<name>.svg`). */
export interface NamedSpec {
  /** File stem. */
  name: string;
  /** One line for captions. */
  caption: string;
  /** The Vega-Lite spec. */
  spec: TopLevelSpec;
}

/** The fixed-λ rows of a run as plot data, with λ as a label so that it is a legend, not an axis. */
function lambdaRows(rows: readonly Figure2Row[]) {
  return rows
    .filter((r) => r.rule === "lambda")
    .map((r) => ({
      noise: r.noise,
      lambda: `λ = ${r.lambda}`,
      kl_before: r.kl_before,
      kl_after: r.kl_after,
      kl_ratio_median: r.kl_ratio_median,
      acceptance_mean: r.acceptance_mean,
      acceptance_min: r.acceptance_min,
      acceptance_max: r.acceptance_max,
    }));
}

/**
 * The three Figure 2 charts for the fixed-λ rows of a run.
 *
 * @example
 * ```ts
 * for (const { name, spec } of figure2Charts(rows)) console.log(name, await renderSvg(spec));
 * ```
 */
export function figure2Charts(rows: readonly Figure2Row[]): NamedSpec[] {
  const data = lambdaRows(rows);
  if (data.length === 0) throw new RangeError("no fixed-lambda rows to plot");
  const common = {
    data,
    x: { field: "kl_before", title: "KL(p‖q) before OBRS" },
    color: { field: "lambda", title: "λ" },
    facet: { field: "noise", title: "noise model" },
    points: true,
  };
  return [
    {
      name: "acceptance_vs_kl",
      caption: "Mean acceptance rate Z against KL(p‖q); band: smallest to largest trial.",
      spec: lineChartSpec({
        ...common,
        title: "Fig. 2a: OBRS acceptance rate vs actor–target KL",
        y: { field: "acceptance_mean", title: "mean acceptance rate Z" },
        band: { lower: "acceptance_min", upper: "acceptance_max" },
      }),
    },
    {
      name: "kl_after_vs_before",
      caption: "KL(p‖P_OBRS) after OBRS against KL(p‖q) before; dashed: y = x (no improvement).",
      spec: lineChartSpec({
        ...common,
        title: "Fig. 2b: KL to the target after vs before OBRS",
        y: { field: "kl_after", title: "KL(p‖P_OBRS) after OBRS" },
        diagonal: true,
      }),
    },
    {
      name: "kl_ratio_vs_kl",
      caption: "Median over trials of KL after / KL before.",
      spec: lineChartSpec({
        ...common,
        title: "KL reduction ratio (after / before)",
        y: { field: "kl_ratio_median", title: "median KL after / KL before" },
      }),
    },
  ];
}
