// A model whose embedding/classifier is larger than one storage binding (a 151,936-token
// vocabulary against llvmpipe's 128 MiB), at a small size: the binding limit lowered to 16 KiB so
// that the tied [1000, 32] table spans 8 bindings. A rollout (prefill, decode steps through
// Transformer.logitsOver, sampling with top-k capture) runs the embedding lookup and the
// classifier in blocks, and must sample the same tokens, with the same log-probs, as the model at
// the device's limit (one binding). The full-size run is bench/bigvocab/main.ts.
import assert from "node:assert/strict";
import { validateModelConfig } from "../src/nn/config.ts";
import { RolloutEngine } from "../src/nn/rollout.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";
import { assertNoGpuErrors, closeness, setup } from "./autograd_util.ts";

Deno.test("a rollout with the vocabulary over one binding samples as with one binding", async () => {
  const rt = await setup();
  const cfg = validateModelConfig({
    vocabSize: 1000,
    hidden: 32,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 8,
    intermediate: 48,
    maxSeqLen: 32,
    ropeTheta: 10000,
    normEps: 1e-6,
    tiedEmbeddings: true,
    qkNorm: true,
  });
  const model = Transformer.init(cfg, { seed: 3, std: 0.5 });
  const rng = new Rng(4);
  // first/last rows of the table's blocks among the prompt tokens (128 rows per 16 KiB block)
  const prompts = [
    Int32Array.from([0, 127, 128, 999, 500]),
    Int32Array.from([255, 256, 383, 384, 7]),
    Int32Array.from({ length: 3 }, () => rng.int(1000)),
  ];
  const run = async (limit: number | null) => {
    const before = rt.counters.dispatches;
    rt.storageBindingLimit = limit ?? rt.deviceBindingLimit;
    try {
      const engine = new RolloutEngine(model, {
        maxBatch: 3,
        maxPromptLength: 5,
        maxNewTokens: 6,
        captureK: 4,
      });
      const r = await engine.generate(prompts, { seed: 9, temperature: 1, topK: 50 });
      engine.dispose();
      return { r, dispatches: rt.counters.dispatches - before };
    } finally {
      rt.storageBindingLimit = rt.deviceBindingLimit;
    }
  };
  const split = await run(16384);
  const whole = await run(null);
  assertNoGpuErrors();
  assert.ok(split.dispatches > whole.dispatches + 20, `${split.dispatches} vs ${whole.dispatches}`);
  assert.deepEqual(split.r.tokens, whole.r.tokens);
  assert.deepEqual(split.r.topIds, whole.r.topIds);
  for (const k of ["logProbs", "rawLogProbs", "topLogProbs"] as const) {
    const c = closeness(split.r[k], whole.r[k], 1e-5, 1e-5);
    assert.ok(c <= 1, `${k}: split vs one binding ${c}`);
  }
  assert.ok(split.r.tokens.every((t) => t >= 0 && t < 1000));
  model.dispose();
});
