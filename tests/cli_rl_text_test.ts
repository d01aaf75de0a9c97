// `jackpot rl --task text` on two folders laid out like Hugging Face Qwen downloads (a policy and a
// smaller rollout model sharing one tokenizer): the task takes --policy's tokenizer, the run
// finishes with its tables, and the saved models carry the tokenizer files, so `jackpot generate`
// opens them as it opened the originals; mismatched folders are usage errors.
import assert from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";
import { quietly } from "./cli_util.ts";
import { hubTok, IM_END, qwenLikeFolder } from "./hub_util.ts";

const RUN = [
  "rl",
  "--task",
  "text:problems=64,digits=1,maxNew=16",
  "--prompts",
  "2",
  "--group-size",
  "2",
  "--minibatch",
  "2",
  "--eval-size",
  "4",
  "--eval-every",
  "2",
  "--iterations",
  "2",
  "--quiet",
];

Deno.test("jackpot rl --task text: a run on Hub-style folders, saved with their tokenizer", async () => {
  const generation = { eos_token_id: [IM_END], temperature: 0.7, do_sample: true };
  const policy = await qwenLikeFolder({ generation, seed: 1, model: "tiny:maxSeqLen=192" });
  const actor = await qwenLikeFolder({ generation, seed: 2, model: "tiny:layers=1,maxSeqLen=192" });
  const out = `${await Deno.makeTempDir()}/run`;
  const { value, err, out: stdout } = await quietly(() =>
    runCli([...RUN, "--policy", policy, "--actor", actor, "--out", out])
  );
  assert.equal(value, 0, err);
  assert.match(stdout, /Policy accuracy/);
  const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  assert.equal(config.config.task, `text:problems=64,digits=1,maxNew=16,tokenizer=${policy}`);
  const iterations = JSON.parse(await Deno.readTextFile(`${out}/iterations.json`));
  assert.equal(iterations.length, 2);
  for (const row of iterations) {
    assert.ok(row.reward >= 0 && row.reward <= 1, `reward ${row.reward}`);
    assert.ok(row.mean_length >= 1 && row.mean_length <= 16, `mean length ${row.mean_length}`);
  }
  for (const role of ["policy", "actor"]) {
    const from = role === "policy" ? policy : actor;
    for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
      assert.equal(
        await Deno.readTextFile(`${out}/${role}/${f}`),
        await Deno.readTextFile(`${from}/${f}`),
        `${role}/${f}`,
      );
    }
  }
  const gen = await quietly(() =>
    runCli([
      "generate",
      "--checkpoint",
      `${out}/policy`,
      "--chat",
      "--prompt",
      "What is 2+3?",
      "--max-new",
      "3",
      "--temperature",
      "0",
      "--quiet",
    ])
  );
  assert.equal(gen.value, 0, gen.err);
});

Deno.test("jackpot rl --task text: folders that do not fit the task are usage errors", async () => {
  const policy = await qwenLikeFolder({ seed: 1 });
  // a rollout model whose vocabulary is smaller than the tokenizer: another model family
  const small = await qwenLikeFolder({ seed: 2, vocabPad: -40 });
  const none = await Deno.makeTempDir();
  const cases: [string[], RegExp][] = [
    [
      ["--policy", policy, "--actor", small],
      /--actor .*vocabulary \(\d+\) is smaller than the task's tokenizer \(\d+ tokens\)/,
    ],
    [["--policy", "policy", "--actor", policy], /--policy 'policy' is not a checkpoint folder/],
    [["--policy", none, "--actor", policy], /--task: .*tokenizer\.json/],
  ];
  for (const [args, re] of cases) {
    const out = `${await Deno.makeTempDir()}/run`;
    const { value, err } = await quietly(() => runCli([...RUN, ...args, "--out", out]));
    assert.equal(value, 2, `${args.join(" ")}: ${err}`);
    assert.match(err, re);
    assert.ok(!err.includes("    at "), `a stack trace: ${err}`);
    assert.equal(await Deno.stat(out).then(() => true, () => false), false);
  }
  assert.ok(hubTok.vocabSize > 40);
});

Deno.test("jackpot pretrain --task text trains a fresh model in the tokenizer's vocabulary, then rl runs on it", async () => {
  const folder = await qwenLikeFolder({ seed: 1 });
  const dir = await Deno.makeTempDir();
  const spec = `text:tokenizer=${folder},problems=64,digits=1,terms=2,ops=+,maxNew=16`;
  const pre = (out: string, model: string, seed: string) =>
    quietly(() =>
      runCli([
        "pretrain",
        "--task",
        spec,
        "--model",
        model,
        "--steps",
        "12",
        "--batch",
        "8",
        "--eval-every",
        "12",
        "--eval-size",
        "4",
        "--seed",
        seed,
        "--target",
        "0", // exit 0 at the evaluation of step 12 (a higher target unmet is exit 1)
        "--quiet",
        "--out",
        out,
      ])
    );
  const a = await pre(`${dir}/policy`, "tiny:maxSeqLen=192", "1");
  assert.equal(a.value, 0, a.err);
  const b = await pre(`${dir}/actor`, "tiny:layers=1,maxSeqLen=192", "2");
  assert.equal(b.value, 0, b.err);
  // the supervised loss falls on the boxed answers (the run folder's loss curve)
  const steps = JSON.parse(await Deno.readTextFile(`${dir}/policy/losses.json`));
  const first = steps[0].loss, last = steps[steps.length - 1].loss;
  assert.ok(Number.isFinite(first) && last < first, `loss ${first} → ${last}`);
  const ckpt = JSON.parse(await Deno.readTextFile(`${dir}/policy/model/config.json`));
  assert.equal(ckpt.jackpot.task, spec);
  const run = await quietly(() =>
    runCli([
      ...RUN.map((x) => x === RUN[2] ? spec : x),
      "--policy",
      `${dir}/policy/model`,
      "--actor",
      `${dir}/actor/model`,
      "--out",
      `${dir}/rl`,
    ])
  );
  assert.equal(run.value, 0, run.err);
  assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/rl/config.json`)).config.task, spec);
});
