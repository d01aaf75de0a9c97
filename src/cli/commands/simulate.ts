/**
 * `jackpot simulate`: the paper's Figure 2 simulation written as a run folder (tables, charts,
 * Vega-Lite specs, HTML page, config) plus a short summary on stdout.
 *
 * @module
 */
import {
  choiceListOption,
  type Command,
  integerOption,
  numberListOption,
  numberOption,
  type ParsedValues,
  UsageError,
} from "../command.ts";
import { Progress } from "../progress.ts";
import { runFolder, runInterruptibly } from "../run_folder.ts";
import { runtimeVersions } from "../runtime.ts";
import {
  DEFAULT_FIGURE2_CONFIG,
  FIGURE2_COLUMNS,
  figure2Charts,
  type Figure2Config,
  type Figure2Row,
  NOISE_MODELS,
  runFigure2Async,
  summarizeFigure2,
} from "../../sim/mod.ts";
import {
  htmlReport,
  prepareRunDir,
  renderSvg,
  rowsToTable,
  tableToHtml,
  VEGA_LITE_VERSION,
  VEGA_VERSION,
  writeFileAtomic,
  writeJsonAtomic,
  writeTable,
} from "../../report/mod.ts";

const D = DEFAULT_FIGURE2_CONFIG;

/** The smallest KL level `--kl-max / --levels` accepted (float64 resolves KL far below it). */
export const MIN_KL_LEVEL = 1e-6;

/** The most (setting, trial) measurements a sweep may hold: ten float64 each, ~800 MB at the cap. */
export const MAX_MEASUREMENTS = 1e7;

/** Reads the command line into a simulation config; UsageError names the first bad value. */
export function configFromValues(values: ParsedValues): Figure2Config {
  // Absent means no budget sweep; an empty or blank value is a mistake like any other bad list.
  const budgets = typeof values.budgets === "string"
    ? numberListOption(values, "budgets", { min: 0, exclusiveMin: true, max: 1 })
    : [];
  const config: Figure2Config = {
    seed: integerOption(values, "seed", { min: 0, max: 2 ** 32 - 1 }),
    vocab: integerOption(values, "vocab", { min: 2, max: 1_000_000 }),
    concentration: numberOption(values, "concentration", { min: 0, exclusiveMin: true }),
    trials: integerOption(values, "trials", { min: 1, max: 100_000 }),
    noise: choiceListOption(values, "noise", NOISE_MODELS),
    lambdas: numberListOption(values, "lambdas", { min: 0, exclusiveMin: true }),
    budgets,
    klMax: numberOption(values, "kl-max", { min: 0, exclusiveMin: true, max: 10 }),
    levels: integerOption(values, "levels", { min: 1, max: 1000 }),
  };
  if (new Set(config.noise).size !== config.noise.length) {
    throw new UsageError(`--noise lists a model twice: '${values.noise}'`);
  }
  // KL levels far below this cannot be calibrated to 1e-6 relative in float64 (rounding in KL).
  const smallest = config.klMax / config.levels;
  if (!(smallest >= MIN_KL_LEVEL)) {
    throw new UsageError(
      `the smallest KL level (--kl-max / --levels = ${smallest.toPrecision(3)}) must be >= ` +
        MIN_KL_LEVEL.toExponential(),
    );
  }
  // The sweep keeps every trial's measurements until it aggregates (medians need them all).
  const measurements = config.noise.length * (config.lambdas.length + config.budgets.length) *
    config.levels * config.trials;
  if (measurements > MAX_MEASUREMENTS) {
    throw new UsageError(
      `this sweep would keep ${measurements.toPrecision(2)} measurements in memory (noise models ` +
        `× λs and budgets × levels × trials), at most ${MAX_MEASUREMENTS.toExponential()}; ` +
        "lower --trials or --levels",
    );
  }
  return config;
}

/** What {@linkcode simulate} wrote and found. */
export interface SimulateResult {
  /** The run folder. */
  dir: string;
  /** Files written, relative to `dir`. */
  files: string[];
  /** The aggregated rows. */
  rows: Figure2Row[];
}

/**
 * Runs the simulation and writes the run folder: `results.csv`, `results.json`, `config.json`,
 * `<chart>.vl.json` and `<chart>.svg` for each Figure 2 chart, and `index.html`. Every file is
 * written atomically; `config.json` is written last, so its presence marks a complete run.
 * An aborted `signal` stops the run between two trials or two files (rejecting with its reason).
 */
export async function simulate(
  config: Figure2Config,
  dir: string,
  { force = false, quiet = false, signal }: {
    force?: boolean;
    quiet?: boolean;
    signal?: AbortSignal;
  } = {},
): Promise<SimulateResult> {
  await prepareRunDir(dir, { force });
  const bar = new Progress({
    total: config.noise.length * config.trials,
    label: "simulate",
    quiet,
  });
  const started = performance.now();
  let rows: Figure2Row[];
  try {
    rows = await runFigure2Async(config, { onProgress: (done) => bar.update(done), signal });
  } finally {
    bar.finish();
  }
  const files: string[] = [];
  const table = rowsToTable(rows, FIGURE2_COLUMNS as string[]);
  await writeTable(dir, "results", table);
  files.push("results.csv", "results.json");

  const charts = figure2Charts(rows);
  const svgs: string[] = [];
  for (const { name, spec } of charts) {
    signal?.throwIfAborted();
    await writeJsonAtomic(`${dir}/${name}.vl.json`, spec);
    const svg = await renderSvg(spec);
    await writeFileAtomic(`${dir}/${name}.svg`, svg);
    svgs.push(svg);
    files.push(`${name}.vl.json`, `${name}.svg`);
  }
  const summaryLines = summaryText(rows);
  const html = htmlReport({
    title: "jackpot simulate: OBRS on Dirichlet targets (Fig. 2)",
    sections: [
      ...summaryLines.map((text) => ({ kind: "text" as const, text })),
      ...charts.map((c, i) => ({
        kind: "svg" as const,
        heading: c.spec.title as string,
        svg: svgs[i],
        caption: c.caption,
      })),
      { kind: "keyValues", heading: "Settings", entries: { ...config } },
      { kind: "html", heading: "Results (results.csv)", html: tableToHtml(table) },
    ],
  });
  signal?.throwIfAborted();
  await writeFileAtomic(`${dir}/index.html`, html);
  files.push("index.html");
  signal?.throwIfAborted();
  await writeJsonAtomic(`${dir}/config.json`, {
    command: "simulate",
    config,
    klLevels: rows.length > 0 ? [...new Set(rows.map((r) => r.kl_target))] : [],
    versions: { ...runtimeVersions(), vega: VEGA_VERSION, vegaLite: VEGA_LITE_VERSION },
    seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
  });
  files.push("config.json");
  return { dir, files, rows };
}

/**
 * The summary lines of a run: at λ = 1 (the paper's setting) when it was swept, else at the first
 * λ swept; none for a budget-only run.
 */
export function summaryText(rows: readonly Figure2Row[]): string[] {
  const lambdas = rows.filter((r) => r.rule === "lambda").map((r) => r.lambda);
  if (lambdas.length === 0) return [];
  const lambda = lambdas.includes(1) ? 1 : lambdas[0];
  const s = summarizeFigure2(rows, lambda);
  const f = (x: number) => x.toFixed(4);
  const ratios = Object.entries(s.klRatioRangeByNoise)
    .map(([m, [lo, hi]]) => `${m} ${f(lo)}–${f(hi)}`)
    .join(", ");
  return [
    `At λ = ${lambda} over KL(p‖q) ${f(s.klRange[0])}–${f(s.klRange[1])}: mean acceptance ` +
    `${f(s.acceptanceRange[0])}–${f(s.acceptanceRange[1])} (worst single trial ${
      f(s.acceptanceWorstTrial)
    }).`,
    `KL(p‖P_OBRS) / KL(p‖q) at λ = ${lambda}: median ${
      f(s.medianKlRatio)
    } (per noise model: ${ratios}).`,
  ];
}

/** `jackpot simulate`. */
export const command: Command = {
  name: "simulate",
  summary: "Figure 2 simulation: OBRS acceptance and KL reduction on Dirichlet targets",
  description: "Draws Dirichlet target distributions p, perturbs them into proposals q with " +
    "each noise model (logit: Gaussian noise on log p; mixture: blend with another Dirichlet " +
    "draw; temperature: q ∝ p^(1/T)), calibrates the noise per trial so that KL(p‖q) hits " +
    "evenly spaced levels up to --kl-max, and reports for each λ the mean acceptance rate Z and " +
    "KL, TV and χ² to p before and after OBRS. Writes results.csv/json, Vega-Lite specs, SVG " +
    "charts, index.html and config.json into the run folder. Same seed, same CSV.",
  options: {
    out: {
      type: "string",
      valueName: "DIR",
      description: "Run folder (default runs/simulate-<UTC time>)",
    },
    force: { type: "boolean", description: "Write into a non-empty existing run folder" },
    seed: { type: "string", valueName: "N", default: String(D.seed), description: "Random seed" },
    vocab: {
      type: "string",
      valueName: "N",
      default: String(D.vocab),
      description: "Vocabulary size V",
    },
    concentration: {
      type: "string",
      valueName: "X",
      default: String(D.concentration),
      description: "Dirichlet concentration of the targets",
    },
    trials: {
      type: "string",
      valueName: "N",
      default: String(D.trials),
      description: "Distributions per setting",
    },
    noise: {
      type: "string",
      valueName: "LIST",
      default: D.noise.join(","),
      description: "Noise models",
    },
    lambdas: {
      type: "string",
      valueName: "LIST",
      default: D.lambdas.join(","),
      description: "λ values",
    },
    budgets: {
      type: "string",
      valueName: "LIST",
      description: "Also sweep acceptance budgets in (0, 1], λ solved per trial (e.g. 0.9,0.95)",
    },
    "kl-max": {
      type: "string",
      valueName: "X",
      default: String(D.klMax),
      description: "Largest KL(p‖q) level (--kl-max / --levels must be >= 1e-6)",
    },
    levels: {
      type: "string",
      valueName: "N",
      default: String(D.levels),
      description: "KL levels in (0, kl-max]",
    },
    quiet: {
      type: "boolean",
      description: "No progress bar and no summary (the run folder is still printed)",
    },
  },
  async run(values: ParsedValues): Promise<number> {
    const config = configFromValues(values);
    const out = runFolder(values, "simulate");
    const quiet = values.quiet === true;
    const outcome = await runInterruptibly("simulate", out, async (signal) => {
      try {
        return await simulate(config, out, { force: values.force === true, quiet, signal });
      } catch (e) {
        // A noise model that cannot reach the KL range is a bad combination of options.
        if (e instanceof RangeError && /cannot (reach|calibrate) KL/.test(e.message)) {
          throw new UsageError(
            `${e.message}; lower --kl-max, or change --concentration or --vocab (the targets ` +
              "are too flat or too peaked for this noise model)",
          );
        }
        throw e;
      }
    });
    if ("exitCode" in outcome) return outcome.exitCode;
    const result = outcome.value;
    if (!quiet) {
      for (const line of summaryText(result.rows)) console.log(line);
    }
    console.log(`Wrote ${result.files.length} files to ${result.dir}/ (open index.html)`);
    return 0;
  },
};
