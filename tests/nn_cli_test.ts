import assert from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";
import { quietly } from "./cli_util.ts";
import { initTensors } from "../src/tensor/mod.ts";
import { saveCheckpoint } from "../src/nn/checkpoint/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { createTaskFromSpec } from "../src/tasks/mod.ts";
import { Rng, uniformAt } from "../src/util/rng.ts";

Deno.test("jackpot pretrain refuses bad options with exit code 2 and one sentence", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--model", "huge"], /--model: unknown model size 'huge'/],
    [["--model", "tiny:kvHeads=3"], /kvHeads \(3\) must divide heads \(4\)/],
    [["--task", "nosuchtask"], /--task: /],
    [["--lr", "0"], /--lr must be > 0/],
    [["--steps", "1.5"], /--steps must be an integer/],
  ];
  for (const [args, re] of cases) {
    const { value, err } = await quietly(() => runCli(["pretrain", ...args]));
    assert.equal(value, 2, args.join(" "));
    assert.match(err, re);
  }
});

Deno.test("jackpot sample prints completions and writes every token's log-probs as JSON", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir();
  const task = "arithmetic:maxDigits=1,ops=+";
  const model = Transformer.init(modelConfig("tiny", 18), { seed: 4, std: 0.2 });
  await saveCheckpoint(`${dir}/ckpt`, await model.toCheckpoint({ task, step: 0 }));
  model.dispose();
  const { value, out } = await quietly(() =>
    runCli([
      "sample",
      "--checkpoint",
      `${dir}/ckpt`,
      "--n",
      "3",
      "--capture-k",
      "2",
      "--json",
      `${dir}/r.json`,
    ])
  );
  assert.equal(value, 0);
  assert.match(out, /Mean reward/);
  const json = JSON.parse(await Deno.readTextFile(`${dir}/r.json`));
  assert.equal(json.rows.length, 3);
  for (const r of json.rows) {
    assert.equal(r.logProbs.length, r.completion.length);
    assert.equal(r.rawLogProbs.length, r.completion.length);
    assert.equal(r.topIds.length, 2 * r.completion.length);
    for (const lp of r.logProbs) assert.ok(lp <= 0);
  }
  const missing = await quietly(() => runCli(["sample", "--checkpoint", `${dir}/nothing`]));
  assert.equal(missing.value, 2);
  assert.match(missing.err, /nothing\/config.json/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("jackpot sample/pretrain: bad values and mismatched checkpoints are one sentence and exit 2; a corrupt checkpoint exits 1", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir();
  const task = "arithmetic:maxDigits=1,ops=+";
  const model = Transformer.init(modelConfig("tiny", 18), { seed: 4, std: 0.2 });
  await saveCheckpoint(`${dir}/ckpt`, await model.toCheckpoint({ task, step: 0 }));
  model.dispose();
  // A model too short for the task's prompts.
  const longPrompts = createTaskFromSpec("arithmetic:maxDigits=3").maxPromptLength;
  const short = Transformer.init(modelConfig("tiny", 18, { maxSeqLen: 6 }), { seed: 4 });
  await saveCheckpoint(
    `${dir}/short`,
    await short.toCheckpoint({ task: "arithmetic:maxDigits=3" }),
  );
  short.dispose();
  const ck = ["--checkpoint", `${dir}/ckpt`, "--n", "2"];
  const usage: Array<[string[], RegExp]> = [
    [["sample", ...ck, "--temperature", "1e-9"], /temperature must be 0 \(greedy\) or at least/],
    [["sample", ...ck, "--capture-k", "19"], /--capture-k 19 exceeds the vocabulary 18/],
    [
      ["sample", "--checkpoint", `${dir}/short`],
      new RegExp(`maxSeqLen 6 .*prompts of up to ${longPrompts} tokens`),
    ],
    [["sample", "--checkpoint", `${dir}/missing`], /missing\/config.json/],
    [
      ["pretrain", "--init", `${dir}/ckpt`, "--task", "wordsort", "--out", `${dir}/o1`, "--quiet"],
      /--init: the task's vocabulary \(1028\) exceeds the model's \(18\)/,
    ],
    [
      ["pretrain", "--model", "tiny:maxSeqLen=4", "--out", `${dir}/o2`, "--quiet"],
      /--model: the task needs 8 positions, the model has maxSeqLen 4/,
    ],
    [
      ["pretrain", "--init", `${dir}/missing`, "--out", `${dir}/o3`, "--quiet"],
      /missing\/config.json/,
    ],
  ];
  for (const [args, re] of usage) {
    const { value, err } = await quietly(() => runCli(args));
    assert.equal(value, 2, args.join(" "));
    assert.match(err, re, args.join(" "));
    assert.equal(err.trim().split("\n").length, 1, `one line: ${err}`);
  }
  // No run folder is left behind by a usage error.
  for (const o of ["o1", "o2", "o3"]) {
    await assert.rejects(() => Deno.stat(`${dir}/${o}`), Deno.errors.NotFound, o);
  }
  // A corrupt checkpoint (truncated weights, config not JSON) is an error in the data: exit 1.
  const bytes = await Deno.readFile(`${dir}/ckpt/model.safetensors`);
  await Deno.mkdir(`${dir}/bad`);
  await Deno.writeFile(`${dir}/bad/model.safetensors`, bytes.slice(0, 100));
  await Deno.copyFile(`${dir}/ckpt/config.json`, `${dir}/bad/config.json`);
  await Deno.mkdir(`${dir}/bad2`);
  await Deno.copyFile(`${dir}/ckpt/model.safetensors`, `${dir}/bad2/model.safetensors`);
  await Deno.writeTextFile(`${dir}/bad2/config.json`, "{");
  for (
    const args of [
      ["sample", "--checkpoint", `${dir}/bad`],
      ["sample", "--checkpoint", `${dir}/bad2`],
      ["pretrain", "--init", `${dir}/bad`, "--out", `${dir}/o4`, "--quiet"],
    ]
  ) {
    const { value, err } = await quietly(() => runCli(args));
    assert.equal(value, 1, args.join(" "));
    assert.match(err, /bad2?\/(model.safetensors|config.json): /);
    assert.equal(err.trim().split("\n").length, 1, `one line: ${err}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("jackpot sample: a model whose vocabulary is larger than the task's prints the extra ids instead of failing", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir();
  // 40 ids for an 18-token task: an untrained model samples ids the task's tokenizer cannot spell.
  const model = Transformer.init(modelConfig("tiny", 40), { seed: 4, std: 1 });
  await saveCheckpoint(
    `${dir}/wide`,
    await model.toCheckpoint({ task: "arithmetic:maxDigits=1,ops=+" }),
  );
  model.dispose();
  const { value, out, err } = await quietly(() =>
    runCli(["sample", "--checkpoint", `${dir}/wide`, "--n", "4", "--json", `${dir}/r.json`])
  );
  assert.equal(value, 0, err);
  assert.match(out, /<id (1[89]|[23]\d)>/);
  const json = JSON.parse(await Deno.readTextFile(`${dir}/r.json`));
  for (const r of json.rows) {
    assert.equal(r.reward, r.completion.some((id: number) => id >= 18) ? 0 : r.reward);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("jackpot sample: the prompts' RNG stream is none of the rows' sampling streams", async () => {
  const { MAX_SAMPLE_PROMPTS, SAMPLE_PROMPT_STREAM } = await import(
    "../src/cli/commands/sample.ts"
  );
  // Row r samples with uniformAt(seed, r, g) = hash3(seed, r, g) >>> 8, which is exactly the
  // sequence of new Rng(seed, r): a shared stream would reuse the prompt draws as token draws.
  const seed = 1;
  const rowDraws = (r: number) => Array.from({ length: 4 }, (_, g) => uniformAt(seed, r, g));
  const promptRng = new Rng(seed, SAMPLE_PROMPT_STREAM);
  const promptDraws = Array.from({ length: 4 }, () => (promptRng.nextU32() >>> 8) / 16777216);
  for (const r of [0, 1, 3, MAX_SAMPLE_PROMPTS - 1]) {
    assert.notDeepEqual(rowDraws(r), promptDraws, `row ${r} reuses the prompt draws`);
  }
  assert.ok(SAMPLE_PROMPT_STREAM >= MAX_SAMPLE_PROMPTS);
});
