/**
 * `jackpot rl`: bad options are one sentence and exit 2; a short run from two checkpoint folders
 * writes its tables, checkpoints, charts and config.json; an interrupted run keeps every
 * iteration it had written and has no config.json.
 */
import assert from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";
import { quietly, tinyCheckpoint } from "./cli_util.ts";
import { rlConfigFromValues, runRl } from "../src/cli/commands/rl.ts";
import { parseCommandArgs } from "../src/cli/command.ts";
import { command as rlCommand } from "../src/cli/commands/rl.ts";
import { loadCheckpoint } from "../src/nn/checkpoint/mod.ts";

// Two tiny checkpoints of the task's vocabulary (18 ids), different draws.
async function checkpoints(dir: string): Promise<{ policy: string; actor: string }> {
  return {
    policy: await tinyCheckpoint(`${dir}/policy`, 3),
    actor: await tinyCheckpoint(`${dir}/actor`, 4),
  };
}

const SMALL = ["--prompts", "2", "--group-size", "4", "--minibatch", "4", "--eval-size", "8"];

Deno.test("jackpot rl refuses bad options with exit code 2 and one sentence", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--mode", "bogus"], /--mode must be one of jackpot, on-policy/],
    [["--mode", "no-correction"], /--allow-uncorrected/],
    [["--minibatch", "5"], /minibatch 5 must divide the rollout batch/],
    [["--lambda", "0"], /--lambda must be > 0/],
    [["--budget", "2"], /--budget must be <= 1/],
    [["--k", "30"], /--k 30 exceeds the task's vocabulary \(18 tokens\)/],
    [["--capture-k", "4", "--k", "8"], /captureK 4 must be >= k 8/],
    [["--task", "nosuchtask"], /--task: /],
    [
      ["--policy", "/nonexistent/policy-folder"],
      /--policy: '\/nonexistent\/policy-folder' is neither/,
    ],
    [["--iterations", "0"], /--iterations must be >= 1/],
  ];
  for (const [args, re] of cases) {
    const { value, err } = await quietly(() =>
      runCli(["rl", ...SMALL, "--out", "/tmp/never-written-rl", ...args])
    );
    assert.equal(value, 2, args.join(" "));
    assert.match(err, re, args.join(" "));
    assert.ok(!err.includes("    at "), `a stack trace for ${args.join(" ")}`);
  }
  assert.equal(await Deno.stat("/tmp/never-written-rl").then(() => true, () => false), false);
});

Deno.test("jackpot rl: a short run from two checkpoints writes tables, checkpoints and config.json", async () => {
  const dir = await Deno.makeTempDir();
  const { policy, actor } = await checkpoints(dir);
  const out = `${dir}/run`;
  const args = [
    "rl",
    ...SMALL,
    "--policy",
    policy,
    "--actor",
    actor,
    "--iterations",
    "3",
    "--eval-every",
    "2",
    "--lr-actor",
    "0.01",
    "--out",
    out,
    "--quiet",
  ];
  const { value, out: stdout } = await quietly(() => runCli(args));
  assert.equal(value, 0);
  assert.match(stdout, /Policy: checkpoint .*policy; rollout model: checkpoint .*actor/);
  const rows = (name: string) =>
    Deno.readTextFile(`${out}/${name}.csv`).then((t) => t.trim().split("\n"));
  const it = await rows("iterations");
  assert.equal(it.length, 1 + 3);
  assert.match(it[0], /^iteration,reward,solved,lambda,/);
  const steps = await rows("steps");
  assert.equal(steps.length, 1 + 3 * 2, "8 rows in mini-batches of 4: 2 steps per iteration");
  const header = steps[0].split(",");
  const accept = header.indexOf("accept_rate");
  for (const line of steps.slice(1)) {
    const a = Number(line.split(",")[accept]);
    assert.ok(a >= 0 && a <= 1, `acceptance ${a}`);
  }
  const evals = await rows("evals");
  assert.deepEqual(evals.map((l) => l.split(",")[0]), ["iteration", "0", "2", "3"]);
  for (const sub of ["policy", "actor", "checkpoints/iter-000002/policy"]) {
    const ck = await loadCheckpoint(`${out}/${sub}`);
    assert.equal(ck.config.vocab_size, 18);
  }
  const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  assert.equal(config.command, "rl");
  assert.equal(config.config.trainer.mode, "jackpot");
  assert.equal(config.config.trainer.k, 18, "k defaults to the whole vocabulary of 18 < 20");
  for (const f of ["index.html", "reward.svg", "acceptance.svg", "k3.svg", "accuracy.svg"]) {
    assert.ok((await Deno.stat(`${out}/${f}`)).size > 0, f);
  }
  // fresh models score 0 on this task (flat groups: no policy gradient), but the distillation
  // moves the rollout model: the final actor/ is the trained one, not the starting checkpoint
  const before = await loadCheckpoint(actor), after = await loadCheckpoint(`${out}/actor`);
  const name = "model.embed_tokens.weight";
  assert.notDeepEqual(before.tensors.get(name)!.data, after.tensors.get(name)!.data);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("jackpot rl: an interrupted run keeps the iterations and checkpoints it wrote, and no config.json", async () => {
  const dir = await Deno.makeTempDir();
  const { policy, actor } = await checkpoints(dir);
  const values = parseCommandArgs(rlCommand, [
    ...SMALL,
    "--policy",
    policy,
    "--actor",
    actor,
    "--iterations",
    "5",
    "--eval-every",
    "1",
    "--mode",
    "tis",
  ]);
  const config = await rlConfigFromValues(values);
  const abort = new AbortController();
  const out = `${dir}/run`;
  let seen = 0;
  await assert.rejects(
    runRl(config, out, {
      quiet: true,
      signal: abort.signal,
      onIteration: () => {
        if (++seen === 2) abort.abort();
      },
    }),
  );
  const lines = (await Deno.readTextFile(`${out}/iterations.csv`)).trim().split("\n");
  assert.equal(lines.length, 1 + 2, "both finished iterations are in iterations.csv");
  for (const it of ["000000", "000001", "000002"]) {
    assert.ok((await Deno.stat(`${out}/checkpoints/iter-${it}/policy/config.json`)).isFile);
  }
  assert.equal(await Deno.stat(`${out}/config.json`).then(() => true, () => false), false);
  await Deno.remove(dir, { recursive: true });
});
