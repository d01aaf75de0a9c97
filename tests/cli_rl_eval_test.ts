/**
 * `jackpot rl --eval-samples N`: the sampled evaluation's columns in evals.csv (mean reward and
 * Pass@k of both models, k = 1, 2, ..., N; the rollout model's empty on-policy), its chart and
 * console line; bad --eval-samples / --eval-temperature are one sentence and exit 2.
 */
import assert from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";
import { quietly } from "./cli_util.ts";
import { trainTinyOn } from "./train_util.ts";
import { rlConfigFromValues, runRl } from "../src/cli/commands/rl.ts";
import { parseCommandArgs } from "../src/cli/command.ts";
import { command as rlCommand } from "../src/cli/commands/rl.ts";
import { createTaskFromSpec, type Example } from "../src/tasks/mod.ts";
import { initTensors } from "../src/tensor/mod.ts";
import { saveCheckpoint } from "../src/nn/checkpoint/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";

const TASK = "arithmetic:maxDigits=1,ops=+";
const SMALL = ["--prompts", "2", "--group-size", "4", "--minibatch", "4", "--eval-size", "8"];

// A policy trained 10 steps on all 100 problems of the task (it answers some prompts some of the
// time, so Pass@k is not 0) and a fresh rollout model, as checkpoint folders.
async function checkpoints(dir: string): Promise<{ policy: string; actor: string }> {
  await initTensors();
  const task = createTaskFromSpec(TASK), tok = task.tokenizer;
  const all: Example[] = [];
  for (let a = 0; a < 10; a++) {
    for (let b = 0; b < 10; b++) {
      all.push({
        prompt: Int32Array.from([tok.bosId, ...tok.encode(`${a}+${b}=`)]),
        answer: tok.encode(String(a + b)),
      });
    }
  }
  const policy = await trainTinyOn(task, all, 10);
  await saveCheckpoint(`${dir}/policy`, await policy.toCheckpoint({ task: TASK, step: 10 }));
  policy.dispose();
  const actor = Transformer.init(modelConfig("tiny", tok.vocabSize), { seed: 4, std: 0.2 });
  await saveCheckpoint(`${dir}/actor`, await actor.toCheckpoint({ task: TASK, step: 0 }));
  actor.dispose();
  return { policy: `${dir}/policy`, actor: `${dir}/actor` };
}

// evals.csv as rows of column → number (null for an empty cell).
async function evalRows(out: string): Promise<Record<string, number | null>[]> {
  const [head, ...lines] = (await Deno.readTextFile(`${out}/evals.csv`)).trim().split("\n");
  const names = head.split(",");
  return lines.map((line) => {
    const cells = line.split(",");
    return Object.fromEntries(names.map((n, i) => [n, cells[i] === "" ? null : Number(cells[i])]));
  });
}

Deno.test("jackpot rl --eval-samples 4 writes mean reward and pass@1,2,4 of both models", async () => {
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
    "2",
    "--eval-every",
    "1",
    "--eval-samples",
    "4",
    "--out",
    out,
    "--quiet",
  ];
  const { value, out: stdout } = await quietly(() => runCli(args));
  assert.equal(value, 0);
  assert.match(stdout, /Policy pass@1 \d+\.\d% → \d+\.\d%, pass@4 /);
  const header = (await Deno.readTextFile(`${out}/evals.csv`)).split("\n")[0];
  assert.equal(
    header,
    "iteration,policy_accuracy,actor_accuracy," +
      "policy_mean_reward,policy_pass_at_1,policy_pass_at_2,policy_pass_at_4," +
      "actor_mean_reward,actor_pass_at_1,actor_pass_at_2,actor_pass_at_4",
  );
  const rows = await evalRows(out);
  assert.deepEqual(rows.map((r) => r.iteration), [0, 1, 2]);
  for (const r of rows) {
    for (const who of ["policy", "actor"]) {
      const [p1, p2, p4] = [1, 2, 4].map((k) => r[`${who}_pass_at_${k}`]!);
      for (const x of [p1, p2, p4, r[`${who}_mean_reward`]!, r[`${who}_accuracy`]!]) {
        assert.ok(x >= 0 && x <= 1, `${who} ${x} at iteration ${r.iteration}`);
      }
      assert.ok(p1 <= p2 && p2 <= p4, `${who} pass@1 ${p1} ≤ pass@2 ${p2} ≤ pass@4 ${p4}`);
      // 0/1 rewards: pass@1 is the mean reward (CSV keeps enough digits for 1e-9)
      assert.ok(Math.abs(p1 - r[`${who}_mean_reward`]!) < 1e-9, `${who} mean vs pass@1`);
    }
  }
  assert.ok(rows[0].policy_pass_at_4! > 0, "the trained policy answers some prompt sometimes");
  const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  assert.equal(config.config.evalSamples, 4);
  assert.equal(config.config.evalTemperature, config.config.trainer.temperature);
  assert.ok((await Deno.stat(`${out}/pass.svg`)).size > 0, "pass.svg");
  const html = await Deno.readTextFile(`${out}/index.html`);
  assert.match(html, /policy pass@k/);
  assert.match(html, /Sampled \(4 per prompt, temperature 1\): policy mean reward/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("jackpot rl --eval-samples on-policy: the rollout model's columns are empty", async () => {
  const dir = await Deno.makeTempDir();
  const { policy } = await checkpoints(dir);
  const out = `${dir}/run`;
  const { value } = await quietly(() =>
    runCli([
      "rl",
      ...SMALL,
      "--mode",
      "on-policy",
      "--policy",
      policy,
      "--iterations",
      "1",
      "--eval-samples",
      "2",
      "--eval-temperature",
      "0.7",
      "--out",
      out,
      "--quiet",
    ])
  );
  assert.equal(value, 0);
  const rows = await evalRows(out);
  assert.equal(rows.length, 2);
  for (const r of rows) {
    assert.deepEqual(
      [r.actor_accuracy, r.actor_mean_reward, r.actor_pass_at_1, r.actor_pass_at_2],
      [null, null, null, null],
    );
    assert.ok(r.policy_pass_at_2! >= r.policy_pass_at_1! && r.policy_pass_at_2! <= 1);
    assert.equal("policy_pass_at_4" in r, false, "ks 1 and 2 for 2 samples");
  }
  const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  assert.equal(config.config.evalTemperature, 0.7);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("jackpot rl refuses bad --eval-samples / --eval-temperature with exit code 2 and one sentence", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--eval-samples=-1"], /--eval-samples must be >= 0/],
    [["--eval-samples", "1.5"], /--eval-samples must be an integer, got '1.5'/],
    [["--eval-samples", "lots"], /--eval-samples must be an integer, got 'lots'/],
    [["--eval-samples", "2000"], /--eval-samples must be <= 1024/],
    [
      ["--eval-size", "1000", "--eval-samples", "100"],
      /--eval-size 1000 × --eval-samples 100 is 100000 rows, at most 65536/,
    ],
    [["--eval-temperature", "0.5"], /--eval-temperature needs --eval-samples >= 1/],
    [["--eval-samples", "2", "--eval-temperature=-1"], /--eval-temperature must be >= 0/],
    [["--eval-samples", "2", "--eval-temperature", "hot"], /--eval-temperature must be a number/],
    [
      ["--eval-samples", "2", "--eval-temperature", "1e-9"],
      /--eval-temperature must be 0 \(greedy\) or at least 0.000001, got 1e-9/,
    ],
  ];
  for (const [args, re] of cases) {
    const { value, err } = await quietly(() =>
      runCli(["rl", ...SMALL, "--out", "/tmp/never-written-rl-eval", ...args])
    );
    assert.equal(value, 2, args.join(" "));
    assert.match(err, re, args.join(" "));
    assert.ok(!err.includes("    at "), `a stack trace for ${args.join(" ")}`);
    assert.equal(err.trim().split("\n").length, 1, `one line for ${args.join(" ")}: ${err}`);
  }
  // a config built in code is checked by runRl itself, before it writes anything
  const base = await rlConfigFromValues(parseCommandArgs(rlCommand, SMALL));
  const never = "/tmp/never-written-rl-eval";
  await assert.rejects(
    runRl({ ...base, evalSamples: 1.5 }, never, { quiet: true }),
    /--eval-samples must be an integer >= 0, got 1.5/,
  );
  await assert.rejects(
    runRl({ ...base, evalSamples: 2, evalTemperature: NaN }, never, { quiet: true }),
    /--eval-temperature must be 0 \(greedy\) or at least 0.000001, got NaN/,
  );
  assert.equal(
    await Deno.stat("/tmp/never-written-rl-eval").then(() => true, () => false),
    false,
  );
  // the defaults: greedy only, at the trainer's temperature
  const c = await rlConfigFromValues(parseCommandArgs(rlCommand, ["--temperature", "0.8"]));
  assert.equal(c.evalSamples, 0);
  assert.equal(c.evalTemperature, 0.8);
});
