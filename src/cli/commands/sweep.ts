/**
 * `jackpot sweep`: a grid of `jackpot rl` runs over modes, settings and seeds, from a built-in
 * preset (the paper's training figures and ablation tables at small scale) or a JSON plan, with
 * the starting models pre-trained once and a report that aggregates each group over its seeds.
 *
 * A sweep folder resumes: running the same command again keeps every finished run. `--list`
 * prints the commands a cluster scheduler needs (pre-training, one run per array index, report).
 *
 * @module
 */
import {
  choiceOption,
  type Command,
  integerOption,
  type ParsedValues,
  UsageError,
} from "../command.ts";
import { INTERRUPTED, runInterruptibly } from "../run_folder.ts";
import { timestamp } from "../../report/mod.ts";
import {
  expandSweep,
  type OptionValues,
  parseSweepPlan,
  type SweepPlan,
  SweepPlanError,
  withOverrides,
} from "../../sweep/plan.ts";
import { SWEEP_PRESET_NAMES, SWEEP_PRESETS } from "../../sweep/presets.ts";
import { slurmScripts, writeSlurmScripts } from "../../sweep/scheduler.ts";
import { selfCommand } from "../runtime.ts";
import { command as rlCommand } from "./rl.ts";
import {
  isComplete,
  keepPlan,
  markFinished,
  readPlanJson,
  runDir,
  runPretrainStage,
  runRunsStage,
  validatePlan,
} from "./sweep_run.ts";
import { writeSweepReport } from "./sweep_report.ts";

/** The stages `--stage` picks. */
export const SWEEP_STAGES = ["all", "pretrain", "runs", "report"] as const;

/** A stage of a sweep. */
export type SweepStage = typeof SWEEP_STAGES[number];

/** The preset a sweep runs when given neither --preset nor --plan nor an existing sweep folder. */
export const DEFAULT_SWEEP_PRESET = "fig4";

/**
 * Reads `--set k=v,k=v` into option values. A value may hold commas (a task spec such as
 * `arithmetic:maxDigits=1,ops=+`): a piece whose key is not a `jackpot rl` option continues the
 * previous value.
 */
export function parseOverrides(text: string): OptionValues {
  const out: OptionValues = {};
  let last: string | null = null;
  for (const piece of text.split(",")) {
    const eq = piece.indexOf("=");
    const key = eq > 0 ? piece.slice(0, eq).trim() : "";
    if (key in rlCommand.options) {
      out[key] = piece.slice(eq + 1);
      last = key;
    } else if (last !== null) {
      out[last] += "," + piece;
    } else {
      throw new UsageError(
        `--set: '${piece}' is not option=value with a jackpot rl option (see jackpot rl --help)`,
      );
    }
  }
  return out;
}

function seedsOf(text: string): number[] {
  const seeds = text.split(",").map((s) => s.trim());
  if (!seeds.every((s) => /^\d+$/.test(s) && Number(s) < 2 ** 32)) {
    throw new UsageError(`--seeds must list integers in [0, 2^32), e.g. 1,2,3; got '${text}'`);
  }
  return seeds.map(Number);
}

/** The plan from --plan, --preset or the sweep folder, with --seeds and --set applied. */
export async function planFromValues(
  values: ParsedValues,
): Promise<{ plan: SweepPlan; out: string; source: "plan" | "preset" | "folder" | "default" }> {
  const given = typeof values.out === "string";
  if (given && (values.out as string).trim() === "") {
    throw new UsageError(`--out must name a folder, got '${values.out}'`);
  }
  if (typeof values.plan === "string" && typeof values.preset === "string") {
    throw new UsageError("give --plan or --preset, not both");
  }
  let raw: unknown = null;
  let source: "plan" | "preset" | "folder" | "default" = "default";
  if (typeof values.plan === "string") {
    source = "plan";
    const text = await Deno.readTextFile(values.plan).catch((e) => {
      throw new UsageError(`--plan ${values.plan}: ${e instanceof Error ? e.message : e}`);
    });
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`--plan ${values.plan} is not valid JSON: ${(e as Error).message}`);
    }
  } else if (typeof values.preset === "string") {
    source = "preset";
    raw = SWEEP_PRESETS[choiceOption(values, "preset", SWEEP_PRESET_NAMES)];
  } else if (given) {
    raw = await readPlanJson(values.out as string);
    if (raw !== null) source = "folder";
  }
  raw ??= SWEEP_PRESETS[DEFAULT_SWEEP_PRESET];
  let plan: SweepPlan;
  try {
    plan = parseSweepPlan(raw);
    if (typeof values.seeds === "string") plan = { ...plan, seeds: seedsOf(values.seeds) };
    if (typeof values.set === "string") plan = withOverrides(plan, parseOverrides(values.set));
  } catch (e) {
    if (e instanceof SweepPlanError) throw new UsageError(`plan: ${e.message}`);
    throw e;
  }
  const out = given ? values.out as string : `runs/sweep-${plan.name}-${timestamp()}`;
  return { plan, out, source };
}

// `jackpot sweep --out DIR ...` as the user would type it again (a quoted DIR when it needs it).
const again = (out: string, rest: string) =>
  `jackpot sweep --out ${/^[\w./+-]+$/.test(out) ? out : JSON.stringify(out)} ${rest}`;

/** The commands a scheduler runs: pre-training, one per run (array index), the report. */
export function schedulerCommands(plan: SweepPlan, out: string): string[] {
  const lines: string[] = [];
  if (plan.pretrain) lines.push(again(out, "--stage pretrain"));
  for (const run of expandSweep(plan)) {
    lines.push(`${again(out, `--index ${run.index}`)}   # ${run.id}`);
  }
  lines.push(again(out, "--stage report"));
  return lines;
}

const words = (text: string) => text.trim().split(/\s+/).filter((w) => w !== "");

async function writeSlurm(values: ParsedValues, plan: SweepPlan, out: string): Promise<number> {
  const str = (name: string) =>
    typeof values[name] === "string" ? values[name] as string : undefined;
  const int = (name: string, min: number) =>
    typeof values[name] === "string" ? integerOption(values, name, { min }) : undefined;
  let scripts;
  try {
    scripts = slurmScripts({
      plan,
      out,
      workdir: Deno.cwd(),
      jackpot: str("slurm-jackpot") !== undefined ? words(str("slurm-jackpot")!) : selfCommand(),
      partition: str("slurm-partition"),
      account: str("slurm-account"),
      gpus: int("slurm-gpus", 0),
      cpus: int("slurm-cpus", 1),
      time: str("slurm-time"),
      maxParallel: int("slurm-max-parallel", 1),
      extraSbatch: str("slurm-sbatch") !== undefined ? words(str("slurm-sbatch")!) : undefined,
    });
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(`--slurm: ${e.message}`);
    throw e;
  }
  await keepPlan(out, plan);
  await writeSlurmScripts(scripts);
  console.log(`Wrote ${out}/plan.json and ${scripts.dir}/; submit the sweep with:`);
  console.log(`  ${scripts.submit}`);
  return 0;
}

/** `jackpot sweep`. */
export const command: Command = {
  name: "sweep",
  summary: "A grid of rl runs over modes, settings and seeds, aggregated with error bars",
  description: "Runs jackpot rl for every combination of a plan's axes (e.g. the correction " +
    "mode, the staleness) and every seed, from models pre-trained once, then writes a report " +
    "that aggregates each group over its seeds: mean and 95% t-interval per iteration, final " +
    "values, Welch and paired-by-seed tests against the plan's baseline group. Presets: " +
    SWEEP_PRESET_NAMES.map((n) => `${n} (${SWEEP_PRESETS[n].description})`).join(" ") +
    " --plan takes a JSON plan with the fields name, description, rl (base jackpot rl " +
    'options), pretrain ({"policy": {...}, "actor": {...}}: jackpot pretrain options), axes ' +
    '({"mode": ["tis", "jackpot"]} or {"staleness": {"8x": {"prompts": 16}}}), seeds and ' +
    "baseline. Running the same command again resumes the sweep (finished runs are kept); " +
    "--list prints the commands for a cluster scheduler (pre-training, one run per --index, " +
    "report).",
  options: {
    preset: {
      type: "string",
      valueName: "NAME",
      description: `Built-in plan: ${
        SWEEP_PRESET_NAMES.join(", ")
      } (default ${DEFAULT_SWEEP_PRESET})`,
    },
    plan: { type: "string", valueName: "FILE", description: "JSON plan instead of a preset" },
    seeds: {
      type: "string",
      valueName: "LIST",
      description: "Replace the plan's seeds, e.g. 1,2,3",
    },
    set: {
      type: "string",
      valueName: "K=V,...",
      description: "Override jackpot rl options of every run, e.g. iterations=100,prompts=64",
    },
    stage: {
      type: "string",
      valueName: "STAGE",
      default: "all",
      description: "all, or only pretrain, runs or report",
    },
    index: {
      type: "string",
      valueName: "I",
      description: "Run only run I (0-based, the scheduler's array index)",
    },
    list: { type: "boolean", description: "Write plan.json and print the runs and commands" },
    out: {
      type: "string",
      valueName: "DIR",
      description: "Sweep folder (default runs/sweep-<name>-<UTC time>); an existing one resumes",
    },
    quiet: { type: "boolean", description: "No progress bars or run lines" },
    slurm: {
      type: "boolean",
      description: "Write plan.json and SLURM scripts (DIR/slurm/) instead of running",
    },
    "slurm-partition": { type: "string", valueName: "P", description: "SLURM partition" },
    "slurm-account": { type: "string", valueName: "A", description: "SLURM account" },
    "slurm-gpus": {
      type: "string",
      valueName: "N",
      default: "1",
      description: "GPUs per pre-training and run job (0: none)",
    },
    "slurm-cpus": {
      type: "string",
      valueName: "N",
      description: "CPUs per pre-training and run job",
    },
    "slurm-time": { type: "string", valueName: "HH:MM:SS", description: "Time limit of each job" },
    "slurm-max-parallel": {
      type: "string",
      valueName: "N",
      description: "At most N runs at once (array throttle)",
    },
    "slurm-sbatch": {
      type: "string",
      valueName: "OPTS",
      description:
        "More sbatch options for every job, space-separated (--slurm-sbatch='--mem=32G')",
    },
    "slurm-jackpot": {
      type: "string",
      valueName: "CMD",
      description: "The command jobs run jackpot with, space-separated (default: this program)",
    },
  },
  async run(values: ParsedValues): Promise<number> {
    const { plan, out, source } = await planFromValues(values);
    const stage: SweepStage = choiceOption(values, "stage", SWEEP_STAGES);
    if (source === "default" && (stage !== "all" || typeof values.index === "string")) {
      // A later stage of a sweep that was never started: most likely a mistyped --out.
      throw new UsageError(
        `${out} holds no plan.json, so there is no sweep to continue; start one with --preset ` +
          "or --plan (--list writes its plan.json without running)",
      );
    }
    const runs = expandSweep(plan);
    let chosen = runs;
    if (typeof values.index === "string") {
      const i = integerOption(values, "index", { min: 0, max: runs.length - 1 });
      if (stage !== "all" && stage !== "runs") {
        throw new UsageError(`--index runs one run; it does not go with --stage ${stage}`);
      }
      chosen = [runs[i]];
    }
    await validatePlan(plan, out);
    const quiet = values.quiet === true;
    const log = { info: (line: string) => quiet || console.log(line) };
    if (values.slurm === true) return await writeSlurm(values, plan, out);
    if (values.list === true) {
      await keepPlan(out, plan);
      console.log(`# ${plan.name}: ${runs.length} runs in ${out}/ (plan.json written)`);
      for (const line of schedulerCommands(plan, out)) console.log(line);
      return 0;
    }
    const outcome = await runInterruptibly("sweep", out, async (signal) => {
      await keepPlan(out, plan);
      if (stage === "all" || stage === "pretrain") {
        if (typeof values.index !== "string") {
          await runPretrainStage(plan, out, { quiet, signal, log });
        }
      }
      if (stage === "all" || stage === "runs") {
        await runRunsStage(plan, out, chosen, { quiet, signal, log });
      }
      // One array index reports nothing: the report job does, once every run is there.
      if ((stage === "all" && typeof values.index !== "string") || stage === "report") {
        const report = await writeSweepReport(plan, out);
        log.info(report.summary);
        if (report.complete) {
          await markFinished(out, plan, report.runs);
        } else {
          log.info(`${report.missing} of ${runs.length} runs are not finished yet`);
        }
        log.info(`Wrote ${out}/ (open index.html)`);
      }
    }, { marker: "sweep.json" });
    if ("exitCode" in outcome) {
      if (outcome.exitCode === INTERRUPTED) {
        console.error(
          `jackpot sweep: run the same command again to resume (finished runs are kept)`,
        );
      }
      return outcome.exitCode;
    }
    const failed = [];
    for (const run of chosen) {
      if (!(await isComplete(runDir(out, run)))) failed.push(run.id);
    }
    const ranRuns = stage === "all" || stage === "runs";
    if (ranRuns && failed.length > 0) {
      console.error(`jackpot sweep: ${failed.length} run(s) did not finish: ${failed.join(", ")}`);
      return 1;
    }
    return 0;
  },
};
