// The `text` task on a folder laid out like a Hugging Face Qwen download: prompts are the folder's
// chat template (or ChatML) around the problem and instruction, encoded by its tokenizer; the reward
// reads the final answer before the first of the folder's stop tokens; evaluation problems are held
// out; bad options and files are errors naming the problem.
import assert from "node:assert/strict";
import { createTask, loadTask, loadTaskFromSpec } from "../src/tasks/mod.ts";
import { loadTextTask, TextTask } from "../src/tasks/text/text_task.ts";
import { chatMLPrompt } from "../src/text/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { renderReference, TEST_TEMPLATE } from "./text_util.ts";
import { ENDOFTEXT, hubTok, IM_END, writeHubTokenizer } from "./hub_util.ts";

/** A folder with only the tokenizer side of a Qwen download (the task reads nothing else). */
async function tokenizerFolder(extra: { template?: string } = {}): Promise<string> {
  const dir = await Deno.makeTempDir();
  await writeHubTokenizer(dir, { generation: { eos_token_id: [IM_END, ENDOFTEXT] }, ...extra });
  return dir;
}

async function problemFile(dir: string, name: string, rows: unknown[]): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return path;
}

const enc = (s: string) => Array.from(hubTok.encode(s));

Deno.test("text task: ChatML prompts from a problem file, rewards on the final answer before a stop", async () => {
  const dir = await tokenizerFolder();
  const data = await problemFile(dir, "train.jsonl", [
    { question: "What is 6 times 7?", answer: "6 * 7 = 42\n#### 42" },
    { problem: "Halve 3.", solution: "It is $\\boxed{\\frac{3}{2}}$." },
    { prompt: "Count to 1,000.", answer: 1000 },
  ]);
  const task = await loadTextTask({ tokenizer: dir, data, maxNew: 24 });
  assert.ok(task instanceof TextTask);
  assert.equal(task.sizes.train, 3);
  assert.equal(task.heldOut, false);
  assert.equal(task.maxAnswerLength, 23);
  assert.deepEqual(task.tokenizer.stopIds, [IM_END, ENDOFTEXT]);
  assert.equal(task.tokenizer.padId, ENDOFTEXT);
  assert.equal(task.tokenizer.bosId, -1);
  const expected = new Map(
    ["What is 6 times 7?", "Halve 3.", "Count to 1,000."].map((q) => [
      enc(chatMLPrompt([{ role: "user", content: `${q}\nPut the final answer in \\boxed{}.` }]))
        .join(","),
      q,
    ]),
  );
  const examples = task.sample(new Rng(3), 60);
  const seen = new Set<string>();
  for (const ex of examples) {
    const k = Array.from(ex.prompt).join(",");
    assert.ok(expected.has(k), `an unexpected prompt: ${hubTok.decode(ex.prompt)}`);
    seen.add(k);
    // the supervised answer is the boxed reference, and it earns the reward
    assert.equal(task.reward(ex.prompt, [...ex.answer, IM_END]), 1);
  }
  assert.equal(seen.size, 3, "60 draws reach all three problems");
  assert.equal(
    task.maxPromptLength,
    Math.max(...[...expected.keys()].map((k) => k.split(",").length)),
  );

  const byQuestion = new Map([...expected].map(([k, q]) => [q, k.split(",").map(Number)]));
  const six = byQuestion.get("What is 6 times 7?")!;
  const half = byQuestion.get("Halve 3.")!;
  const count = byQuestion.get("Count to 1,000.")!;
  const cases: [number[], number[], number][] = [
    [six, [...enc("So \\boxed{42}."), IM_END], 1],
    [six, [...enc("So \\boxed{42}."), ENDOFTEXT, ...enc("junk")], 1], // either stop token
    [six, [...enc("So \\boxed{41}."), IM_END], 0],
    [six, enc("So \\boxed{42}."), 0], // never stops
    [six, [...enc("It is 42"), IM_END], 1], // auto: the last number
    [six, [...enc("\\boxed{42}"), hubTok.vocabSize + 3, IM_END], 1], // model-only ids skipped
    [half, [...enc("\\boxed{1.5}"), IM_END], 1],
    [half, [...enc("\\boxed{\\dfrac{6}{4}}"), IM_END], 1],
    [half, [...enc("\\boxed{2}"), IM_END], 0],
    [count, [...enc("#### 1000"), IM_END], 1],
  ];
  for (const [prompt, completion, want] of cases) {
    assert.equal(
      task.reward(prompt, completion),
      want,
      `${hubTok.decode(prompt.slice(-12))} → ${JSON.stringify(task.completionText(completion))}`,
    );
    assert.equal(task.isCorrect(prompt, completion), want === 1);
  }
  assert.deepEqual(Array.from(task.referenceAnswer(six)), enc("\\boxed{42}"));
  assert.throws(
    () => task.reward(enc("What is 6 times 7?"), [IM_END]),
    /not one of the task's problems/,
  );
  // without a held-out file, evaluation draws the training problems, each once while they last
  const ev = task.evaluationSample(new Rng(9), 3).map((e) => Array.from(e.prompt).join(","));
  assert.equal(new Set(ev).size, 3);
});

Deno.test("text task: the folder's chat template, a system turn, thinking off, bare prompts", async () => {
  const dir = await tokenizerFolder({ template: TEST_TEMPLATE });
  const data = await problemFile(dir, "p.jsonl", [{ question: "2+2?", answer: "4" }]);
  for (const thinking of [false, true]) {
    const task = await loadTextTask({
      tokenizer: dir,
      data,
      system: "Be brief.",
      instruction: "",
      thinking,
    });
    const [ex] = task.sample(new Rng(1), 1);
    const want = renderReference(
      [{ role: "system", content: "Be brief." }, { role: "user", content: "2+2?" }],
      { addGenerationPrompt: true, enableThinking: thinking },
    );
    assert.equal(hubTok.decode(ex.prompt), want);
    assert.deepEqual(Array.from(ex.prompt), enc(want));
  }
  const bare = await loadTextTask({ tokenizer: dir, data, chat: false, format: "hashes" });
  const [ex] = bare.sample(new Rng(1), 1);
  assert.equal(hubTok.decode(ex.prompt), "2+2?\nPut the final answer in \\boxed{}.");
  assert.deepEqual(Array.from(ex.answer), enc("#### 4"));
  assert.equal(bare.reward(ex.prompt, [...enc("\\boxed{4}"), IM_END]), 0, "hashes only");
  assert.equal(bare.reward(ex.prompt, [...enc("#### 4"), IM_END]), 1);
});

Deno.test("text task: generated problems, the same pool for a seed, evaluation held out", async () => {
  const dir = await tokenizerFolder();
  const a = await loadTask("text", { tokenizer: dir, problems: 200, digits: 1, terms: 2 });
  const b = await loadTaskFromSpec(`text:tokenizer=${dir},problems=200,digits=1,terms=2`);
  assert.ok(a instanceof TextTask && b instanceof TextTask);
  assert.equal(a.sizes.train, b.sizes.train);
  assert.ok(a.heldOut);
  const key = (p: ArrayLike<number>) => Array.from(p).join(",");
  const trainA = new Set(a.sample(new Rng(5), 400).map((e) => key(e.prompt)));
  const trainB = new Set(b.sample(new Rng(5), 400).map((e) => key(e.prompt)));
  assert.deepEqual([...trainA], [...trainB], "the same seed draws the same prompts");
  const evals = a.evaluationSample(new Rng(2), a.sizes.eval).map((e) => key(e.prompt));
  assert.equal(new Set(evals).size, a.sizes.eval, "each evaluation problem once");
  // every training problem of the pool (drawn with a large n) is absent from evaluation
  const allTrain = new Set(a.sample(new Rng(6), 20_000).map((e) => key(e.prompt)));
  assert.equal(allTrain.size, a.sizes.train);
  for (const e of evals) assert.ok(!allTrain.has(e), "an evaluation problem is a training one");
  // the reference answer of each evaluation problem is its own: a boxed answer is rewarded
  for (const ex of a.evaluationSample(new Rng(3), 20)) {
    assert.equal(a.reward(ex.prompt, [...ex.answer, IM_END]), 1);
  }
});

Deno.test("text task: a held-out file, and errors naming the option or the file", async () => {
  const dir = await tokenizerFolder();
  const data = await problemFile(dir, "train.jsonl", [
    { question: "1+1?", answer: "2" },
    { question: "1+2?", answer: "3" },
  ]);
  const test = await problemFile(dir, "test.jsonl", [{ question: "1+3?", answer: "4" }]);
  const task = await loadTextTask({ tokenizer: dir, data, eval: test });
  assert.ok(task.heldOut);
  assert.deepEqual(task.sizes, { train: 2, eval: 1 });
  for (const ex of task.evaluationSample(new Rng(1), 4)) {
    assert.match(hubTok.decode(ex.prompt), /1\+3\?/);
  }

  const clash = await problemFile(dir, "clash.jsonl", [
    { question: "1+1?", answer: "2" },
    { question: "1+1?", answer: "3" },
  ]);
  const same = await problemFile(dir, "same.jsonl", [
    { question: "1+1?", answer: "2" },
    { question: "1+1?", answer: "2.0" },
  ]);
  assert.equal((await loadTextTask({ tokenizer: dir, data: same })).sizes.train, 1);
  const empty = await Deno.makeTempDir();
  const bad: [Record<string, string | number>, RegExp][] = [
    [{}, /needs tokenizer=FOLDER/],
    [{ tokenizer: empty }, /tokenizer\.json/],
    [{ tokenizer: dir, data: `${dir}/missing.jsonl` }, /missing\.jsonl: cannot read/],
    [{ tokenizer: dir, data: clash }, /appears twice with different answers \("2" and "3"\)/],
    [{ tokenizer: dir, format: "xml" }, /option 'format': must be one of auto, boxed/],
    [{ tokenizer: dir, maxNew: 1 }, /option 'maxNew' must be an integer in \[2, 32768\]/],
    [{ tokenizer: dir, colour: "red" }, /has no option 'colour'/],
    [{ tokenizer: dir, data, maxNew: 3 }, /maxNew=3 leaves no room for the answer "[23]"/],
  ];
  for (const [options, re] of bad) {
    await assert.rejects(loadTextTask(options), re, JSON.stringify(options));
  }
  assert.throws(
    () => createTask("text", { tokenizer: dir }),
    /reads files: build it with loadTask/,
  );
});
