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
  "text:problems=64,digits=1,maxNew=6",
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
  assert.equal(config.config.task, `text:problems=64,digits=1,maxNew=6,tokenizer=${policy}`);
  const iterations = JSON.parse(await Deno.readTextFile(`${out}/iterations.json`));
  assert.equal(iterations.length, 2);
  for (const row of iterations) {
    assert.ok(row.reward >= 0 && row.reward <= 1, `reward ${row.reward}`);
    assert.ok(row.mean_length >= 1 && row.mean_length <= 6, `mean length ${row.mean_length}`);
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
