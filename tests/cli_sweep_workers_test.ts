/**
 * `jackpot sweep` beyond the happy path: two workers on one sweep folder run each run once; a run
 * another process holds is skipped and named; a failed run leaves error.txt while the others
 * finish and the report counts it; --slurm writes scripts that run this program.
 */
import assert from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";
import { quietly, tinyCheckpoint } from "./cli_util.ts";
import { expandSweep, parseSweepPlan } from "../src/sweep/plan.ts";
import { keepPlan, runRunsStage } from "../src/cli/commands/sweep_run.ts";

const RL = {
  iterations: 1,
  prompts: 2,
  "group-size": 4,
  minibatch: 8,
  "eval-size": 8,
  "eval-every": 1,
};
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

Deno.test("two workers on one sweep folder run every run exactly once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const policy = await tinyCheckpoint(`${dir}/policy`, 1);
    const actor = await tinyCheckpoint(`${dir}/actor`, 2);
    const plan = parseSweepPlan({
      name: "workers",
      rl: { ...RL, policy, actor },
      axes: { mode: ["tis", "jackpot"] },
      seeds: [1, 2, 3],
    });
    const out = `${dir}/sweep`;
    await keepPlan(out, plan);
    const lines: string[][] = [[], []];
    const worker = (i: number) =>
      runRunsStage(plan, out, expandSweep(plan), {
        quiet: true,
        log: { info: (l) => lines[i].push(l) },
      });
    const { value: [a, b] } = await quietly(() => Promise.all([worker(0), worker(1)]));
    const ran = [...a, ...b].filter((o) => o.status === "done").map((o) => o.run.id).sort();
    assert.deepEqual(ran, expandSweep(plan).map((r) => r.id).sort(), "each run done once");
    for (const r of expandSweep(plan)) {
      assert.ok(await exists(`${out}/runs/${r.id}/config.json`), r.id);
      assert.equal(await exists(`${out}/runs/${r.id}.lock`), false, `${r.id} lock released`);
    }
    assert.ok(lines[0].length > 0 && lines[1].length > 0, "both workers ran something");

    // A run held by another process is skipped and named; the sweep exits 1 without it.
    await Deno.remove(`${out}/runs/mode-tis_seed-2`, { recursive: true });
    await Deno.writeTextFile(`${out}/runs/mode-tis_seed-2.lock`, "pid 42 on elsewhere\n");
    const held = await quietly(() => runCli(["sweep", "--out", out, "--quiet"]));
    assert.equal(held.value, 1, held.err);
    assert.match(
      held.err,
      /run mode-tis_seed-2 skipped: another process runs it, pid 42 on elsewhere/,
    );
    assert.match(held.err, /delete it if that process is gone/);
    assert.equal(await exists(`${out}/sweep.json`), false, "an unfinished sweep has no sweep.json");
    await Deno.remove(`${out}/runs/mode-tis_seed-2.lock`);
    const free = await quietly(() => runCli(["sweep", "--out", out, "--quiet"]));
    assert.equal(free.value, 0, free.err);
    assert.ok(await exists(`${out}/sweep.json`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failed run writes error.txt, the others finish, the report counts it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = await tinyCheckpoint(`${dir}/good`, 1);
    const actor = await tinyCheckpoint(`${dir}/actor`, 2);
    // A corrupt checkpoint: the run fails when it loads it (a run error, not a usage error).
    const bad = await tinyCheckpoint(`${dir}/bad`, 3);
    const weights = `${bad}/model.safetensors`;
    const bytes = await Deno.readFile(weights);
    await Deno.writeFile(weights, bytes.subarray(0, bytes.length >> 1));
    const plan = {
      name: "failing",
      rl: { ...RL, actor, mode: "tis" },
      axes: { start: { good: { policy: good }, bad: { policy: bad } } },
      seeds: [1, 2],
    };
    await Deno.writeTextFile(`${dir}/plan.json`, JSON.stringify(plan));
    const out = `${dir}/sweep`;
    const r = await quietly(() =>
      runCli(["sweep", "--plan", `${dir}/plan.json`, "--out", out, "--quiet"])
    );
    assert.equal(r.value, 1, r.err);
    assert.match(r.err, /run start-bad_seed-1 failed: /);
    assert.match(r.err, /2 run\(s\) did not finish: start-bad_seed-1, start-bad_seed-2/);
    for (const s of [1, 2]) {
      assert.ok(await exists(`${out}/runs/start-good_seed-${s}/config.json`));
      assert.ok(await exists(`${out}/runs/start-bad_seed-${s}/error.txt`));
    }
    const runs: Array<Record<string, unknown>> = JSON.parse(
      await Deno.readTextFile(`${out}/summary/runs.json`),
    );
    assert.deepEqual(runs.map((x) => x.status), ["done", "done", "failed", "failed"]);
    const final: Array<Record<string, unknown>> = JSON.parse(
      await Deno.readTextFile(`${out}/summary/final.json`),
    );
    assert.deepEqual(final.map((x) => x.group), ["start=good"]);
    assert.equal(await exists(`${out}/sweep.json`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jackpot sweep --slurm writes the plan and scripts that start this program", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/sweep`;
    const r = await quietly(() =>
      runCli([
        "sweep",
        "--preset",
        "no-clip",
        "--out",
        out,
        "--slurm",
        "--slurm-time",
        "01:30:00",
        "--slurm-max-parallel",
        "4",
        "--slurm-sbatch=--mem=16G --qos=high",
      ])
    );
    assert.equal(r.value, 0, r.err);
    assert.match(r.out, new RegExp(`bash ${out}/slurm/submit.sh`));
    assert.ok(await exists(`${out}/plan.json`));
    const runs = await Deno.readTextFile(`${out}/slurm/runs.sbatch`);
    assert.match(runs, /#SBATCH --array=0-8%4/);
    assert.match(runs, /#SBATCH --time=01:30:00/);
    assert.match(runs, /#SBATCH --mem=16G/);
    assert.ok(runs.includes(Deno.execPath()), "the jobs run this Deno");
    assert.match(runs, /src\/cli\/main.ts sweep --out "\$out" --index "\$SLURM_ARRAY_TASK_ID"/);
    for (const f of ["pretrain.sbatch", "runs.sbatch", "report.sbatch", "submit.sh"]) {
      const check = await new Deno.Command("bash", { args: ["-n", `${out}/slurm/${f}`] }).output();
      assert.ok(check.success, f);
    }
    const bad = await quietly(() =>
      runCli(["sweep", "--out", `${dir}/other`, "--slurm", "--slurm-time", "90 minutes"])
    );
    assert.equal(bad.value, 2);
    assert.match(bad.err, /--slurm: /);
    assert.equal(await exists(`${dir}/other`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM stops a sweep at a safe point (exit 130); the same command resumes it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const policy = await tinyCheckpoint(`${dir}/policy`, 1);
    const actor = await tinyCheckpoint(`${dir}/actor`, 2);
    const plan = `${dir}/plan.json`;
    await Deno.writeTextFile(
      plan,
      JSON.stringify({
        name: "stop",
        rl: { ...RL, iterations: 3, policy, actor },
        axes: { mode: ["tis", "jackpot"] },
        seeds: [1, 2],
      }),
    );
    const out = `${dir}/sweep`;
    const main = new URL("../src/cli/main.ts", import.meta.url).pathname;
    const args = ["run", "-A", main, "sweep", "--plan", plan, "--out", out, "--quiet"];
    const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
      .spawn();
    // Stop it once the first run has finished.
    const first = `${out}/runs/mode-tis_seed-1/config.json`;
    for (let i = 0; i < 600 && !(await exists(first)); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(await exists(first), "the first run finished");
    child.kill("SIGTERM");
    const r = await child.output();
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 130, err);
    assert.match(err, /interrupted; .* is incomplete \(it has no sweep.json\)/);
    assert.match(err, /run the same command again to resume/);
    assert.doesNotMatch(err, / {4}at /);
    assert.equal(await exists(`${out}/sweep.json`), false);
    const kept = (await Deno.stat(first)).mtime?.getTime();
    for (const id of ["mode-tis_seed-2", "mode-jackpot_seed-1"]) {
      assert.equal(await exists(`${out}/runs/${id}.lock`), false, `${id}: no lock left behind`);
    }
    const again = await quietly(() => runCli(["sweep", "--plan", plan, "--out", out, "--quiet"]));
    assert.equal(again.value, 0, again.err);
    assert.ok(await exists(`${out}/sweep.json`));
    assert.equal((await Deno.stat(first)).mtime?.getTime(), kept, "the finished run was kept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
