// The rollout's sampling step, the trainer's replay of it and a whole rollout with more rows of
// logits than one storage binding holds (a 151,936-token vocabulary: ~220 rows per 128 MiB), at
// small sizes with the runtime's binding limit lowered: the top-k capture tiles the rows itself,
// the sampling and replay kernels run once per block of rows. Each must give exactly what it gives
// at the device's limit, and match the float64 sampling reference.
import assert from "node:assert/strict";
import { ComputeBatch } from "../src/gpu/mod.ts";
import { validateModelConfig } from "../src/nn/config.ts";
import { sampledLogProbs } from "../src/nn/replay.ts";
import { RolloutEngine } from "../src/nn/rollout.ts";
import {
  allocSampleBuffers,
  disposeSampleBuffers,
  recordSampleStep,
  resetSampleState,
  unpackSampleOutputs,
} from "../src/nn/sample_step.ts";
import {
  processedLogProbs,
  sampleStepRef,
  type SamplingSettings,
} from "../src/nn/sampling_reference.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { readAll, runtime, tensor, type TensorRuntime, tidy } from "../src/tensor/mod.ts";
import { Rng, uniformAt } from "../src/util/rng.ts";
import { assertNoGpuErrors, atBindingLimit as at, closeness, setup } from "./autograd_util.ts";

/** Rows between two bindable offsets for rows of `V` floats, and a limit of `per` such steps. */
function rowStep(rt: TensorRuntime, V: number, per: number): { step: number; limit: number } {
  const align = rt.storageOffsetAlignment / 4;
  let g = V, b = align;
  while (b) [g, b] = [b, g % b];
  const step = align / g;
  return { step, limit: Math.ceil((per * step * V * 4) / 16) * 16 };
}

/** Rows of logits with ties, -inf entries, peaked and flat rows. */
function logitRows(rng: Rng, B: number, V: number): Float32Array {
  const x = new Float32Array(B * V);
  for (let r = 0; r < B; r++) {
    for (let i = 0; i < V; i++) {
      const kind = r % 4;
      let v = rng.normal() * (kind === 1 ? 6 : 1.5);
      if (kind === 2) v = Math.round(v); // many ties
      if (kind === 3 && i % 5 === 0) v = -Infinity;
      x[r * V + i] = v;
    }
  }
  return x;
}

const SETTINGS: SamplingSettings[] = [
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 0.9, topK: 12, topP: 0.6 },
  { temperature: 0, topK: 0, topP: 1 },
];

Deno.test("sampling steps with logits in row blocks equal one binding and the float64 reference", async () => {
  const rt = await setup();
  const V = 700, K = 6, N = 2;
  const { step, limit } = rowStep(rt, V, 1); // blocks of `step` rows (2 at a 32-byte alignment)
  const B = 3 * step + 1; // four blocks, the last of one row
  const rng = new Rng(17);
  for (const s of SETTINGS) {
    const steps = Array.from({ length: N }, () => logitRows(rng, B, V));
    const seed = rng.int(1 << 30);
    const run = async () => {
      const buffers = allocSampleBuffers(B, N, K);
      // prompts of length 1: step g samples generated index g
      const prompt = tensor(new Int32Array(2 * B).fill(1));
      resetSampleState(buffers, new Int32Array(B).fill(1));
      const logits = steps.map((l) => tensor(l, [B, V]));
      runtime().flush();
      logits.forEach((l, g) => {
        const batch = new ComputeBatch(runtime().gpu);
        const temps = recordSampleStep(batch, {
          logits: l,
          buffers,
          prompt,
          promptCols: 1,
          step: g,
          settings: s,
          seed,
          stopIds: [],
          padId: 0,
        });
        batch.submit();
        for (const t of temps) t.destroy();
      });
      const [st, main, top] = await readAll([buffers.state, buffers.outMain, buffers.outTop]);
      [...logits, prompt].forEach((t) => t.dispose());
      const out = unpackSampleOutputs(
        buffers,
        B,
        st as Uint32Array,
        main as Uint32Array,
        top as Uint32Array,
        0,
      );
      disposeSampleBuffers(buffers);
      return out;
    };
    const [split] = await at(limit, run);
    const [whole] = await at(null, run);
    assertNoGpuErrors();
    const what = JSON.stringify(s);
    for (const k of Object.keys(whole) as (keyof typeof whole)[]) {
      assert.deepEqual(split[k], whole[k], `${what}: ${k} split vs one binding`);
    }
    let compared = 0;
    for (let r = 0; r < B; r++) {
      assert.equal(split.lengths[r], N);
      for (let g = 0; g < N; g++) {
        const row = steps[g].subarray(r * V, (r + 1) * V);
        const ref = sampleStepRef(row, s, uniformAt(seed, r, g), K);
        const o = r * N + g;
        const lp = processedLogProbs(row, s);
        assert.deepEqual(
          [...split.topIds.subarray(o * K, o * K + K)],
          [...ref.topIds],
          `${what}: top-k`,
        );
        const c = closeness(split.topLogProbs.subarray(o * K, o * K + K), ref.topLogProbs, 1e-5, 0);
        assert.ok(c <= 1, `${what}: top-k log-probs row ${r} step ${g}`);
        const tok = split.tokens[o];
        assert.ok(Math.abs(split.logProbs[o] - lp[tok]) < 1e-5, `${what}: log-prob row ${r}`);
        if (ref.margin > 1e-5) {
          assert.equal(tok, ref.token, `${what}: token row ${r} step ${g}`);
          assert.ok(Math.abs(split.rawLogProbs[o] - ref.rawLogProb) < 1e-5);
          compared++;
        }
      }
    }
    assert.ok(compared >= B * N - 2, `${what}: only ${compared} unambiguous draws`);
  }
});

Deno.test("sampledLogProbs over logits in row blocks equals one binding and the float64 reference", async () => {
  const rt = await setup();
  const rng = new Rng(5);
  for (const V of [23, 600]) {
    const { step, limit } = rowStep(rt, V, 2);
    const N = 5 * step + 3;
    for (const s of [...SETTINGS, { temperature: 0.6, topK: 5, topP: 1 }]) {
      const x = logitRows(rng, N, V);
      const toks = Int32Array.from({ length: N }, (_, n) => {
        const lp = processedLogProbs(x.subarray(n * V, (n + 1) * V), s);
        const kept = [...lp.keys()].filter((i) => lp[i] > -Infinity);
        return n % 3 === 0 ? rng.int(V) : kept[rng.int(kept.length)]; // some truncated
      });
      const g = Float32Array.from({ length: N }, () => rng.normal());
      const run = () => {
        const xs = tensor(x, [N, V]);
        xs.requiresGrad = true;
        const out = tidy(() => {
          const y = sampledLogProbs(xs, tensor(toks, [N]), s);
          y.backward(tensor(g, [N]));
          return y;
        });
        return readAll([out, xs.grad!]).finally(() => [out, xs].forEach((t) => t.dispose()));
      };
      const [split, nSplit] = await at(limit, run);
      const [whole, nWhole] = await at(null, run);
      assertNoGpuErrors();
      const what = `V ${V} ${JSON.stringify(s)}`;
      assert.ok(nSplit > nWhole, `${what}: ${nSplit} dispatches vs ${nWhole}`);
      assert.deepEqual(split[0], whole[0], `${what}: log-probs split vs one binding`);
      assert.deepEqual(split[1], whole[1], `${what}: gradient split vs one binding`);
      const want = Array.from(
        { length: N },
        (_, n) => processedLogProbs(x.subarray(n * V, (n + 1) * V), s)[toks[n]],
      );
      assert.ok(closeness(split[0], want, 1e-5, 1e-6) <= 1, `${what}: vs float64`);
    }
  }
});

Deno.test("a rollout with more rows of logits than one binding holds samples as with one binding", async () => {
  const rt = await setup();
  const V = 1000;
  // the classifier's matmul splits its output in blocks of (offset alignment / 4) rows
  const limit = Math.ceil((rt.storageOffsetAlignment * V) / 16) * 16;
  const perBlock = Math.floor(limit / (4 * V));
  const B = 2 * perBlock + 1; // three blocks of logits per decode step
  const cfg = validateModelConfig({
    vocabSize: V,
    hidden: 32,
    layers: 1,
    heads: 4,
    kvHeads: 2,
    headDim: 8,
    intermediate: 48,
    maxSeqLen: 16,
    ropeTheta: 10000,
    normEps: 1e-6,
    tiedEmbeddings: true,
    qkNorm: true,
  });
  const model = Transformer.init(cfg, { seed: 3, std: 0.5 });
  const rng = new Rng(4);
  const prompts = Array.from(
    { length: B },
    (_, r) => Int32Array.from({ length: 1 + (r % 4) }, () => rng.int(V)),
  );
  const run = async () => {
    const engine = new RolloutEngine(model, {
      maxBatch: B,
      maxPromptLength: 4,
      maxNewTokens: 4,
      captureK: 4,
    });
    const r = await engine.generate(prompts, { seed: 9, temperature: 1, topK: 50 });
    engine.dispose();
    return r;
  };
  const [split, nSplit] = await at(limit, run);
  const [whole, nWhole] = await at(null, run);
  assertNoGpuErrors();
  assert.ok(B * V * 4 > 2 * limit, "the logits of a decode step span three bindings");
  assert.ok(nSplit > nWhole, `${nSplit} dispatches vs ${nWhole}`);
  assert.deepEqual(split.tokens, whole.tokens);
  assert.deepEqual(split.topIds, whole.topIds);
  for (const k of ["logProbs", "rawLogProbs", "topLogProbs"] as const) {
    const c = closeness(split[k], whole[k], 1e-5, 1e-5);
    assert.ok(c <= 1, `${k}: split vs one binding ${c}`);
  }
  model.dispose();
});
