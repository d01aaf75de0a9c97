import assert from "node:assert/strict";
import {
  buildPromptBatch,
  buildSupervisedBatch,
  createTask,
  createTaskFromSpec,
  describeTasks,
  escapeTaskOptionValue,
  evaluateExactMatch,
  extractAnswer,
  maxSequenceLength,
  parseTaskSpec,
  taskNames,
} from "../src/tasks/mod.ts";
import { Rng } from "../src/util/rng.ts";

const TASKS = [
  createTask("arithmetic", { maxDigits: 3, ops: "+-*" }),
  createTask("wordsort", { maxItems: 10 }),
];

Deno.test("supervised batch: shapes, padding, masks and shifted targets follow the examples", () => {
  for (const task of TASKS) {
    const { padId, eosId } = task.tokenizer;
    const examples = task.sample(new Rng(21), 37);
    const T = maxSequenceLength(task) + 3;
    const batch = buildSupervisedBatch(task, examples, T);
    assert.equal(batch.B, 37);
    assert.equal(batch.T, T);
    for (const a of [batch.tokens, batch.lossMask, batch.targets, batch.targetMask]) {
      assert.equal(a.length, 37 * T);
    }
    assert.ok(batch.tokens instanceof Int32Array && batch.lossMask instanceof Float32Array);
    for (let b = 0; b < batch.B; b++) {
      const { prompt, answer } = examples[b];
      const row = [...batch.tokens.slice(b * T, (b + 1) * T)];
      const want = [...prompt, ...answer, eosId];
      assert.deepEqual(row.slice(0, want.length), want);
      assert.ok(row.slice(want.length).every((t) => t === padId));
      assert.equal(batch.lengths[b], want.length);
      assert.equal(batch.promptLengths[b], prompt.length);
      const mask = [...batch.lossMask.slice(b * T, (b + 1) * T)];
      assert.deepEqual(
        mask,
        row.map((_, t) => (t >= prompt.length && t < want.length ? 1 : 0)),
      );
      for (let t = 0; t < T; t++) {
        assert.equal(batch.targets[b * T + t], t + 1 < T ? row[t + 1] : padId);
        assert.equal(batch.targetMask[b * T + t], t + 1 < T ? mask[t + 1] : 0);
      }
      // The masked targets are exactly the answer and the stop: what the loss trains.
      const trained = row.filter((_, t) => mask[t] === 1);
      assert.deepEqual(trained, [...answer, eosId]);
    }
    // Default T is the longest row.
    const tight = buildSupervisedBatch(task, examples);
    assert.equal(tight.T, Math.max(...examples.map((e) => e.prompt.length + e.answer.length + 1)));
  }
});

Deno.test("supervised batch: a row longer than T throws naming the row", () => {
  const task = TASKS[0];
  const examples = task.sample(new Rng(1), 5);
  const T = Math.max(...examples.map((e) => e.prompt.length + e.answer.length + 1)) - 1;
  const worst = examples.findIndex((e) => e.prompt.length + e.answer.length + 1 > T);
  assert.throws(
    () => buildSupervisedBatch(task, examples, T),
    new RegExp(`example ${worst} needs`),
  );
  assert.throws(() => buildSupervisedBatch(task, examples, 0), /T must be >= 1/);
  assert.equal(buildSupervisedBatch(task, []).B, 0);
});

Deno.test("prompt batch: left padding aligns the last prompt token, right padding the first", () => {
  for (const task of TASKS) {
    const prompts = task.sample(new Rng(3), 9).map((e) => e.prompt);
    const longest = Math.max(...prompts.map((p) => p.length));
    for (const side of ["left", "right"] as const) {
      const batch = buildPromptBatch(task, prompts, { side, T: longest + 2 });
      assert.equal(batch.tokens.length, 9 * (longest + 2));
      for (let b = 0; b < 9; b++) {
        const row = [...batch.tokens.slice(b * batch.T, (b + 1) * batch.T)];
        const pad = Array(batch.T - prompts[b].length).fill(task.tokenizer.padId);
        assert.deepEqual(row, side === "left" ? [...pad, ...prompts[b]] : [...prompts[b], ...pad]);
        assert.equal(batch.lengths[b], prompts[b].length);
      }
    }
    assert.equal(buildPromptBatch(task, prompts).T, longest);
    assert.throws(() => buildPromptBatch(task, prompts, { T: longest - 1 }), /has \d+ tokens but/);
  }
});

Deno.test("evaluateExactMatch counts correct completions among generated right and wrong ones", () => {
  for (const task of TASKS) {
    const rng = new Rng(12);
    const examples = task.sample(new Rng(13), 60);
    const eos = task.tokenizer.eosId;
    let expected = 0;
    const completions = examples.map((e) => {
      const kind = rng.int(3);
      if (kind === 0) {
        expected++;
        return [...e.answer, eos, task.tokenizer.padId];
      }
      return kind === 1 ? [...e.answer] : [...e.answer, e.answer[0], eos];
    });
    const r = evaluateExactMatch(task, examples.map((e) => e.prompt), completions);
    assert.equal(r.n, 60);
    assert.equal(r.correct, expected);
    assert.equal(r.accuracy, expected / 60);
    assert.equal(r.meanReward, r.rewards.reduce((s, x) => s + x, 0) / 60);
    assert.ok(r.rewards.every((x) => x === 0 || x === 1));
    assert.throws(() => evaluateExactMatch(task, [examples[0].prompt], []), /1 prompts but 0/);
  }
  assert.deepEqual(evaluateExactMatch(TASKS[0], [], []).accuracy, 0);
});

Deno.test("extractAnswer stops at the first stop token and is null without one", () => {
  const rng = new Rng(0);
  for (let k = 0; k < 50; k++) {
    const xs = Array.from({ length: rng.int(8) }, () => 3 + rng.int(10));
    const tail = Array.from({ length: rng.int(4) }, () => rng.int(13));
    assert.deepEqual(Array.from(extractAnswer([...xs, 2, ...tail], 2)!), xs);
    assert.equal(extractAnswer(xs, 2), null);
  }
});

Deno.test("registry: names, specs, unknown names and options", () => {
  assert.deepEqual(taskNames(), ["arithmetic", "text", "wordsort"]);
  assert.throws(
    () => createTask("sorting"),
    /unknown task 'sorting'; known tasks: arithmetic, text, wordsort/,
  );
  assert.deepEqual(parseTaskSpec("arithmetic:maxDigits=4,ops=+*"), {
    name: "arithmetic",
    options: { maxDigits: "4", ops: "+*" },
  });
  assert.deepEqual(parseTaskSpec("wordsort"), { name: "wordsort", options: {} });
  assert.throws(() => parseTaskSpec(":a=1"), /no task name/);
  assert.throws(() => parseTaskSpec("arithmetic:maxDigits"), /'maxDigits' is not key=value/);
  assert.throws(() => parseTaskSpec("arithmetic:ops=+,ops=-"), /'ops' given twice/);
  const t = createTaskFromSpec("arithmetic:maxDigits=4,ops=+*,reverseAnswer=true");
  assert.deepEqual(t.options, { minDigits: 1, maxDigits: 4, ops: "+*", reverseAnswer: true });
  assert.throws(
    () => createTaskFromSpec("wordsort:size=3"),
    /no option 'size'; its options are: words/,
  );
  // A task rebuilt from its resolved options samples the same examples (what a checkpoint stores).
  for (const task of TASKS) {
    const again = createTask(task.name, { ...task.options });
    assert.deepEqual(again.sample(new Rng(5), 20), task.sample(new Rng(5), 20));
  }
  const help = describeTasks();
  for (const name of taskNames()) assert.ok(help.includes(`${name}: `));
});

Deno.test("task specs: escaped commas round-trip through parseTaskSpec, other backslashes stay", () => {
  assert.deepEqual(parseTaskSpec("text:system=Be brief\\, and exact,maxNew=8"), {
    name: "text",
    options: { system: "Be brief, and exact", maxNew: "8" },
  });
  assert.deepEqual(parseTaskSpec("text:tokenizer=C:\\models\\q,chat=false").options, {
    tokenizer: "C:\\models\\q",
    chat: "false",
  });
  // Random values from an alphabet heavy in the separators: every one comes back unchanged.
  const rng = new Rng(7);
  const alphabet = ["a", "b", ",", "=", " ", ":", "\\", "/"];
  for (let trial = 0; trial < 500; trial++) {
    const values = Array.from({ length: 1 + rng.int(3) }, () => {
      let v = "";
      for (let i = rng.int(8); i > 0; i--) v += alphabet[rng.int(alphabet.length)];
      // A value ending in a backslash would escape the separator after it: not representable.
      return v.replace(/\\+$/, "");
    });
    const spec = "text:" + values.map((v, i) => `k${i}=${escapeTaskOptionValue(v)}`).join(",");
    const want = Object.fromEntries(values.map((v, i) => [`k${i}`, v]));
    assert.deepEqual(parseTaskSpec(spec).options, want, spec);
  }
});
