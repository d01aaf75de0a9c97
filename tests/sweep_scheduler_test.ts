/**
 * SLURM scripts of a sweep: every script parses (`bash -n`); submit.sh, run against a fake
 * `sbatch` that emulates SLURM (directives, arrays, filename patterns, afterok/afterany,
 * --kill-on-invalid-dep) and a fake `jackpot` that logs its argv, runs exactly the pre-training,
 * each run index once and the report, in dependency order; quoting carries awkward folder names
 * byte for byte; bad options are refused with a RangeError naming the option.
 */
import assert from "node:assert/strict";
import { expandSweep, parseSweepPlan, type SweepPlan } from "../src/sweep/plan.ts";
import {
  shellQuote,
  type SlurmOptions,
  slurmScripts,
  writeSlurmScripts,
} from "../src/sweep/scheduler.ts";
import { Rng } from "../src/util/rng.ts";

const RAW = {
  name: "grid",
  rl: { iterations: 2 },
  axes: { mode: ["tis", "jackpot"], staleness: { "1x": { prompts: 1 }, "4x": { prompts: 4 } } },
  seeds: [1, 2, 3],
};
const withPretrain = (): SweepPlan =>
  parseSweepPlan({ ...RAW, pretrain: { policy: { steps: 3 }, actor: { steps: 2 } } });
const withoutPretrain = (): SweepPlan => parseSweepPlan({ ...RAW, seeds: [7] });

// The fake scripts' bash text: raw (no escapes), with `$\{` standing for `${`, which a template
// literal would read as an interpolation.
const bash = (s: TemplateStringsArray) => s.raw.join("").replaceAll("$\\{", "${");

// Emulates the part of SLURM the scripts rely on, running each job at submission: by then every
// job it depends on has ended, so a dependency is checked against the recorded exit status.
const FAKE_SBATCH = bash`#!/usr/bin/env bash
set -euo pipefail
state=$\{FAKE_SLURM_STATE:?}
id=$(cat "$state/next_id" 2>/dev/null || echo 1000)
echo $((id + 1)) > "$state/next_id"
printf '%s\0' "$@" > "$state/args-$id"
parsable=0 array= output= dependency= name= kill_invalid=0
while [[ $# -gt 0 && $1 == -* ]]; do
  case $1 in
    --parsable) parsable=1 ;;
    --array=*) array=$\{1#*=} ;;
    --output=*) output=$\{1#*=} ;;
    --dependency=*) dependency=$\{1#*=} ;;
    --job-name=*) name=$\{1#*=} ;;
    --kill-on-invalid-dep=yes) kill_invalid=1 ;;
    --*=*) ;;
    *) echo "fake sbatch: unexpected option $1" >&2; exit 1 ;;
  esac
  shift
done
script=$1
# Directives count up to the first command, and the command line overrides them.
while IFS= read -r line; do
  [[ -z $line || $line == '#'* ]] || break
  case $line in
    '#SBATCH --array='*) [[ -n $array ]] || array=$\{line#*=} ;;
    '#SBATCH --job-name='*) [[ -n $name ]] || name=$\{line#*=} ;;
    '#SBATCH --output='*) [[ -n $output ]] || output=$\{line#*=} ;;
  esac
done < "$script"
if [[ $parsable == 1 ]]; then printf '%s%s\n' "$id" "$\{FAKE_SLURM_CLUSTER:+;$FAKE_SLURM_CLUSTER}"
else echo "Submitted batch job $id"; fi
if [[ -n $dependency ]]; then
  kind=$\{dependency%%:*} on=$\{dependency#*:}
  [[ -f $state/status-$on ]] || { echo "fake sbatch: no job $on" >&2; exit 1; }
  status=$(cat "$state/status-$on")
  if [[ $kind == afterok && $status != 0 ]]; then
    echo "$id never" >> "$state/ran"
    if [[ $kill_invalid == 1 ]]; then echo cancelled > "$state/status-$id"; fi
    exit 0
  elif [[ $kind != afterok && $kind != afterany ]]; then
    echo "fake sbatch: dependency type $kind" >&2; exit 1
  fi
fi
expand() { # pattern job array-job task name
  local p=$1 out= i
  for ((i = 0; i < $\{#p}; i++)); do
    if [[ $\{p:i:1} == % ]]; then
      i=$((i + 1))
      case $\{p:i:1} in
        %) out+=% ;; j) out+=$2 ;; A) out+=$3 ;; a) out+=$4 ;; x) out+=$5 ;;
        *) echo "fake sbatch: pattern %$\{p:i:1}" >&2; return 1 ;;
      esac
    else out+=$\{p:i:1}; fi
  done
  printf '%s' "$out"
}
spool="$state/spool-$id"
cp "$script" "$spool"
run_task() { # task ("" outside an array)
  local log rc=0
  if [[ -n $1 ]]; then
    log=$(expand "$\{output:-slurm-%A_%a.out}" "$id" "$id" "$1" "$name")
    echo "$id $1" >> "$state/ran"
    SLURM_JOB_ID=$id SLURM_ARRAY_JOB_ID=$id SLURM_ARRAY_TASK_ID=$1 bash "$spool" > "$log" 2>&1 || rc=1
  else
    log=$(expand "$\{output:-slurm-%j.out}" "$id" "$id" "" "$name")
    echo "$id -" >> "$state/ran"
    SLURM_JOB_ID=$id bash "$spool" > "$log" 2>&1 || rc=1
  fi
  return $rc
}
rc=0
if [[ -n $array ]]; then
  IFS=, read -ra parts <<< "$\{array%%\%*}"
  for part in "$\{parts[@]}"; do
    for ((t = $\{part%%-*}; t <= $\{part##*-}; t++)); do run_task "$t" || rc=1; done
  done
else
  run_task "" || rc=1
fi
echo "$rc" > "$state/status-$id"
`;

// Logs each call as NUL-separated fields: a marker, the array index it ran under, then argv.
const FAKE_JACKPOT = bash`#!/usr/bin/env bash
set -euo pipefail
printf '%s\0' "@@call" "$\{SLURM_ARRAY_TASK_ID:--}" "$@" >> "$FAKE_JACKPOT_LOG"
echo "fake jackpot ran: $*"
if [[ -n $\{FAKE_JACKPOT_FAIL:-} && "$*" == *"$FAKE_JACKPOT_FAIL" ]]; then exit 3; fi
`;

interface Cluster {
  root: string;
  bin: string;
  state: string;
  jackpot: string[];
  log: string;
}

async function fakeCluster(): Promise<Cluster> {
  const root = await Deno.makeTempDir({ prefix: "jackpot_slurm_" });
  const bin = `${root}/bin`;
  const state = `${root}/state`;
  await Deno.mkdir(bin);
  await Deno.mkdir(state);
  await Deno.writeTextFile(`${bin}/sbatch`, FAKE_SBATCH, { mode: 0o755 });
  // A space and a quote in the CLI's own path: the argv prefix is quoted too.
  const fake = `${root}/fake jack'pot.sh`;
  await Deno.writeTextFile(fake, FAKE_JACKPOT, { mode: 0o755 });
  return { root, bin, state, jackpot: ["bash", fake], log: `${root}/jackpot.log` };
}

interface Call {
  task: string;
  argv: string[];
}

async function calls(c: Cluster): Promise<Call[]> {
  const text = await Deno.readTextFile(c.log).catch(() => "");
  const fields = text.split("\0").slice(0, -1);
  const out: Call[] = [];
  for (let i = 0; i < fields.length; i++) {
    if (fields[i] === "@@call") out.push({ task: fields[++i], argv: [] });
    else out[out.length - 1].argv.push(fields[i]);
  }
  return out;
}

async function sbatchArgs(c: Cluster, id: number): Promise<string[]> {
  return (await Deno.readTextFile(`${c.state}/args-${id}`)).split("\0").slice(0, -1);
}

async function submit(
  c: Cluster,
  o: SlurmOptions,
  env: Record<string, string> = {},
  args: string[] = [],
) {
  const scripts = slurmScripts(o);
  await writeSlurmScripts(scripts);
  const r = await new Deno.Command("bash", {
    args: [`${scripts.dir}/submit.sh`, ...args],
    env: {
      PATH: `${c.bin}:${Deno.env.get("PATH")}`,
      FAKE_SLURM_STATE: c.state,
      FAKE_JACKPOT_LOG: c.log,
      ...env,
    },
    cwd: c.root,
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr), scripts };
}

const ids = (stdout: string) =>
  Object.fromEntries(
    stdout.trim().split("\n").map((l) => l.split("=")).map(([k, v]) => [k, Number(v)]),
  );

async function sweepFolder(c: Cluster, name: string, plan: SweepPlan): Promise<string> {
  const out = `${c.root}/${name}`;
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(`${out}/plan.json`, JSON.stringify(plan));
  return out;
}

Deno.test("shellQuote: bash reads every quoted string back byte for byte", async () => {
  const rng = new Rng(11);
  const alphabet = [..." \t\n'\"\\$`!*?[]{}()<>|&;#~=%^,.:/@+-_aZ09", "é", "→", "𝄞"];
  const strings = ["", "'", "''", "a'b", "$HOME", "~", "A=b", "-n", "*", "\n", "é 😀"];
  for (let i = 0; i < 300; i++) {
    const n = rng.int(12);
    strings.push(Array.from({ length: n }, () => alphabet[rng.int(alphabet.length)]).join(""));
  }
  const script = strings.map((s) => `printf '%s\\0' ${shellQuote(s)}`).join("\n");
  const r = await new Deno.Command("bash", { args: ["-c", script], cwd: "/" }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  assert.deepEqual(new TextDecoder().decode(r.stdout).split("\0").slice(0, -1), strings);
  assert.equal(shellQuote("runs/fig4"), "runs/fig4");
  assert.throws(() => shellQuote("a\0b"), RangeError);
});

Deno.test("every generated script passes bash -n, with and without pre-training", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jackpot_slurm_n_" });
  try {
    const variants: SlurmOptions[] = [
      { plan: withPretrain(), out: "runs/s", jackpot: ["jackpot"] },
      {
        plan: withoutPretrain(),
        out: `/x/it's "a" $(rm -rf) %j`,
        jackpot: ["deno", "run", "-A", "/a b/main.ts"],
        partition: "gpu,gpu-long",
        account: "proj_1",
        gpus: 0,
        cpus: 4,
        time: "2-00:30:00",
        maxParallel: 3,
        extraSbatch: ["--mem=32G", "--constraint=h100|a100"],
        workdir: "/work dir/x",
      },
    ];
    for (const [v, o] of variants.entries()) {
      const scripts = slurmScripts(o);
      const names = Object.keys(scripts.files).sort();
      const expected = ["report.sbatch", "runs.sbatch", "submit.sh"];
      if (o.plan.pretrain !== null) expected.unshift("pretrain.sbatch");
      assert.deepEqual(names, expected);
      for (const [name, text] of Object.entries(scripts.files)) {
        assert.ok(text.startsWith("#!/usr/bin/env bash\n"), name);
        assert.match(text, /^set -euo pipefail$/m, name);
        const path = `${dir}/${v}-${name}`;
        await Deno.writeTextFile(path, text);
        const r = await new Deno.Command("bash", { args: ["-n", path] }).output();
        assert.equal(r.code, 0, `${name}: ${new TextDecoder().decode(r.stderr)}`);
      }
    }
    // bash -n must be able to fail: a broken script is caught.
    await Deno.writeTextFile(`${dir}/broken.sh`, "if true; then\n  echo 'x\n");
    const r = await new Deno.Command("bash", { args: ["-n", `${dir}/broken.sh`] }).output();
    assert.notEqual(r.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("directives: array size and throttle, resources, and no GPU for the report", () => {
  const plan = withPretrain();
  const runs = expandSweep(plan).length;
  const s = slurmScripts({
    plan,
    out: "/s",
    jackpot: ["jackpot"],
    partition: "gpu",
    gpus: 2,
    cpus: 8,
    time: "04:00:00",
    maxParallel: 5,
    account: "acc",
    extraSbatch: ["--qos=high"],
  });
  const directives = (name: string) =>
    s.files[name].split("\n").filter((l) => l.startsWith("#SBATCH ")).map((l) => l.slice(8));
  assert.ok(directives("runs.sbatch").includes(`--array=0-${runs - 1}%5`));
  for (const name of ["pretrain.sbatch", "runs.sbatch"]) {
    for (const d of ["--gres=gpu:2", "--cpus-per-task=8", "--time=04:00:00", "--partition=gpu"]) {
      assert.ok(directives(name).includes(d), `${name} ${d}`);
    }
    assert.ok(
      directives(name).includes("--account=acc") && directives(name).includes("--qos=high"),
    );
  }
  assert.ok(!directives("report.sbatch").some((d) => d.startsWith("--gres")));
  assert.ok(directives("report.sbatch").includes("--partition=gpu"));
  assert.equal(s.dir, "/s/slurm");
  assert.equal(s.submit, "bash /s/slurm/submit.sh");
  const noThrottle = slurmScripts({ plan, out: "/s", jackpot: ["jackpot"], gpus: 0 });
  assert.match(noThrottle.files["runs.sbatch"], new RegExp(`^#SBATCH --array=0-${runs - 1}$`, "m"));
  assert.doesNotMatch(noThrottle.files["runs.sbatch"], /--gres/);
});

Deno.test("submit.sh end to end on a fake SLURM: pre-training, each run once, report, in order", async () => {
  const c = await fakeCluster();
  try {
    const plan = withPretrain();
    const runs = expandSweep(plan).length;
    const out = await sweepFolder(c, "sweep", plan);
    const r = await submit(
      c,
      { plan, out, jackpot: c.jackpot, maxParallel: 2 },
      { FAKE_SLURM_CLUSTER: "c1" },
      ["--qos=debug"],
    );
    assert.equal(r.code, 0, r.stderr);
    const id = ids(r.stdout);
    assert.deepEqual(Object.keys(id), ["pretrain", "runs", "report"]);
    assert.deepEqual([id.runs - id.pretrain, id.report - id.runs], [1, 1]);

    const log = await calls(c);
    const prefix = ["sweep", "--out", out];
    assert.deepEqual(log[0], { task: "-", argv: [...prefix, "--stage", "pretrain"] });
    const middle = log.slice(1, -1);
    assert.equal(middle.length, runs);
    assert.deepEqual(
      middle.map((x) => x.argv),
      Array.from({ length: runs }, (_, i) => [...prefix, "--index", String(i)]),
    );
    assert.ok(middle.every((x, i) => x.task === String(i)));
    assert.deepEqual(log[log.length - 1], { task: "-", argv: [...prefix, "--stage", "report"] });

    // The dependency flags name the right jobs; submit.sh's own arguments reach every sbatch.
    const pre = await sbatchArgs(c, id.pretrain);
    const arr = await sbatchArgs(c, id.runs);
    const rep = await sbatchArgs(c, id.report);
    assert.ok(!pre.some((a) => a.startsWith("--dependency")));
    assert.ok(arr.includes(`--dependency=afterok:${id.pretrain}`));
    assert.ok(arr.includes("--kill-on-invalid-dep=yes"));
    assert.ok(rep.includes(`--dependency=afterany:${id.runs}`));
    for (const a of [pre, arr, rep]) {
      assert.ok(a.includes("--parsable") && a.includes("--qos=debug"));
    }

    // Logs land in <out>/slurm/logs under the job name and ids.
    const logs = new Set<string>();
    for await (const e of Deno.readDir(`${out}/slurm/logs`)) logs.add(e.name);
    const expected = new Set([
      `jackpot-grid-pretrain-${id.pretrain}.out`,
      `jackpot-grid-report-${id.report}.out`,
      ...Array.from({ length: runs }, (_, i) => `jackpot-grid-runs-${id.runs}_${i}.out`),
    ]);
    assert.deepEqual(logs, expected);
    const runLog = await Deno.readTextFile(`${out}/slurm/logs/jackpot-grid-runs-${id.runs}_1.out`);
    assert.match(runLog, /--index 1$/m);
  } finally {
    await Deno.remove(c.root, { recursive: true });
  }
});

Deno.test("submit.sh without a pretrain stage submits two jobs; the report follows the array", async () => {
  const c = await fakeCluster();
  try {
    const plan = withoutPretrain();
    const runs = expandSweep(plan).length;
    const out = await sweepFolder(c, "s2", plan);
    const r = await submit(c, { plan, out, jackpot: c.jackpot });
    assert.equal(r.code, 0, r.stderr);
    const id = ids(r.stdout);
    assert.deepEqual(Object.keys(id), ["runs", "report"]);
    assert.ok(!(await sbatchArgs(c, id.runs)).some((a) => a.startsWith("--dependency")));
    assert.ok((await sbatchArgs(c, id.report)).includes(`--dependency=afterany:${id.runs}`));
    const log = await calls(c);
    assert.deepEqual(
      log.map((x) => x.argv.slice(3).join(" ")),
      [...Array.from({ length: runs }, (_, i) => `--index ${i}`), "--stage report"],
    );
  } finally {
    await Deno.remove(c.root, { recursive: true });
  }
});

Deno.test("afterany: a failed run still gets the report; afterok: a failed pre-training cancels the runs", async () => {
  const c = await fakeCluster();
  try {
    const plan = withPretrain();
    const runs = expandSweep(plan).length;
    const out = await sweepFolder(c, "f", plan);
    const r = await submit(c, { plan, out, jackpot: c.jackpot }, {
      FAKE_JACKPOT_FAIL: "--index 1",
    });
    assert.equal(r.code, 0, r.stderr);
    const log = (await calls(c)).map((x) => x.argv.slice(3).join(" "));
    assert.equal(log.length, runs + 2); // the other runs and the report ran regardless
    assert.equal(log[log.length - 1], "--stage report");
    assert.equal(await Deno.readTextFile(`${c.state}/status-${ids(r.stdout).runs}`), "1\n");

    await Deno.remove(c.log);
    const r2 = await submit(c, { plan, out, jackpot: c.jackpot }, {
      FAKE_JACKPOT_FAIL: "--stage pretrain",
    });
    assert.equal(r2.code, 0, r2.stderr);
    const id = ids(r2.stdout);
    const log2 = (await calls(c)).map((x) => x.argv.slice(3).join(" "));
    assert.deepEqual(log2, ["--stage pretrain", "--stage report"]);
    assert.equal(await Deno.readTextFile(`${c.state}/status-${id.runs}`), "cancelled\n");
  } finally {
    await Deno.remove(c.root, { recursive: true });
  }
});

Deno.test("quoting: a folder with spaces, quotes, $, % and a glob reaches jackpot unchanged", async () => {
  const c = await fakeCluster();
  try {
    const plan = withoutPretrain();
    const name = `sweep it's "$HOME" $(false) \`x\` %j %% *`;
    const out = await sweepFolder(c, name, plan);
    // Relative to workdir, to check the cd and that the jobs start in the submission folder.
    const r = await submit(c, { plan, out: name, jackpot: c.jackpot, workdir: c.root });
    assert.equal(r.code, 0, r.stderr);
    const log = await calls(c);
    assert.equal(log.length, expandSweep(plan).length + 1);
    for (const x of log) assert.equal(x.argv[2], name);
    let n = 0;
    for await (const _ of Deno.readDir(`${out}/slurm/logs`)) n++;
    assert.equal(n, log.length);
  } finally {
    await Deno.remove(c.root, { recursive: true });
  }
});

Deno.test("submit.sh refuses to submit without plan.json", async () => {
  const c = await fakeCluster();
  try {
    const r = await submit(c, {
      plan: withoutPretrain(),
      out: `${c.root}/empty`,
      jackpot: c.jackpot,
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /plan\.json is missing/);
    assert.equal(await Deno.stat(`${c.state}/next_id`).catch(() => null), null); // nothing submitted
  } finally {
    await Deno.remove(c.root, { recursive: true });
  }
});

Deno.test("bad options are refused with a RangeError naming the option", () => {
  const base: SlurmOptions = { plan: withPretrain(), out: "/s", jackpot: ["jackpot"] };
  const bad: Array<[Partial<SlurmOptions>, RegExp]> = [
    [{ time: "4h" }, /^time/],
    [{ time: "04:60:00" }, /^time/],
    [{ time: "00:00:00" }, /^time/],
    [{ time: "1:2:3" }, /^time/],
    [{ gpus: -1 }, /^gpus/],
    [{ gpus: 1.5 }, /^gpus/],
    [{ cpus: 0 }, /^cpus/],
    [{ maxParallel: 0 }, /^maxParallel/],
    [{ maxParallel: NaN }, /^maxParallel/],
    [{ partition: "gpu long" }, /^partition/],
    [{ partition: "gpu\n#SBATCH --x" }, /^partition/],
    [{ partition: "" }, /^partition/],
    [{ account: "a\tb" }, /^account/],
    [{ account: "--x" }, /^account/],
    [{ extraSbatch: ["--mem 32G"] }, /^extraSbatch/],
    [{ extraSbatch: ["mem=32G"] }, /^extraSbatch/],
    [{ extraSbatch: ["--array=0-3"] }, /^extraSbatch: --array/],
    [{ extraSbatch: ["-oX"] }, /^extraSbatch: -o/],
    [{ extraSbatch: ["--dependency=afterok:1"] }, /^extraSbatch: --dependency/],
    [{ out: "" }, /^out/],
    [{ out: "a\nb" }, /^out/],
    [{ out: "a\\b" }, /^out/],
    [{ jackpot: [] }, /^jackpot/],
    [{ jackpot: ["a\0"] }, /^jackpot/],
    [{ workdir: "" }, /^workdir/],
    [{ workdir: "relative/dir" }, /^workdir/],
  ];
  for (const [o, re] of bad) {
    assert.throws(() => slurmScripts({ ...base, ...o }), (e: unknown) => {
      assert.ok(e instanceof RangeError, `${JSON.stringify(o)}: ${e}`);
      assert.match(e.message, re, JSON.stringify(o));
      return true;
    });
  }
  // The accepted forms next to them.
  for (const time of ["04:00:00", "0:30:00", "2-00:00:00", "100:00:00"]) {
    slurmScripts({ ...base, time });
  }
  slurmScripts({ ...base, gpus: 0, cpus: 1, maxParallel: 1, partition: "a,b", account: "x.y" });
});
