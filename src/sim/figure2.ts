/**
 * The paper's Figure 2 simulation (SPEC §9): how much OBRS accepts and how much closer it brings
 * the accepted tokens to the target, as the proposal drifts from the target.
 *
 * Design, per noise model:
 * - trial t draws a target p ~ Dirichlet(α·1_V) and the random part of a proposal (see noise.ts);
 * - for each KL level `k·klMax/levels` (k = 1..levels) the noise strength is solved per trial so
 *   that KL(p‖q) equals the level (to 1e-6 relative): every trial of a level sits at the same
 *   KL before, so means over trials are not blurred across the x axis. Level 0 is left out: there
 *   q = p, OBRS is the identity, and the KL ratio would be 0/0;
 * - for each λ (and optionally each acceptance budget, λ from `lambdaForBudget`) the float64 OBRS
 *   reference gives Z (the mean acceptance), P_OBRS, and KL/TV/χ² of p against q and P_OBRS.
 *
 * Randomness is keyed by (seed, trial, model), not by loop position, so a setting's numbers do not
 * change when other models, levels or λ are added to the sweep.
 *
 * @module
 */
import { Rng } from "../util/rng.ts";
import {
  chiSquare,
  exactZ,
  klDivergence,
  lambdaForBudget,
  obrsDistribution,
  tvDistance,
} from "../obrs/reference/mod.ts";
import { calibrateStrength, drawNoise, NOISE_MODELS, type NoiseModel } from "./noise.ts";
import { mean, median, stdDev } from "./stats.ts";

/** Settings of a Figure 2 sweep. */
export interface Figure2Config {
  /** Seed of every random draw. */
  seed: number;
  /** Vocabulary size V of each distribution. */
  vocab: number;
  /** Dirichlet concentration α of the targets (and of the `mixture` model's second draw). */
  concentration: number;
  /** Distributions per setting. */
  trials: number;
  /** Noise models to sweep. */
  noise: NoiseModel[];
  /** λ values to sweep (λ > 0). */
  lambdas: number[];
  /** Acceptance budgets ā ∈ (0, 1] to sweep, λ solved per trial (Theorem 3.4); may be empty. */
  budgets: number[];
  /** Largest KL(p‖q) level. */
  klMax: number;
  /** Number of KL levels, evenly spaced in (0, klMax]. */
  levels: number;
}

/**
 * Defaults sized for a < 15 s run on two cores. V = 1000 with α = 0.02 gives targets with about
 * 3.5 nats of entropy on average and a long tail of tiny probabilities, like an LM's next-token
 * distribution; klMax = 0.03 covers the paper's 0 – 0.025 range. With these targets and KL levels
 * max_i p_i/q_i is mostly below 2, so λ = 2 and 4 are already classical rejection sampling
 * (Z = 1/λ, P_OBRS = p); λ = 1.5 shows the regime in between.
 */
export const DEFAULT_FIGURE2_CONFIG: Readonly<Figure2Config> = Object.freeze({
  seed: 0,
  vocab: 1000,
  concentration: 0.02,
  trials: 200,
  noise: [...NOISE_MODELS],
  lambdas: [0.5, 1, 1.5, 2, 4],
  budgets: [],
  klMax: 0.03,
  levels: 12,
});

/** One row of the results table: one (noise model, KL level, λ or budget) setting. */
export interface Figure2Row {
  /** Noise model. */
  noise: NoiseModel;
  /** `lambda` for a fixed λ, `budget` for λ solved per trial from an acceptance budget. */
  rule: "lambda" | "budget";
  /** λ (for `budget` rows: the mean over trials of the solved λ). */
  lambda: number;
  /** The acceptance budget ā (`budget` rows), else null. */
  budget: number | null;
  /** The KL level the noise was calibrated to. */
  kl_target: number;
  /** Mean calibrated noise strength (σ, β or T − 1, see noise.ts). */
  strength_mean: number;
  /** Number of trials aggregated. */
  trials: number;
  /** Mean over trials of Z, the expected acceptance rate. */
  acceptance_mean: number;
  /** Standard deviation over trials of Z. */
  acceptance_std: number;
  /** Smallest Z over trials. */
  acceptance_min: number;
  /** Largest Z over trials. */
  acceptance_max: number;
  /** Mean KL(p‖q). */
  kl_before: number;
  /** Mean KL(p‖P_OBRS). */
  kl_after: number;
  /** Mean over trials of KL(p‖P_OBRS) / KL(p‖q). */
  kl_ratio_mean: number;
  /** Median over trials of KL(p‖P_OBRS) / KL(p‖q). */
  kl_ratio_median: number;
  /** Mean TV(p, q). */
  tv_before: number;
  /** Mean TV(p, P_OBRS). */
  tv_after: number;
  /** Mean χ²(p‖q). */
  chi2_before: number;
  /** Mean χ²(p‖P_OBRS). */
  chi2_after: number;
}

/** The column names of {@linkcode Figure2Row}, in table order. */
export const FIGURE2_COLUMNS: readonly (keyof Figure2Row)[] = [
  "noise",
  "rule",
  "lambda",
  "budget",
  "kl_target",
  "strength_mean",
  "trials",
  "acceptance_mean",
  "acceptance_std",
  "acceptance_min",
  "acceptance_max",
  "kl_before",
  "kl_after",
  "kl_ratio_mean",
  "kl_ratio_median",
  "tv_before",
  "tv_after",
  "chi2_before",
  "chi2_after",
];

/** The KL levels of a sweep: `k · klMax / levels` for k = 1..levels. */
export function klLevels(klMax: number, levels: number): number[] {
  // Rounded to 12 significant digits so that 7 · 0.03 / 10 is written as 0.021, not 0.020999….
  return Array.from(
    { length: levels },
    (_, k) => Number((((k + 1) * klMax) / levels).toPrecision(12)),
  );
}

/** Throws a RangeError naming the first invalid setting. */
export function validateFigure2Config(c: Figure2Config): void {
  const fail = (m: string) => {
    throw new RangeError(m);
  };
  if (!Number.isInteger(c.seed)) fail(`seed must be an integer, got ${c.seed}`);
  if (!Number.isInteger(c.vocab) || c.vocab < 2) {
    fail(`vocab must be an integer >= 2, got ${c.vocab}`);
  }
  if (!(c.concentration > 0) || !Number.isFinite(c.concentration)) {
    fail(`concentration must be a positive number, got ${c.concentration}`);
  }
  if (!Number.isInteger(c.trials) || c.trials < 1) fail(`trials must be >= 1, got ${c.trials}`);
  if (c.noise.length === 0) fail("at least one noise model is needed");
  for (const m of c.noise) {
    if (!NOISE_MODELS.includes(m)) fail(`unknown noise model '${m}'`);
  }
  if (new Set(c.noise).size !== c.noise.length) fail("noise models must not repeat");
  if (c.lambdas.length + c.budgets.length === 0) fail("at least one lambda or budget is needed");
  for (const l of c.lambdas) {
    if (!(l > 0) || !Number.isFinite(l)) fail(`lambda must be a positive number, got ${l}`);
  }
  for (const b of c.budgets) {
    if (!(b > 0 && b <= 1)) fail(`budget must be in (0, 1], got ${b}`);
  }
  if (!(c.klMax > 0) || !Number.isFinite(c.klMax)) {
    fail(`klMax must be a positive number, got ${c.klMax}`);
  }
  if (!Number.isInteger(c.levels) || c.levels < 1) fail(`levels must be >= 1, got ${c.levels}`);
}

/** The per-trial measurements of one setting, before aggregation. */
interface Samples {
  lambda: number[];
  strength: number[];
  acceptance: number[];
  klBefore: number[];
  klAfter: number[];
  ratio: number[];
  tvBefore: number[];
  tvAfter: number[];
  chi2Before: number[];
  chi2After: number[];
}

function emptySamples(): Samples {
  return {
    lambda: [],
    strength: [],
    acceptance: [],
    klBefore: [],
    klAfter: [],
    ratio: [],
    tvBefore: [],
    tvAfter: [],
    chi2Before: [],
    chi2After: [],
  };
}

/** Options of {@linkcode runFigure2} and {@linkcode runFigure2Async}. */
export interface RunFigure2Options {
  /** Called after each (noise model, trial) unit with the units done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** Options of {@linkcode runFigure2Async}. */
export interface RunFigure2AsyncOptions extends RunFigure2Options {
  /** Stops the sweep between two units; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Longest stretch of computation between two yields to the event loop (ms). */
  yieldEveryMs?: number;
}

/**
 * Runs the sweep and returns one aggregated row per (noise model, KL level, λ or budget), ordered
 * by noise model, then rule (λ before budget), then λ/budget, then KL level.
 *
 * @example
 * ```ts
 * const rows = runFigure2({ ...DEFAULT_FIGURE2_CONFIG, trials: 8, levels: 3 });
 * const atOne = rows.filter((r) => r.rule === "lambda" && r.lambda === 1);
 * ```
 */
export function runFigure2(config: Figure2Config, options: RunFigure2Options = {}): Figure2Row[] {
  const steps = sweep(config);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    options.onProgress?.(step.value.done, step.value.total);
  }
}

/**
 * {@linkcode runFigure2} that yields to the event loop every `yieldEveryMs` (default 50) so that
 * timers and signal handlers (Ctrl-C) run, and that stops when `signal` is aborted. Same rows.
 */
export async function runFigure2Async(
  config: Figure2Config,
  options: RunFigure2AsyncOptions = {},
): Promise<Figure2Row[]> {
  const { signal, yieldEveryMs = 50 } = options;
  const steps = sweep(config);
  let last = performance.now();
  for (;;) {
    signal?.throwIfAborted();
    const step = steps.next();
    if (step.done) return step.value;
    options.onProgress?.(step.value.done, step.value.total);
    if (performance.now() - last >= yieldEveryMs) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      last = performance.now();
    }
  }
}

/** The sweep, one (noise model, trial) unit per step; returns the aggregated rows. */
function* sweep(config: Figure2Config): Generator<{ done: number; total: number }, Figure2Row[]> {
  validateFigure2Config(config);
  const { seed, vocab, concentration, trials, noise, lambdas, budgets, klMax, levels } = config;
  const kls = klLevels(klMax, levels);
  const rules: { rule: "lambda" | "budget"; value: number }[] = [
    ...lambdas.map((value) => ({ rule: "lambda" as const, value })),
    ...budgets.map((value) => ({ rule: "budget" as const, value })),
  ];
  // samples[model][rule][level]
  const samples = noise.map(() => rules.map(() => kls.map(() => emptySamples())));
  const alpha = new Float64Array(vocab).fill(concentration);
  const root = new Rng(seed);
  const total = noise.length * trials;
  let done = 0;
  for (let t = 0; t < trials; t++) {
    const trialRng = root.fork(t);
    const p = trialRng.dirichlet(alpha);
    for (let m = 0; m < noise.length; m++) {
      const model = noise[m];
      const noiseRng = trialRng.fork(1 + NOISE_MODELS.indexOf(model));
      const draw = drawNoise(model, p, noiseRng, concentration);
      let start = 0.1;
      kls.forEach((level, k) => {
        const cal = calibrateStrength(draw, level, klDivergence, { start });
        start = cal.strength; // the next (larger) level's root is just above this one
        const tvBefore = tvDistance(p, cal.q);
        const chi2Before = chiSquare(p, cal.q);
        rules.forEach(({ rule, value }, r) => {
          const lambda = rule === "lambda" ? value : lambdaForBudget(p, cal.q, value);
          const pObrs = obrsDistribution(p, cal.q, lambda);
          const klAfter = klDivergence(p, pObrs);
          const s = samples[m][r][k];
          s.lambda.push(lambda);
          s.strength.push(cal.strength);
          s.acceptance.push(exactZ(p, cal.q, lambda));
          s.klBefore.push(cal.kl);
          s.klAfter.push(klAfter);
          s.ratio.push(klAfter / cal.kl);
          s.tvBefore.push(tvBefore);
          s.tvAfter.push(tvDistance(p, pObrs));
          s.chi2Before.push(chi2Before);
          s.chi2After.push(chiSquare(p, pObrs));
        });
      });
      yield { done: ++done, total };
    }
  }
  const rows: Figure2Row[] = [];
  noise.forEach((model, m) => {
    rules.forEach(({ rule, value }, r) => {
      kls.forEach((level, k) => {
        const s = samples[m][r][k];
        rows.push({
          noise: model,
          rule,
          lambda: rule === "lambda" ? value : mean(s.lambda),
          budget: rule === "budget" ? value : null,
          kl_target: level,
          strength_mean: mean(s.strength),
          trials,
          acceptance_mean: mean(s.acceptance),
          acceptance_std: stdDev(s.acceptance),
          acceptance_min: Math.min(...s.acceptance),
          acceptance_max: Math.max(...s.acceptance),
          kl_before: mean(s.klBefore),
          kl_after: mean(s.klAfter),
          kl_ratio_mean: mean(s.ratio),
          kl_ratio_median: median(s.ratio),
          tv_before: mean(s.tvBefore),
          tv_after: mean(s.tvAfter),
          chi2_before: mean(s.chi2Before),
          chi2_after: mean(s.chi2After),
        });
      });
    });
  });
  return rows;
}

/** The headline numbers of a sweep at one λ. */
export interface Figure2Summary {
  /** The λ summarised. */
  lambda: number;
  /** Smallest and largest mean acceptance over the (noise model, KL level) settings at this λ. */
  acceptanceRange: [number, number];
  /** The single smallest acceptance of any trial at this λ. */
  acceptanceWorstTrial: number;
  /** KL range covered (smallest and largest mean KL before). */
  klRange: [number, number];
  /** Median over settings of the median per-trial KL ratio after/before. */
  medianKlRatio: number;
  /** Per noise model: [smallest, largest] median KL ratio over the KL levels. */
  klRatioRangeByNoise: Partial<Record<NoiseModel, [number, number]>>;
}

/**
 * Summarises the fixed-λ rows at `lambda` (default 1, the paper's claim: acceptance stays above
 * ~0.9 and KL after is a fraction of KL before). Throws when no row has that λ.
 */
export function summarizeFigure2(rows: readonly Figure2Row[], lambda = 1): Figure2Summary {
  const at = rows.filter((r) => r.rule === "lambda" && r.lambda === lambda);
  if (at.length === 0) throw new RangeError(`no results at lambda = ${lambda}`);
  const acc = at.map((r) => r.acceptance_mean);
  const kl = at.map((r) => r.kl_before);
  const byNoise: Partial<Record<NoiseModel, [number, number]>> = {};
  for (const model of NOISE_MODELS) {
    const ratios = at.filter((r) => r.noise === model).map((r) => r.kl_ratio_median);
    if (ratios.length > 0) byNoise[model] = [Math.min(...ratios), Math.max(...ratios)];
  }
  return {
    lambda,
    acceptanceRange: [Math.min(...acc), Math.max(...acc)],
    acceptanceWorstTrial: Math.min(...at.map((r) => r.acceptance_min)),
    klRange: [Math.min(...kl), Math.max(...kl)],
    medianKlRatio: median(at.map((r) => r.kl_ratio_median)),
    klRatioRangeByNoise: byNoise,
  };
}
