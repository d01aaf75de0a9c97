/**
 * What `jackpot sweep` does with a plan: keep it in the sweep folder, pre-train the starting
 * models once, run every `jackpot rl` run of the grid into its own folder (skipping the finished
 * ones, so a sweep resumes where it stopped), then aggregate. Each stage can run on its own, so a
 * cluster scheduler can run the pre-training, then one run per array index, then the report.
 *
 * Layout of a sweep folder:
 * ```
 * plan.json                        the plan, in canonical form (written first)
 * pretrained/{policy,actor}/       jackpot pretrain run folders (their model/ starts every run)
 * runs/<id>/                       one jackpot rl run folder per run; config.json marks it done
 * runs/<id>/error.txt              a run that failed (the sweep goes on with the others)
 * runs/<id>.lock                   held while a process runs it (several workers share a folder)
 * summary/, index.html             the report (see sweep_report.ts); sweep.json last
 * ```
 *
 * @module
 */
import { parseCommandArgs, UsageError } from "../command.ts";
import { command as rlCommand, rlConfigFromValues } from "./rl.ts";
import { type RlRunConfig, runRl } from "./rl_run.ts";
import {
  command as pretrainCommand,
  type PretrainConfig,
  pretrainConfigFromValues,
  runPretrain,
} from "./pretrain.ts";
import { DEFAULT_RL_TASK } from "./rl.ts";
import {
  expandSweep,
  optionArgs,
  type OptionValues,
  type SweepPlan,
  type SweepRun,
} from "../../sweep/plan.ts";
import { writeFileAtomic, writeJsonAtomic } from "../../report/mod.ts";
import { ModelConfigError, parseModelSpec } from "../../nn/config.ts";
import { loadTaskFromSpec } from "../../tasks/mod.ts";

/** The folder of a run inside a sweep folder. */
export function runDir(dir: string, run: SweepRun): string {
  return `${dir}/runs/${run.id}`;
}

/** The pre-training folder of a role inside a sweep folder. */
export function pretrainDir(dir: string, role: "policy" | "actor"): string {
  return `${dir}/pretrained/${role}`;
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

/** Whether a run or pre-training folder is complete (its config.json is written last). */
export function isComplete(folder: string): Promise<boolean> {
  return exists(`${folder}/config.json`);
}

/**
 * Claims a run or pre-training folder for this process: creates `<folder>.lock` (exclusively, so
 * two processes on one sweep folder never run the same run) holding who took it. Returns the
 * release function, or the holder's description when another process has it.
 */
export async function claim(folder: string): Promise<(() => Promise<void>) | string> {
  const path = `${folder}.lock`;
  await Deno.mkdir(folder.slice(0, folder.lastIndexOf("/")), { recursive: true });
  try {
    const file = await Deno.open(path, { createNew: true, write: true });
    const holder = `pid ${Deno.pid} on ${hostname()} since ${new Date().toISOString()}`;
    await file.write(new TextEncoder().encode(holder + "\n"));
    file.close();
    return () => Deno.remove(path).catch(() => {});
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    const holder = await Deno.readTextFile(path).catch(() => "another process\n");
    return `${holder.trim()} (${path}; delete it if that process is gone)`;
  }
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "this host";
  }
}

/** The task every run of the plan uses. */
export function planTask(plan: SweepPlan): string {
  return typeof plan.rl.task === "string" ? plan.rl.task : DEFAULT_RL_TASK;
}

/** The `jackpot pretrain` settings of a role, checked as the command line would check them. */
export async function pretrainConfigOf(
  plan: SweepPlan,
  role: "policy" | "actor",
): Promise<PretrainConfig | null> {
  const o = plan.pretrain?.[role];
  if (!o) return null;
  try {
    const values = parseCommandArgs(
      pretrainCommand,
      optionArgs({ ...o, task: planTask(plan) }),
    );
    const config = pretrainConfigFromValues(values);
    // The model spec is otherwise read only when the stage runs: check it with the plan.
    parseModelSpec(config.model, (await loadTaskFromSpec(config.task)).tokenizer.vocabSize);
    return config;
  } catch (e) {
    if (e instanceof UsageError || e instanceof ModelConfigError) {
      throw new UsageError(`pretrain.${role}: ${e.message}`);
    }
    if (e instanceof Error && !(e instanceof TypeError)) {
      throw new UsageError(`pretrain.${role}: task ${planTask(plan)}: ${e.message}`);
    }
    throw e;
  }
}

/**
 * A run's `jackpot rl` settings, checked as the command line would check them; a pre-trained role
 * starts from `pretrained/<role>/model`.
 */
export async function rlRunConfigOf(
  plan: SweepPlan,
  run: SweepRun,
  dir: string,
): Promise<RlRunConfig> {
  const options: OptionValues = { ...run.options };
  for (const role of ["policy", "actor"] as const) {
    if (plan.pretrain?.[role]) options[role] = `${pretrainDir(dir, role)}/model`;
  }
  try {
    return await rlConfigFromValues(parseCommandArgs(rlCommand, optionArgs(options)));
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`run ${run.id}: ${e.message}`);
    throw e;
  }
}

/**
 * Checks every setting of the plan before anything runs (the pre-training options, and each run's
 * options except the model folders, which may not exist yet): a bad value in the twelfth run is
 * found before the first one spends minutes.
 */
export async function validatePlan(plan: SweepPlan, dir: string): Promise<void> {
  await pretrainConfigOf(plan, "policy");
  await pretrainConfigOf(plan, "actor");
  for (const run of expandSweep(plan)) await rlRunConfigOf(plan, run, dir);
}

/**
 * Writes `plan.json` into a new or empty sweep folder, or checks that the folder's plan is this
 * one (a sweep resumes only with the plan it started with).
 */
export async function keepPlan(dir: string, plan: SweepPlan): Promise<void> {
  const path = `${dir}/plan.json`;
  const text = JSON.stringify(plan, null, 2) + "\n";
  if (await exists(path)) {
    const held = await Deno.readTextFile(path);
    if (held !== text) {
      throw new UsageError(
        `${dir}/plan.json holds a different plan than the one given; continue it without ` +
          "--preset/--plan/--seeds/--set, or give another --out",
      );
    }
    return;
  }
  const stat = await Deno.stat(dir).catch(() => null);
  if (stat && !stat.isDirectory) throw new UsageError(`--out ${dir} is a file, not a folder`);
  if (stat) {
    for await (const _ of Deno.readDir(dir)) {
      throw new UsageError(`--out ${dir} is not empty and holds no plan.json (not a sweep folder)`);
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(path, text);
}

/** Reads the plan of an existing sweep folder, or null when it has none. */
export async function readPlanJson(dir: string): Promise<unknown | null> {
  const text = await Deno.readTextFile(`${dir}/plan.json`).catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${dir}/plan.json is not valid JSON: ${(e as Error).message}`);
  }
}

/** Console lines of a stage; `quiet` silences them (errors still go to stderr). */
export interface SweepLog {
  /** A line about progress. */
  info(line: string): void;
}

/**
 * Pre-trains each role the plan pre-trains, unless its folder is already complete. A model that
 * stops below its target accuracy is kept (the report says so); the runs start from it.
 */
export async function runPretrainStage(
  plan: SweepPlan,
  dir: string,
  { quiet = false, signal, log }: { quiet?: boolean; signal?: AbortSignal; log: SweepLog },
): Promise<void> {
  for (const role of ["policy", "actor"] as const) {
    const config = await pretrainConfigOf(plan, role);
    if (!config) continue;
    const folder = pretrainDir(dir, role);
    const release = await claimOrWait(folder, `pretrained/${role}`, log, signal);
    if (release === null) {
      log.info(`pretrained/${role}: done before, kept`);
      continue;
    }
    let r;
    try {
      // An interrupted pre-training starts over: its checkpoints would not resume the schedule.
      await Deno.remove(folder, { recursive: true }).catch(() => {});
      log.info(
        `pretrained/${role}: jackpot pretrain ${optionArgs(plan.pretrain![role]!).join(" ")}`,
      );
      r = await runPretrain(config, folder, { quiet, signal });
    } finally {
      await release();
    }
    const last = r.result.evals[r.result.evals.length - 1];
    const acc = `${(100 * (last?.accuracy ?? 0)).toFixed(1)}%`;
    if (!r.result.reached) {
      console.error(
        `jackpot sweep: pretrained/${role} stopped at ${acc}, below its target ` +
          `${(100 * config.target).toFixed(0)}%; the runs start from it anyway`,
      );
    } else log.info(`pretrained/${role}: ${acc} after ${last?.step ?? 0} steps`);
  }
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", stop);
      resolve();
    }
    function stop() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    if (signal?.aborted) return stop();
    signal?.addEventListener("abort", stop, { once: true });
  });
}

// Claims `folder`, waiting while another worker holds it (a second worker started while the first
// pre-trains); null once the folder is complete.
async function claimOrWait(
  folder: string,
  what: string,
  log: SweepLog,
  signal?: AbortSignal,
): Promise<(() => Promise<void>) | null> {
  for (let waited = false;; waited = true) {
    if (await isComplete(folder)) return null;
    const release = await claim(folder);
    if (typeof release !== "string") {
      if (!(await isComplete(folder))) return release;
      await release(); // finished between the check and the claim
      return null;
    }
    if (!waited) log.info(`${what}: waiting for ${release}`);
    await abortableSleep(2000, signal);
  }
}

/** What happened to one run of {@link runRunsStage}. */
export interface RunOutcome {
  /** The run. */
  run: SweepRun;
  /**
   * `done` (ran now), `kept` (complete before), `failed` (error.txt says why), or `busy` (another
   * process holds it).
   */
  status: "done" | "kept" | "failed" | "busy";
  /** The error's message when it failed, or the holder when busy. */
  error?: string;
}

/**
 * Runs the given runs in order, each into its own folder. A complete run is kept; an incomplete
 * one (an earlier interruption) is removed and run again. A run that fails (a diverged model, a
 * NaN caught by the trainer) writes `error.txt` and the others go on: a collapse is a result of
 * the sweep, not the end of it. An interruption (the signal) stops at once.
 */
export async function runRunsStage(
  plan: SweepPlan,
  dir: string,
  runs: readonly SweepRun[],
  { quiet = false, signal, log }: { quiet?: boolean; signal?: AbortSignal; log: SweepLog },
): Promise<RunOutcome[]> {
  for (const role of ["policy", "actor"] as const) {
    if (plan.pretrain?.[role] && !(await isComplete(pretrainDir(dir, role)))) {
      throw new UsageError(
        `pretrained/${role} is not complete in ${dir}; run the pre-training first ` +
          `(jackpot sweep --out ${dir} --stage pretrain)`,
      );
    }
  }
  const total = expandSweep(plan).length;
  const outcomes: RunOutcome[] = [];
  for (const run of runs) {
    signal?.throwIfAborted();
    const folder = runDir(dir, run);
    if (await isComplete(folder)) {
      outcomes.push({ run, status: "kept" });
      continue;
    }
    const release = await claim(folder);
    if (typeof release === "string") {
      console.error(`jackpot sweep: run ${run.id} skipped: another process runs it, ${release}`);
      outcomes.push({ run, status: "busy", error: release });
      continue;
    }
    try {
      // Finished by another process between the check and the claim: nothing to do.
      if (await isComplete(folder)) {
        outcomes.push({ run, status: "kept" });
        continue;
      }
      await Deno.remove(folder, { recursive: true }).catch(() => {});
      await Deno.mkdir(folder, { recursive: true });
      log.info(`run ${run.index + 1}/${total}: ${run.id}`);
      try {
        await runRl(await rlRunConfigOf(plan, run, dir), folder, { force: true, quiet, signal });
        outcomes.push({ run, status: "done" });
      } catch (e) {
        if (signal?.aborted || e instanceof UsageError) throw e;
        const message = e instanceof Error ? e.message : String(e);
        await writeFileAtomic(`${folder}/error.txt`, message + "\n");
        console.error(`jackpot sweep: run ${run.id} failed: ${message}`);
        outcomes.push({ run, status: "failed", error: message });
      }
    } finally {
      await release();
    }
  }
  return outcomes;
}

/** Writes `sweep.json`, the mark of a finished sweep (last, after the report). */
export async function markFinished(
  dir: string,
  plan: SweepPlan,
  outcomes: readonly { id: string; status: string }[],
  extra: Record<string, unknown> = {},
): Promise<void> {
  await writeJsonAtomic(`${dir}/sweep.json`, { plan: plan.name, runs: outcomes, ...extra });
}
