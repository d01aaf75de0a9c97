import assert from "node:assert/strict";
import { AdamW, noGrad } from "../src/autograd/mod.ts";
import { buildSupervisedBatch, createTaskFromSpec, maxSequenceLength } from "../src/tasks/mod.ts";
import { initTensors, readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { loadCheckpoint } from "../src/nn/checkpoint/mod.ts";
import { modelConfig, parseModelSpec } from "../src/nn/config.ts";
import { evaluateGreedy } from "../src/nn/pretrain.ts";
import { RolloutEngine } from "../src/nn/rollout.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { runPretrain } from "../src/cli/commands/pretrain.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("a tiny transformer overfits a fixed batch and then answers it greedily", async () => {
  await initTensors();
  const task = createTaskFromSpec("arithmetic:maxDigits=1,ops=+");
  const examples = task.sample(new Rng(3), 8);
  const T = maxSequenceLength(task);
  const batch = buildSupervisedBatch(task, examples, T);
  const targets = Int32Array.from(batch.targets, (y, i) => (batch.targetMask[i] > 0 ? y : -1));
  const model = Transformer.init(modelConfig("tiny", task.tokenizer.vocabSize), { seed: 2 });
  const opt = new AdamW(model.parameters(), { lr: 2e-2, weightDecay: 0 });
  const losses: number[] = [];
  for (let step = 0; step < 60; step++) {
    const l = tidy(() => {
      const l = model.loss(tensor(batch.tokens, [batch.B, T]), tensor(targets, [batch.B, T]));
      l.backward();
      opt.step();
      opt.zeroGrad();
      return l;
    });
    losses.push((await readAll([l]))[0][0]);
    l.dispose();
  }
  assert.ok(losses[59] < 0.05 * losses[0], `loss ${losses[0]} → ${losses[59]}`);
  const engine = new RolloutEngine(model, {
    maxBatch: 8,
    maxPromptLength: task.maxPromptLength,
    maxNewTokens: task.maxAnswerLength + 1,
  });
  assert.equal(await evaluateGreedy(engine, task, examples), 1);
  engine.dispose();
  opt.dispose();
  model.dispose();
});

Deno.test("runPretrain writes the run folder; its checkpoint reloads to the same logits", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir();
  const config = {
    task: "arithmetic:maxDigits=1,ops=+",
    model: "tiny:hidden=32,heads=2,kvHeads=1",
    steps: 4,
    batch: 8,
    lr: 1e-2,
    seed: 1,
    evalEvery: 2,
    evalSize: 8,
    target: 1,
  };
  const run = await runPretrain(config, dir, { quiet: true });
  for (
    const f of [
      "losses.csv",
      "evals.csv",
      "loss.svg",
      "loss.vl.json",
      "accuracy.svg",
      "index.html",
      "config.json",
    ]
  ) {
    assert.ok((await Deno.stat(`${dir}/${f}`)).size > 0, f);
  }
  assert.equal(run.result.steps.length, 4);
  assert.deepEqual(run.result.evals.map((e) => e.step), [2, 4]);
  const csv = await Deno.readTextFile(`${dir}/losses.csv`);
  const [header, ...lines] = csv.trim().split("\n");
  assert.equal(lines.length, 4);
  // GPU memory held at each step: positive, and the model's weights and AdamW state at least.
  const gpuCol = header.split(",").indexOf("gpu_mb");
  assert.ok(gpuCol >= 0, `gpu_mb in ${header}`);
  const params = [...(await loadCheckpoint(`${dir}/model`)).tensors.values()]
    .reduce((n, t) => n + t.data.length, 0);
  for (const line of lines) {
    const mib = Number(line.split(",")[gpuCol]);
    assert.ok(mib * 2 ** 20 >= 16 * params, `gpu_mb ${mib} below 16 bytes × ${params} parameters`);
  }
  const ckpt = await loadCheckpoint(`${dir}/model`);
  assert.equal(ckpt.config.jackpot?.step, 4);
  assert.equal(ckpt.config.jackpot?.task, config.task);
  const model = Transformer.fromTensors(ckpt.config, ckpt.tensors);
  assert.deepEqual(model.config, parseModelSpec(config.model, 18));
  // The last evaluation's checkpoint and model/ hold the same weights: same logits.
  const again = Transformer.fromTensors(
    ckpt.config,
    (await loadCheckpoint(`${dir}/checkpoints/step-000004`)).tensors,
  );
  const toks = tensor(new Int32Array([1, 5, 13, 6, 16]), [1, 5]);
  const [a, b] = await readAll(noGrad(() => [model.forward(toks), again.forward(toks)]));
  assert.deepEqual(a, b);
  const saved = await model.toCheckpoint();
  for (const [name, t] of saved.tensors) {
    assert.deepEqual(t.data, ckpt.tensors.get(name)!.data, name);
  }
  model.dispose();
  again.dispose();
  // --init continues from the saved weights: its first loss is well below a fresh model's.
  const resumed = await runPretrain(
    { ...config, init: `${dir}/model`, steps: 1 },
    `${dir}/resumed`,
    { quiet: true },
  );
  assert.ok(
    resumed.result.steps[0].loss < run.result.steps[0].loss - 0.1,
    `resumed ${resumed.result.steps[0].loss} vs fresh ${run.result.steps[0].loss}`,
  );
  await Deno.remove(dir, { recursive: true });
});
