/**
 * Sampled evaluation (src/rl/sampled_eval.ts): Mean@k / Pass@k equal a float64 recomputation from
 * the engine's raw samples (decoded and solved here, not by the task); seeded; the samples do not
 * depend on how the engine chunks the rows; temperature 0 reproduces the greedy accuracy; bad
 * requests are refused.
 */
import assert from "node:assert/strict";
import { trainTinyOn } from "./train_util.ts";
import { createTaskFromSpec, type Example, type Task } from "../src/tasks/mod.ts";
import { initTensors } from "../src/tensor/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { evaluateGreedy } from "../src/nn/pretrain.ts";
import { completion, RolloutEngine } from "../src/nn/rollout.ts";
import { Transformer } from "../src/nn/transformer.ts";
import {
  evaluateSampled,
  passKs,
  SAMPLED_EVAL_STREAM,
  sampledEvalColumns,
  sampledEvalSeed,
} from "../src/rl/mod.ts";
import { hash3, Rng } from "../src/util/rng.ts";

const N = 4;

// A tiny model trained part of the way on 8 fixed examples: at temperature 1 some prompts are
// always, some never and some sometimes answered, so Pass@4 > Pass@1 and the sums are not trivial.
async function partlyTrained(): Promise<{ task: Task; examples: Example[]; model: Transformer }> {
  await initTensors();
  const task = createTaskFromSpec("arithmetic:maxDigits=1,ops=+");
  const examples = task.sample(new Rng(3), 8);
  const model = await trainTinyOn(task, examples, 15);
  return { task, examples, model };
}

const engineOf = (model: Transformer, task: Task, maxBatch: number) =>
  new RolloutEngine(model, {
    maxBatch,
    maxPromptLength: task.maxPromptLength,
    maxNewTokens: task.maxAnswerLength + 1,
  });

// float64 C(n, k) (0 when k > n), by the product formula.
function choose(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let c = 1;
  for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i;
  return c;
}

// Whether a decoded completion answers a decoded prompt "<bos>a+b=": the text before the first
// stop must be a + b in decimal, solved here with BigInt rather than by the task.
function solves(prompt: string, answer: string | null): boolean {
  const m = /^(\d+)\+(\d+)=$/.exec(prompt);
  if (m === null) throw new Error(`unexpected prompt '${prompt}'`);
  return answer === (BigInt(m[1]) + BigInt(m[2])).toString();
}

Deno.test("sampled evaluation: Mean@k and Pass@k equal a float64 recomputation from the raw samples", async () => {
  const { task, examples, model } = await partlyTrained();
  const tok = task.tokenizer;
  const P = examples.length;
  const engine = engineOf(model, task, P * N);
  try {
    const s = await evaluateSampled(engine, task, examples, {
      samples: N,
      temperature: 1,
      seed: 9,
    });
    assert.deepEqual(s.ks, [1, 2, 4]);
    assert.equal(s.calls, 1, "the engine holds every row: one generate call");
    assert.equal(s.prompts, P);
    assert.equal(s.groupSize, N);
    // The samples themselves, drawn here with the documented key: prompt-major repeats, engine
    // seed hash3(seed, SAMPLED_EVAL_STREAM, 0), row r on stream r.
    const prompts = examples.flatMap((e) => Array.from({ length: N }, () => e.prompt));
    const r = await engine.generate(prompts, {
      seed: hash3(9, SAMPLED_EVAL_STREAM, 0),
      temperature: 1,
      stopId: tok.eosId,
      padId: tok.padId,
    });
    assert.equal(s.engineSeed, hash3(9, SAMPLED_EVAL_STREAM, 0));
    const correct = new Array<number>(P).fill(0);
    let total = 0;
    for (let i = 0; i < P * N; i++) {
      const ids = completion(r, i);
      assert.deepEqual(s.completions[i], ids, `sample ${i}`);
      const stop = ids.indexOf(tok.eosId);
      const answer = stop < 0 ? null : tok.decode(ids.slice(0, stop));
      const prompt = tok.decode(examples[Math.floor(i / N)].prompt, { skipSpecial: true });
      const ok = solves(prompt, answer) ? 1 : 0;
      assert.equal(s.rewards[i], ok, `reward of sample ${i} ('${prompt}' → '${answer}')`);
      correct[Math.floor(i / N)] += ok;
      total += ok;
    }
    assert.ok(
      correct.some((c) => c > 0 && c < N),
      `some prompt must be answered only sometimes, got ${correct}`,
    );
    const close = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);
    close(s.meanReward, total / (P * N), "mean reward");
    for (const k of s.ks) {
      const pass = correct.reduce((a, c) => a + 1 - choose(N - c, k) / choose(N, k), 0) / P;
      close(s.passAt[k], pass, `pass@${k}`);
      close(s.meanAt[k], total / (P * N), `mean@${k}`);
    }
    assert.ok(s.passAt[N] > s.passAt[1], `pass@${N} ${s.passAt[N]} vs pass@1 ${s.passAt[1]}`);
    assert.deepEqual(sampledEvalColumns("policy", N, s), {
      policy_mean_reward: s.meanReward,
      policy_pass_at_1: s.passAt[1],
      policy_pass_at_2: s.passAt[2],
      policy_pass_at_4: s.passAt[4],
    });
    assert.throws(() => sampledEvalColumns("policy", 8, s), /8 samples asked for, .* has 4/);
  } finally {
    engine.dispose();
    model.dispose();
  }
});

Deno.test("sampled evaluation: seeded, and an engine smaller than the batch draws the same samples in chunks", async () => {
  const { task, examples, model } = await partlyTrained();
  const P = examples.length;
  const whole = engineOf(model, task, P * N), small = engineOf(model, task, 5);
  try {
    const o = { samples: N, temperature: 1.3, seed: 4 };
    const a = await evaluateSampled(whole, task, examples, o);
    const b = await evaluateSampled(whole, task, examples, o);
    assert.deepEqual(b, a, "same seed, same samples and numbers");
    const c = await evaluateSampled(small, task, examples, o);
    assert.equal(c.calls, Math.ceil((P * N) / 5));
    assert.deepEqual(c.completions, a.completions, "chunks keep each row's stream");
    assert.deepEqual({ ...c, calls: 1 }, a);
    const differs = (x: Int32Array[], y: Int32Array[]) =>
      x.some((ids, i) => ids.length !== y[i].length || ids.some((t, j) => t !== y[i][j]));
    const d = await evaluateSampled(whole, task, examples, { ...o, seed: 5 });
    assert.ok(differs(d.completions, a.completions), "another seed draws other samples");
    assert.notEqual(d.engineSeed, a.engineSeed);
    const e = await evaluateSampled(whole, task, examples, { ...o, draw: 1 });
    assert.ok(differs(e.completions, a.completions), "another draw draws other samples");
    const f = await evaluateSampled(whole, task, examples, { ...o, stream: 7 });
    assert.ok(differs(f.completions, a.completions), "another stream draws other samples");
  } finally {
    whole.dispose();
    small.dispose();
    model.dispose();
  }
});

Deno.test("sampled evaluation at temperature 0: every sample is the greedy one, pass@1 = pass@n = greedy accuracy", async () => {
  const { task, examples, model } = await partlyTrained();
  const n = 3;
  const engine = engineOf(model, task, examples.length * n);
  try {
    const greedy = await evaluateGreedy(engine, task, examples);
    assert.ok(greedy > 0 && greedy < 1, `a partly trained model: greedy accuracy ${greedy}`);
    const s = await evaluateSampled(engine, task, examples, {
      samples: n,
      temperature: 0,
      seed: 1,
    });
    assert.deepEqual(s.ks, [1, 2, 3]);
    for (let i = 0; i < s.completions.length; i++) {
      assert.deepEqual(s.completions[i], s.completions[i - (i % n)], `sample ${i}`);
    }
    for (const k of s.ks) assert.equal(s.passAt[k], greedy, `pass@${k}`);
    assert.equal(s.meanReward, greedy);
  } finally {
    engine.dispose();
    model.dispose();
  }
});

Deno.test("sampled evaluation refuses bad n, temperature, seed and empty example lists", async () => {
  await initTensors();
  const task = createTaskFromSpec("arithmetic:maxDigits=1,ops=+");
  const examples = task.sample(new Rng(1), 2);
  const model = Transformer.init(modelConfig("tiny", task.tokenizer.vocabSize), { seed: 1 });
  const engine = engineOf(model, task, 8);
  const ok = { samples: 2, temperature: 1, seed: 1 };
  const cases: Array<[Partial<typeof ok> & { stream?: number; draw?: number }, RegExp]> = [
    [{ samples: 0 }, /samples must be an integer >= 1, got 0/],
    [{ samples: 1.5 }, /samples must be an integer >= 1, got 1.5/],
    [{ samples: NaN }, /samples must be an integer >= 1, got NaN/],
    [{ temperature: -1 }, /temperature must be 0 \(greedy\) or .* got -1/],
    [{ temperature: NaN }, /temperature .* got NaN/],
    [{ temperature: Infinity }, /temperature .* got Infinity/],
    [{ temperature: 1e-9 }, /temperature .* >= 0.000001, got 1e-9/],
    [{ seed: -1 }, /seed must be an integer in \[0, 2\^32\), got -1/],
    [{ stream: 2 ** 32 }, /stream must be an integer in \[0, 2\^32\)/],
    [{ draw: 0.5 }, /draw must be an integer in \[0, 2\^32\), got 0.5/],
  ];
  try {
    for (const [bad, re] of cases) {
      await assert.rejects(
        evaluateSampled(engine, task, examples, { ...ok, ...bad }),
        re,
        JSON.stringify(bad),
      );
    }
    await assert.rejects(evaluateSampled(engine, task, [], ok), /at least one example/);
  } finally {
    engine.dispose();
    model.dispose();
  }
});

Deno.test("passKs and the evaluation columns", () => {
  assert.deepEqual(passKs(1), [1]);
  assert.deepEqual(passKs(2), [1, 2]);
  assert.deepEqual(passKs(6), [1, 2, 4, 6]);
  assert.deepEqual(passKs(16), [1, 2, 4, 8, 16]);
  assert.deepEqual(passKs(17), [1, 2, 4, 8, 16, 17]);
  assert.throws(() => passKs(0), /samples must be an integer >= 1/);
  assert.deepEqual(sampledEvalColumns("actor", 3, null), {
    actor_mean_reward: null,
    actor_pass_at_1: null,
    actor_pass_at_2: null,
    actor_pass_at_3: null,
  });
  assert.equal(sampledEvalSeed(7), hash3(7, SAMPLED_EVAL_STREAM, 0));
});
