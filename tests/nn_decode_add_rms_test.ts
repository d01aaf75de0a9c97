// Whole decode steps with every residual add + RMSNorm folded into the product that reads it
// (ops.addRmsNormMatmul inside Transformer.logitsOver; tests/matmul_skinny_add_rms_test.ts tests
// the kernel): fused (as a GPU chooses) against the skinny kernel turned off (composed) and the
// float64 transformer, for vec4 and scalar hidden sizes; and a rollout's captured
// log-probs against a training-mode forward with the fused products taken.
import assert from "node:assert/strict";
import { noGrad } from "../src/autograd/mod.ts";
import { ComputeBatch, type Dispatch } from "../src/gpu/mod.ts";
import { readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { withSkinnyMaxM } from "../src/tensor/matmul/mod.ts";
import { decodeStep, KVCache } from "../src/nn/kv_cache.ts";
import { type ModelConfig, validateModelConfig } from "../src/nn/config.ts";
import { referenceLogits, type RefParams } from "../src/nn/reference.ts";
import { completion, RolloutEngine } from "../src/nn/rollout.ts";
import { logSoftmaxRef } from "../src/nn/sampling_reference.ts";
import { Rng } from "../src/util/rng.ts";
import { DECODE_TEST_MODEL, randomModel } from "./nn_decode_util.ts";
import { asGpu, assertNoGpuErrors, setup } from "./autograd_util.ts";

const rt = await setup();

/** A recording batch: the names of the kernels dispatched into it. */
class SpyBatch extends ComputeBatch {
  kernels: string[] = [];
  override dispatch(d: Dispatch): this {
    this.kernels.push(d.kernel.name);
    return super.dispatch(d);
  }
}

const MODEL: ModelConfig = DECODE_TEST_MODEL;

// Runs `fn` fused (as a GPU chooses) or composed (the skinny kernel off: the tiled kernels and the
// norms on their own).
function fusing<T>(on: boolean, fn: () => T): T {
  return on ? asGpu(fn) : withSkinnyMaxM(0, fn);
}

for (const variant of [{}, { tiedEmbeddings: false, hidden: 18, intermediate: 36 }]) {
  Deno.test(`decode steps ${JSON.stringify(variant)}: fused add-RMS = composed = float64 transformer`, async () => {
    // Fused: every add + norm in the product that reads it (as a GPU chooses); composed: the
    // skinny kernel off (add_rms_fwd4 / rms_fwd4, then the tiled products).
    const cfg = validateModelConfig({ ...MODEL, ...variant });
    const model = randomModel(cfg, 40);
    const B = 5, steps = 4;
    const caches = [new KVCache(model, B, 8), new KVCache(model, B, 8)];
    const named = model.namedParameters();
    const host = (await readAll([...named.values()])) as Float32Array[];
    const p: RefParams = new Map([...named.keys()].map((k, i) => [k, Float64Array.from(host[i])]));
    const seqs = Array.from({ length: B }, () => [] as number[]);
    const rng = new Rng(41);
    let vsComposed = 0, vsRef = 0, fusedNorms = 0;
    const norms = steps * (2 * cfg.layers + 1);
    for (let s = 0; s < steps; s++) {
      const ids = Int32Array.from({ length: B }, () => rng.int(cfg.vocabSize));
      ids.forEach((id, b) => seqs[b].push(id));
      const t = tensor(ids);
      rt.flush(); // the upload first: the spy batches are submitted on their own
      const spies = [new SpyBatch(rt.gpu), new SpyBatch(rt.gpu)];
      const ys = [true, false].map((gpu, i) =>
        fusing(
          gpu,
          () =>
            noGrad(() =>
              rt.recordInto(
                spies[i],
                () => tidy(() => decodeStep(model, t, caches[i], s)),
              )
            ),
        )
      );
      spies.forEach((spy) => spy.submit());
      t.dispose();
      const count = (i: number, re: RegExp) => spies[i].kernels.filter((k) => re.test(k)).length;
      assert.equal(count(0, /^ops_norm/), 0, "fused: no norm dispatch");
      assert.equal(count(1, /^ops_norm/), 2 * cfg.layers + 1, "composed: the norms dispatched");
      fusedNorms += count(0, /_addRms/);
      const [f, c] = (await readAll(ys)) as Float32Array[];
      ys.forEach((y) => y.dispose());
      for (let i = 0; i < f.length; i++) vsComposed = Math.max(vsComposed, Math.abs(f[i] - c[i]));
      seqs.forEach((seq, b) => {
        const ref = referenceLogits(cfg, p, seq)[s];
        for (let v = 0; v < cfg.vocabSize; v++) {
          vsRef = Math.max(vsRef, Math.abs(f[b * cfg.vocabSize + v] - ref[v]));
        }
      });
    }
    console.log(
      `${JSON.stringify(variant)}: max |Δ logit| fused vs composed ${
        vsComposed.toExponential(2)
      }, ` +
        `vs float64 ${vsRef.toExponential(2)}`,
    );
    assert.equal(fusedNorms, norms, "every norm went into a product");
    // The two paths differ only in f32 rounding: each product sums a few dozen terms of O(1) in
    // another order (skinny vs tiled) and scales by rstd after the sum instead of before; over
    // two blocks that moves O(1) logits by a few hundred ulps at most (measured ≤ 7e-6): 3e-5.
    // Against float64: nn_decode_joined_test's bound for a decode step.
    assert.ok(vsComposed < 3e-5, `fused vs composed ${vsComposed}`);
    assert.ok(vsRef < 1e-4, `fused vs float64 ${vsRef}`);
    caches.forEach((c) => c.dispose());
    model.dispose();
    assertNoGpuErrors();
  });
}

Deno.test("rollout with the fused add-RMS products: captured log-probs equal a training-mode forward", async () => {
  const model = randomModel(MODEL, 50);
  const rng = new Rng(51);
  const B = 6, maxPrompt = 4, maxNew = 6;
  const ps = Array.from(
    { length: B },
    () => Int32Array.from({ length: 1 + rng.int(maxPrompt) }, () => 3 + rng.int(10)),
  );
  const engine = new RolloutEngine(model, {
    maxBatch: 8,
    maxPromptLength: maxPrompt,
    maxNewTokens: maxNew,
  });
  // Counts the fused products while the adapter chooses as a GPU (for the whole generate call).
  const g = rt.gpu as { isFallback: boolean }, was = g.isFallback;
  const inner = ComputeBatch.prototype.dispatch;
  let fused = 0;
  ComputeBatch.prototype.dispatch = function (this: ComputeBatch, d: Dispatch) {
    if (/_addRms/.test(d.kernel.name)) fused++;
    return inner.call(this, d);
  };
  g.isFallback = false;
  let r;
  try {
    const opts = { temperature: 1, topK: 0, topP: 1, seed: 7, stream0: 0, stopId: 2, padId: 0 };
    r = await engine.generate(ps, opts);
  } finally {
    g.isFallback = was;
    ComputeBatch.prototype.dispatch = inner;
    engine.dispose();
  }
  assert.ok(fused >= 2 * MODEL.layers + 1, `fused products taken: ${fused}`);
  const T = maxPrompt + maxNew, flat = new Int32Array(B * T);
  ps.forEach((p, b) => {
    flat.set(p, b * T);
    flat.set(completion(r, b), b * T + p.length);
  });
  const logits = tidy(() => model.forward(tensor(flat, [B, T])));
  const host = (await readAll([logits]))[0] as Float32Array;
  logits.dispose();
  let maxDiff = 0, n = 0;
  for (let b = 0; b < B; b++) {
    const c = completion(r, b);
    for (let g = 0; g < c.length; g++, n++) {
      const pos = ps[b].length - 1 + g, V = MODEL.vocabSize;
      const raw = logSoftmaxRef(host.subarray((b * T + pos) * V, (b * T + pos + 1) * V))[c[g]];
      maxDiff = Math.max(maxDiff, Math.abs(raw - r.rawLogProbs[b * maxNew + g]));
    }
  }
  console.log(`rollout, fused: ${n} captured log-probs, max |Δ| ${maxDiff.toExponential(2)}`);
  assert.ok(n >= B, "tokens were generated");
  assert.ok(maxDiff <= 1e-4, `max |Δ log-prob| ${maxDiff}`);
  model.dispose();
  assertNoGpuErrors();
});
