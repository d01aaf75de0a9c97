/**
 * How much GPU memory a `jackpot rl --task text` run needs for a Qwen3 pair, measured rather than
 * estimated. A whole 28-layer Qwen3-1.7B policy does not fit a CPU adapter's host memory (its AdamW
 * state alone is 27 GB), but memory is additive over identical decoder blocks and, for fixed
 * widths, linear in the rows of a mini-batch. So this runs one RL iteration at Qwen's real widths
 * and vocabulary with 1 or 2 blocks per model and two completion lengths, reads each run's
 * `gpu_peak_mb` (the ledger of src/gpu/memory.ts), solves
 *
 *   peak = α₀ + α₁·R + (Lp − 1)·(β₀ + β₁·R) + (La − 1)·(γ₀ + γ₁·R),   R = minibatch · maxNew
 *
 * from six runs, checks the solution on two more (3 policy blocks; both models with 2 blocks at the
 * longer length), and prints the footprint at 28 + 28 blocks at the measured row counts. Blocks
 * extrapolate; rows do not: over a few dozen rows the buffer pool's size classes swamp the per-row
 * slopes, which are printed but not used for longer mini-batches. Random weights never emit a stop
 * token, so every rollout runs to maxNew and R is exact.
 *
 * ```sh
 * deno run -A bench/memory/rl_memory.ts --work /tmp/rlmem --json bench/results/rl_memory.json
 * deno run -A bench/memory/rl_memory.ts --from bench/results/rl_memory.json   # refit only
 * ```
 *
 * @module
 */
import { benchArgs, benchInt, benchUsageError } from "../args.ts";

const SCRIPT = "bench/memory/rl_memory.ts";

/** One measured run. */
export interface MemoryRun {
  /** Decoder blocks of the policy (Qwen3-1.7B widths) and of the rollout model (0.6B widths). */
  policyLayers: number;
  actorLayers: number;
  /** Completion tokens per rollout, and rows of a mini-batch. */
  maxNew: number;
  minibatch: number;
  /** The iteration's peak and end-of-iteration GPU bytes, in MiB. */
  peakMiB: number;
  heldMiB: number;
  /** Wall-clock seconds of the run. */
  seconds: number;
}

/** The six coefficients of the model in the module comment, in MiB (per row for the ₁ terms). */
export interface MemoryModel {
  alpha0: number;
  alpha1: number;
  beta0: number;
  beta1: number;
  gamma0: number;
  gamma1: number;
}

/** The model's peak, in MiB, for `policyLayers` and `actorLayers` blocks and `rows` = minibatch·maxNew. */
export function predictPeakMiB(
  m: MemoryModel,
  policyLayers: number,
  actorLayers: number,
  rows: number,
): number {
  return m.alpha0 + m.alpha1 * rows + (policyLayers - 1) * (m.beta0 + m.beta1 * rows) +
    (actorLayers - 1) * (m.gamma0 + m.gamma1 * rows);
}

/**
 * Solves the model from runs at two row counts r1 < r2 with blocks (1,1), (2,1) and (1,2) at each:
 * each term is a line through its two points.
 */
export function fitMemoryModel(runs: readonly MemoryRun[]): MemoryModel {
  const rowsOf = (r: MemoryRun) => r.minibatch * r.maxNew;
  const counts = [...new Set(runs.map(rowsOf))].sort((a, b) => a - b);
  if (counts.length < 2) throw new RangeError("the fit needs runs at two row counts");
  const [r1, r2] = counts;
  const at = (lp: number, la: number, rows: number) => {
    const run = runs.find((r) =>
      r.policyLayers === lp && r.actorLayers === la && rowsOf(r) === rows
    );
    if (!run) throw new RangeError(`the fit needs a run with ${lp}+${la} blocks at ${rows} rows`);
    return run.peakMiB;
  };
  // A term's value at r1 and r2 gives its intercept and slope.
  const line = (y1: number, y2: number) => {
    const slope = (y2 - y1) / (r2 - r1);
    return [y1 - slope * r1, slope];
  };
  const [alpha0, alpha1] = line(at(1, 1, r1), at(1, 1, r2));
  const [beta0, beta1] = line(at(2, 1, r1) - at(1, 1, r1), at(2, 1, r2) - at(1, 1, r2));
  const [gamma0, gamma1] = line(at(1, 2, r1) - at(1, 1, r1), at(1, 2, r2) - at(1, 1, r2));
  return { alpha0, alpha1, beta0, beta1, gamma0, gamma1 };
}

async function sh(cmd: string[], what: string): Promise<void> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`${what} failed:\n${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

// A stand-in folder with `layers` blocks at `size`'s widths, written once per work folder.
async function standIn(work: string, size: "0.6b" | "1.7b", layers: number): Promise<string> {
  const dir = `${work}/qwen3-${size}-${layers}`;
  if (await exists(`${dir}/tokenizer.json`)) return dir;
  await sh(
    [
      Deno.execPath(),
      "run",
      "-A",
      "bench/bigvocab/hub_folder.ts",
      "--out",
      dir,
      "--size",
      size,
      "--layers",
      String(layers),
      "--shard-mb",
      "4000",
      "--seed",
      size === "1.7b" ? "1" : "2",
    ],
    `hub_folder ${size} ${layers}`,
  );
  return dir;
}

async function measure(
  work: string,
  policyLayers: number,
  actorLayers: number,
  maxNew: number,
  minibatch: number,
): Promise<MemoryRun> {
  const policy = await standIn(work, "1.7b", policyLayers);
  const actor = await standIn(work, "0.6b", actorLayers);
  const out = `${work}/run-${policyLayers}-${actorLayers}-${minibatch}x${maxNew}`;
  const t0 = performance.now();
  await sh(
    [
      Deno.execPath(),
      "run",
      "-A",
      "src/cli/main.ts",
      "rl",
      "--task",
      `text:problems=64,digits=1,terms=2,maxNew=${maxNew}`,
      "--policy",
      policy,
      "--actor",
      actor,
      "--prompts",
      String(minibatch / 2),
      "--group-size",
      "2",
      "--minibatch",
      String(minibatch),
      "--iterations",
      "1",
      "--eval-every",
      "1",
      "--eval-size",
      "1",
      "--out",
      out,
      "--force",
      "--quiet",
    ],
    `jackpot rl ${policyLayers}+${actorLayers} blocks, maxNew ${maxNew}`,
  );
  const seconds = (performance.now() - t0) / 1000;
  const [header, row] = (await Deno.readTextFile(`${out}/iterations.csv`)).trim().split("\n");
  const cols = header.split(","), vals = row.split(",");
  const col = (name: string) => Number(vals[cols.indexOf(name)]);
  await Deno.remove(`${out}/policy`, { recursive: true }).catch(() => {});
  await Deno.remove(`${out}/actor`, { recursive: true }).catch(() => {});
  await Deno.remove(`${out}/checkpoints`, { recursive: true }).catch(() => {});
  return {
    policyLayers,
    actorLayers,
    maxNew,
    minibatch,
    peakMiB: col("gpu_peak_mb"),
    heldMiB: col("gpu_mb"),
    seconds,
  };
}

if (import.meta.main) {
  const values = benchArgs(SCRIPT, "GPU memory of jackpot rl on a Qwen3 pair, by extrapolation", {
    work: { type: "string", help: "folder for the stand-in models and runs (required)" },
    json: { type: "string", help: "write the runs, the model and the predictions here" },
    minibatch: { type: "string", default: "2", help: "rows of the measured mini-batches (even)" },
    short: { type: "string", default: "16", help: "the shorter completion length measured" },
    long: { type: "string", default: "40", help: "the longer completion length measured" },
    from: { type: "string", help: "refit the runs of an earlier --json file instead of running" },
  });
  if (!values.work && !values.from) benchUsageError(SCRIPT, "--work DIR is required");
  const work = String(values.work);
  const mb = benchInt(SCRIPT, values, "minibatch", 2, { min: 2 });
  if (mb % 2 !== 0) benchUsageError(SCRIPT, "--minibatch must be even (groups of 2)");
  const short = benchInt(SCRIPT, values, "short", 16, { min: 1 });
  const long = benchInt(SCRIPT, values, "long", 40, { min: short + 1 });
  if (!values.from) await Deno.mkdir(work, { recursive: true });
  const plan: [number, number, number][] = [
    [1, 1, short],
    [1, 1, long],
    [2, 1, short],
    [2, 1, long],
    [1, 2, short],
    [1, 2, long],
    [3, 1, short], // checks: linear in the policy's blocks
    [2, 2, long], // checks: the two models' blocks add
  ];
  const runs: MemoryRun[] = values.from
    ? JSON.parse(await Deno.readTextFile(String(values.from))).runs
    : [];
  for (const [lp, la, m] of values.from ? [] : plan) {
    const run = await measure(work, lp, la, m, mb);
    runs.push(run);
    console.log(
      `${lp}+${la} blocks, ${mb}×${m} rows: peak ${run.peakMiB.toFixed(1)} MiB, held ${
        run.heldMiB.toFixed(1)
      } MiB (${run.seconds.toFixed(0)} s)`,
    );
  }
  const model = fitMemoryModel(runs.slice(0, 6));
  console.log("model (MiB; per row for the slopes):", model);
  const checks = runs.slice(6).map((r) => {
    const predicted = predictPeakMiB(model, r.policyLayers, r.actorLayers, r.minibatch * r.maxNew);
    console.log(
      `check ${r.policyLayers}+${r.actorLayers} blocks, ${r.minibatch}×${r.maxNew}: measured ${
        r.peakMiB.toFixed(1)
      } MiB, predicted ${predicted.toFixed(1)} MiB (${
        (100 * (predicted - r.peakMiB) / r.peakMiB).toFixed(2)
      }%)`,
    );
    return { ...r, predictedMiB: predicted };
  });
  // Blocks extrapolate (the checks above); rows only interpolate: the pool's size classes (up to
  // 25% per buffer) swamp a per-row slope measured over a few dozen rows, so the slopes printed in
  // the model are not a basis for mini-batches of thousands of rows.
  const rowCounts = [...new Set(runs.map((r) => r.minibatch * r.maxNew))].sort((a, b) => a - b);
  const predictions = rowCounts.slice(0, 2).map((rows) => {
    const peak = predictPeakMiB(model, 28, 28, rows);
    console.log(
      `Qwen3-1.7B + Qwen3-0.6B (28 + 28 blocks) at ${rows} completion rows: ${
        (peak / 1024).toFixed(1)
      } GiB`,
    );
    return { rows, peakGiB: peak / 1024 };
  });
  const slopes = [model.alpha1, model.beta1, model.gamma1].map((x) => x.toFixed(2)).join(", ");
  console.log(
    `per-row slopes (MiB/row: base, per policy block, per rollout-model block): ${slopes}; ` +
      "below the pool's rounding at these row counts, so not extrapolated",
  );
  if (values.json) {
    await Deno.writeTextFile(
      String(values.json),
      JSON.stringify(
        { command: `deno run -A ${SCRIPT}`, runs, model, checks, predictions },
        null,
        2,
      ),
    );
  }
}
