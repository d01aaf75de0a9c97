/**
 * Cluster-scheduler scripts for a sweep: SLURM batch scripts for its three stages and a
 * `submit.sh` that chains them with job dependencies.
 *
 * A sweep runs as three jobs: pre-training the starting models (only when the plan has a
 * `pretrain` stage), the runs as one array job (array index = run index, `--index
 * $SLURM_ARRAY_TASK_ID`), and the report. The dependencies are chosen for what each stage needs:
 *
 * - the runs wait `afterok` on pre-training: a run without its starting models would fail or,
 *   worse, train from the wrong models. If pre-training fails the array can never start, so it
 *   is submitted with `--kill-on-invalid-dep=yes` and SLURM cancels it instead of leaving it
 *   pending forever.
 * - the report waits `afterany` on the array: one crashed or timed-out run must not keep the
 *   others from being reported. The report counts the missing runs, and `sweep.json` is only
 *   written once every run is finished; re-submitting `submit.sh` (or one array index) redoes
 *   only what is missing, because a finished run is skipped.
 *
 * SLURM is the one scheduler supported. The structure maps directly onto others — PBS Pro's
 * `qsub -J 0-N` (index `$PBS_ARRAY_INDEX`), LSF's `bsub -J "name[1-N]"` (`$LSB_JOBINDEX`, 1-based),
 * SGE's `qsub -t 1-N` (`$SGE_TASK_ID`, 1-based) with their own dependency flags — but they are not
 * implemented here.
 *
 * Values that depend on the sweep folder (log paths) are passed on the `sbatch` command line,
 * shell-quoted, rather than in `#SBATCH` lines, whose quoting rules vary between SLURM versions;
 * `#SBATCH` lines only hold validated values without spaces or quotes.
 *
 * @example
 * ```ts
 * const scripts = slurmScripts({
 *   plan, out: "/scratch/sweeps/fig4", jackpot: ["jackpot"], partition: "gpu", time: "04:00:00",
 *   maxParallel: 8,
 * });
 * await writeSlurmScripts(scripts);
 * console.log(scripts.submit); // bash /scratch/sweeps/fig4/slurm/submit.sh
 * ```
 *
 * @module
 */
import { expandSweep, type SweepPlan } from "./plan.ts";

/** The folder inside the sweep folder that holds the scripts (and `logs/`). */
export const SLURM_FOLDER = "slurm";

/** Options of {@link slurmScripts}. */
export interface SlurmOptions {
  /** The sweep plan (the one written to `<out>/plan.json`). */
  plan: SweepPlan;
  /** The sweep folder, as the jobs will see it (absolute, or relative to `workdir`). */
  out: string;
  /** The argv prefix that runs the CLI, e.g. `["jackpot"]` or `["deno", "run", "-A", "/abs/main.ts"]`. */
  jackpot: string[];
  /** SLURM partition (`--partition`), or the cluster's default. */
  partition?: string;
  /** GPUs per pre-training and run job (`--gres=gpu:N`); 0 asks for none. Default 1. */
  gpus?: number;
  /** CPUs per pre-training and run job (`--cpus-per-task`), or the cluster's default. */
  cpus?: number;
  /** Time limit of each job, `HH:MM:SS` or `D-HH:MM:SS`, or the partition's default. */
  time?: string;
  /** At most this many runs at once (the array throttle `%N`), or no limit. */
  maxParallel?: number;
  /** Account to charge (`--account`), or the user's default. */
  account?: string;
  /** More `#SBATCH` options for every job, one option each, e.g. `["--mem=32G", "--qos=high"]`. */
  extraSbatch?: string[];
  /**
   * Absolute folder `submit.sh` changes to before submitting; SLURM starts each job in the folder it was
   * submitted from, so a relative `out` or `jackpot` path resolves against it. Default: wherever
   * `submit.sh` is run.
   */
  workdir?: string;
}

/** What {@link slurmScripts} returns. */
export interface SlurmScripts {
  /** File name → text: `pretrain.sbatch` (when the plan pre-trains), `runs.sbatch`, `report.sbatch`, `submit.sh`. */
  files: Record<string, string>;
  /**
   * Where the files belong: `<out>/slurm`, under `workdir` when `out` is relative (`submit.sh`
   * finds the others beside itself).
   */
  dir: string;
  /** The shell command that submits the sweep, e.g. `bash /scratch/fig4/slurm/submit.sh`. */
  submit: string;
}

// Characters that never need quoting in a bash word. `=` is left out (a first word `A=b` would be
// an assignment), and so are `~` (tilde expansion) and every glob and expansion character.
const BARE = /^[A-Za-z0-9_\/.,:+@%-]+$/;

/**
 * Quotes `s` as one bash word that expands to exactly `s`: bare when it holds only safe
 * characters, otherwise in single quotes (inside which nothing expands), with each `'` written as
 * `'\''`. A NUL cannot be part of a shell word or an argument, so it is refused.
 *
 * @example
 * ```ts
 * shellQuote("runs/fig4");   // runs/fig4
 * shellQuote("it's $HOME");  // 'it'\''s $HOME'
 * shellQuote("");            // ''
 * ```
 */
export function shellQuote(s: string): string {
  if (s.includes("\0")) {
    throw new RangeError(`cannot quote a string holding a NUL: ${JSON.stringify(s)}`);
  }
  if (BARE.test(s)) return s;
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

// A SLURM filename pattern reads `%` as the start of a replacement (`%j`, `%A`, ...); `%%` is a
// literal `%`.
const slurmLiteral = (path: string) => path.replaceAll("%", "%%");

// Safe in an `#SBATCH` line: no spaces, quotes, backslashes, `#` or control characters.
const DIRECTIVE_VALUE = /^[A-Za-z0-9_.,:+@%|&*!\[\]\/=-]+$/;
// A partition or account name (a comma list of partitions included).
const NAME = /^[A-Za-z0-9_.+][A-Za-z0-9_.,+-]*$/;
const TIME = /^(?:(\d+)-)?(\d+):([0-5]\d):([0-5]\d)$/;

// Options the scripts set themselves; an extra one would silently override them.
const MANAGED_SBATCH = new Map<string, string>([
  ["--array", "the runs' array is the plan's runs (use maxParallel to throttle)"],
  ["-a", "the runs' array is the plan's runs (use maxParallel to throttle)"],
  ["--dependency", "submit.sh chains the stages"],
  ["-d", "submit.sh chains the stages"],
  ["--output", "logs go to <out>/slurm/logs"],
  ["-o", "logs go to <out>/slurm/logs"],
  ["--error", "logs go to <out>/slurm/logs"],
  ["-e", "logs go to <out>/slurm/logs"],
  ["--job-name", "job names are jackpot-<plan>-<stage>"],
  ["-J", "job names are jackpot-<plan>-<stage>"],
  ["--parsable", "submit.sh reads the job ids"],
  ["--kill-on-invalid-dep", "submit.sh sets it on the runs"],
]);

function count(value: number | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

function directive(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (!NAME.test(value)) {
    throw new RangeError(
      `${name} must be a name of letters, digits, '_', '.', '+', '-' (a list: commas), got ${
        JSON.stringify(value)
      }`,
    );
  }
  return value;
}

function timeLimit(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const m = TIME.exec(value);
  if (!m) {
    throw new RangeError(
      `time must be HH:MM:SS or D-HH:MM:SS (minutes and seconds below 60), got ${
        JSON.stringify(value)
      }`,
    );
  }
  if (m.slice(1).every((p) => p === undefined || Number(p) === 0)) {
    throw new RangeError(`time must be longer than zero, got ${JSON.stringify(value)}`);
  }
  return value;
}

function extraOption(option: string): string {
  if (!option.startsWith("-") || !DIRECTIVE_VALUE.test(option)) {
    throw new RangeError(
      `extraSbatch: ${
        JSON.stringify(option)
      } must be one sbatch option such as --mem=32G (no spaces, quotes, '#' or newlines)`,
    );
  }
  const name = option.startsWith("--") ? option.split("=")[0] : option.slice(0, 2);
  const why = MANAGED_SBATCH.get(name);
  if (why !== undefined) {
    throw new RangeError(`extraSbatch: ${name} is set by the scripts (${why})`);
  }
  return option;
}

function checkOut(out: string): string {
  if (typeof out !== "string" || out.trim() === "") {
    throw new RangeError(`out must name the sweep folder, got ${JSON.stringify(out)}`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(out)) {
    throw new RangeError(
      `out must not hold control characters (newlines, tabs): ${JSON.stringify(out)}`,
    );
  }
  // SLURM reads a backslash in --output as "expand no % patterns": every log would share one file.
  if (out.includes("\\")) {
    throw new RangeError(`out must not hold a backslash (SLURM log paths): ${JSON.stringify(out)}`);
  }
  return out.replace(/\/+$/, "") || "/";
}

function checkJackpot(argv: string[]): string[] {
  if (!Array.isArray(argv) || argv.length === 0 || argv[0] === "") {
    throw new RangeError(`jackpot must be the argv prefix that runs the CLI, e.g. ["jackpot"]`);
  }
  for (const a of argv) {
    if (typeof a !== "string" || a.includes("\0")) {
      throw new RangeError(
        `jackpot: every argument must be a string without NUL, got ${JSON.stringify(a)}`,
      );
    }
  }
  return argv;
}

interface Job {
  stage: "pretrain" | "runs" | "report";
  summary: string;
  directives: string[];
  body: string[];
}

function jobScript(job: Job): string {
  return [
    "#!/usr/bin/env bash",
    ...job.directives.map((d) => `#SBATCH ${d}`),
    ...job.summary.split("\n").map((l) => `# ${l}`),
    "set -euo pipefail",
    ...job.body,
    "",
  ].join("\n");
}

/**
 * SLURM scripts for a sweep: `pretrain.sbatch` (only when `plan.pretrain` is set), `runs.sbatch`
 * (an array job, one run per index), `report.sbatch`, and `submit.sh`, which submits them in
 * order with `--parsable` and chains them (runs `afterok` on pre-training, report `afterany` on
 * the runs), then prints `pretrain=ID`, `runs=ID` and `report=ID`. Write them to `dir` with
 * {@link writeSlurmScripts}; `<out>/plan.json` must exist when `submit.sh` runs (the jobs read the
 * plan from it). Arguments given to `submit.sh` go to every `sbatch` call (e.g. `--qos=debug`).
 * A RangeError names the first option that cannot be valid. The report job asks for no GPU.
 * SLURM caps an array at `MaxArraySize` (1001 by default: indices 0–1000); a larger sweep is
 * refused at submission by `sbatch`.
 */
export function slurmScripts(o: SlurmOptions): SlurmScripts {
  const out = checkOut(o.out);
  const jackpot = checkJackpot(o.jackpot);
  const gpus = count(o.gpus ?? 1, "gpus", 0)!;
  const cpus = count(o.cpus, "cpus", 1);
  const maxParallel = count(o.maxParallel, "maxParallel", 1);
  const partition = directive(o.partition, "partition");
  const account = directive(o.account, "account");
  const time = timeLimit(o.time);
  const extra = (o.extraSbatch ?? []).map(extraOption);
  if (o.workdir !== undefined && (!o.workdir.startsWith("/") || o.workdir.includes("\0"))) {
    throw new RangeError(`workdir must be an absolute path, got ${JSON.stringify(o.workdir)}`);
  }
  const runs = expandSweep(o.plan).length;
  if (runs < 1) throw new RangeError(`plan ${o.plan.name} has no runs`);

  const name = `jackpot-${o.plan.name}`;
  const common = (compute: boolean) => [
    "--ntasks=1",
    ...(compute && gpus > 0 ? [`--gres=gpu:${gpus}`] : []),
    ...(compute && cpus !== undefined ? [`--cpus-per-task=${cpus}`] : []),
    ...(time !== undefined ? [`--time=${time}`] : []),
    ...(partition !== undefined ? [`--partition=${partition}`] : []),
    ...(account !== undefined ? [`--account=${account}`] : []),
    ...extra,
  ];
  const cli = jackpot.map(shellQuote).join(" ");
  const prelude = [
    `out=${shellQuote(out)}`,
    // Without plan.json, `jackpot sweep --out DIR` would fall back to the default preset.
    'if [[ ! -f "$out/plan.json" ]]; then',
    '  echo "jackpot sweep: $out/plan.json is missing (write it with jackpot sweep --list)" >&2',
    "  exit 2",
    "fi",
  ];
  const files: Record<string, string> = {};
  const stages: Job[] = [];
  if (o.plan.pretrain !== null) {
    stages.push({
      stage: "pretrain",
      summary:
        `jackpot sweep ${o.plan.name}, stage 1 of 3: pre-train the models every run starts from.`,
      directives: [`--job-name=${name}-pretrain`, ...common(true)],
      body: [...prelude, `exec ${cli} sweep --out "$out" --stage pretrain`],
    });
  }
  stages.push({
    stage: "runs",
    summary: `jackpot sweep ${o.plan.name}: the ${runs} runs, one per array index ` +
      `(index = run index in plan.json).\nA finished run is skipped, so re-submitting the array ` +
      "or one index is safe.",
    directives: [
      `--job-name=${name}-runs`,
      `--array=0-${runs - 1}${maxParallel !== undefined ? `%${maxParallel}` : ""}`,
      ...common(true),
    ],
    body: [
      ': "${SLURM_ARRAY_TASK_ID:?runs.sbatch is an array job: submit it with sbatch --array}"',
      ...prelude,
      `exec ${cli} sweep --out "$out" --index "$SLURM_ARRAY_TASK_ID"`,
    ],
  });
  stages.push({
    stage: "report",
    summary: `jackpot sweep ${o.plan.name}, last stage: aggregate the runs (missing ones are ` +
      "counted;\nsweep.json is written once every run is finished).",
    directives: [`--job-name=${name}-report`, ...common(false)],
    body: [...prelude, `exec ${cli} sweep --out "$out" --stage report`],
  });
  for (const job of stages) files[`${job.stage}.sbatch`] = jobScript(job);
  files["submit.sh"] = submitScript(o.plan, out, runs, o.workdir, stages.length === 3);
  // Where submit.sh's `$out` is, seen from here: a relative out lives under workdir.
  const base = o.workdir !== undefined && !out.startsWith("/")
    ? `${o.workdir.replace(/\/+$/, "")}/${out}`
    : out === "/"
    ? ""
    : out;
  const dir = `${base}/${SLURM_FOLDER}`;
  return { files, dir, submit: `bash ${shellQuote(`${dir}/submit.sh`)}` };
}

function submitScript(
  plan: SweepPlan,
  out: string,
  runs: number,
  workdir: string | undefined,
  pretrain: boolean,
): string {
  const logs = `${slurmLiteral(out === "/" ? "" : out)}/${SLURM_FOLDER}/logs`;
  const lines = [
    "#!/usr/bin/env bash",
    `# Submits jackpot sweep ${plan.name} (${runs} runs) to SLURM${
      pretrain ? ": pre-training, then" : ":"
    } the runs as one array job, then the report.`,
    ...(pretrain
      ? ["# The runs wait for pre-training to succeed (afterok; cancelled if it fails)."]
      : []),
    "# The report waits for every run to end however it ended (afterany) and counts missing runs.",
    "# Re-submitting is safe: finished runs are skipped. Arguments go to every sbatch call,",
    "# e.g. bash submit.sh --qos=debug. Prints the job ids as stage=ID.",
    "set -euo pipefail",
    'here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)',
    ...(workdir !== undefined ? [`cd -- ${shellQuote(workdir)}`] : []),
    `out=${shellQuote(out)}`,
    // A log path is a SLURM filename pattern: the folder's own % are doubled.
    `logs=${shellQuote(logs)}`,
    'if [[ ! -f "$out/plan.json" ]]; then',
    '  echo "submit.sh: $out/plan.json is missing (write it with jackpot sweep --list)" >&2',
    "  exit 2",
    "fi",
    `mkdir -p -- "$out/${SLURM_FOLDER}/logs"`,
    "job_id() { # sbatch --parsable prints ID or ID;CLUSTER",
    "  local id=${1%%;*}",
    "  if [[ ! $id =~ ^[0-9]+$ ]]; then echo \"submit.sh: sbatch printed '$1', not a job id\" >&2; return 1; fi",
    '  printf "%s" "$id"',
    "}",
  ];
  let after = "";
  if (pretrain) {
    lines.push(
      'pretrain=$(job_id "$(sbatch --parsable "$@" "--output=$logs/%x-%j.out" "$here/pretrain.sbatch")")',
      'echo "pretrain=$pretrain"',
    );
    after = ' "--dependency=afterok:$pretrain" --kill-on-invalid-dep=yes';
  }
  lines.push(
    `runs=$(job_id "$(sbatch --parsable "$@"${after} "--output=$logs/%x-%A_%a.out" "$here/runs.sbatch")")`,
    'echo "runs=$runs"',
    'report=$(job_id "$(sbatch --parsable "$@" "--dependency=afterany:$runs" "--output=$logs/%x-%j.out" "$here/report.sbatch")")',
    'echo "report=$report"',
    `echo "follow with: squeue -j ${
      pretrain ? "$pretrain," : ""
    }$runs,$report (logs in $out/${SLURM_FOLDER}/logs)" >&2`,
    "",
  );
  return lines.join("\n");
}

/**
 * Writes the scripts into `scripts.dir` (created if needed), `submit.sh` executable, and returns
 * the paths written.
 */
export async function writeSlurmScripts(scripts: SlurmScripts): Promise<string[]> {
  await Deno.mkdir(scripts.dir, { recursive: true });
  const paths: string[] = [];
  for (const [name, text] of Object.entries(scripts.files)) {
    const path = `${scripts.dir}/${name}`;
    await Deno.writeTextFile(path, text);
    // mode on writeTextFile only applies to a new file; a rewritten one keeps its old mode.
    await Deno.chmod(path, name.endsWith(".sh") ? 0o755 : 0o644);
    paths.push(path);
  }
  return paths;
}
