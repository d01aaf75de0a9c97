// A whole training step (forward, fused cross-entropy, backward, AdamW with clipping, zeroGrad) of
// a small Qwen-shaped model whose vocabulary tensors are larger than one storage binding, as a
// 151,936-token vocabulary is against llvmpipe's 128 MiB: the binding limit is lowered so that the
// [1000, C] embedding (and classifier), their gradients and moments, and the [B·T, 1000] logits
// and their gradient each span several bindings. Two steps must leave the parameters where the
// same steps leave them at the device's limit (one binding each, the packed optimizer).
import assert from "node:assert/strict";
import { AdamW } from "../src/autograd/mod.ts";
import { validateModelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertNoGpuErrors, closeness, setup } from "./autograd_util.ts";

const V = 1000;

for (const tied of [true, false]) {
  Deno.test(`a training step over a lowered binding limit equals one at the device's (${tied ? "tied" : "untied"})`, async () => {
    const rt = await setup();
    // The smallest limit that the matmul's row blocks allow (8 rows at a 32-byte offset
    // alignment, 64 at 256) and sizes that put every vocabulary tensor over it several times.
    const limit = Math.max(32768, Math.ceil((rt.storageOffsetAlignment * V) / 4096) * 4096);
    const C = Math.ceil((3 * limit) / (4 * V) / 16) * 16;
    const B = 2, T = Math.ceil((2.5 * limit) / (4 * V) / B);
    assert.ok(V * C * 4 > 2 * limit && B * T * V * 4 > 2 * limit);
    const cfg = validateModelConfig({
      vocabSize: V,
      hidden: C,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      headDim: 8,
      intermediate: 2 * C,
      maxSeqLen: T,
      ropeTheta: 10000,
      normEps: 1e-6,
      tiedEmbeddings: tied,
      qkNorm: true,
    });
    const rng = new Rng(5);
    // tokens at the table's block edges and random ones; a few targets ignored
    const ids = Int32Array.from(
      { length: B * T },
      (_, i) => (i < 4 ? [0, 255, 256, 999][i] : rng.int(V)),
    );
    const tg = Int32Array.from({ length: B * T }, (_, i) => (i % 9 === 4 ? -1 : rng.int(V)));
    const run = async (lim: number | null) => {
      const model = Transformer.init(cfg, { seed: 8, std: 0.2 });
      rt.flush();
      const before = rt.counters.dispatches;
      rt.storageBindingLimit = lim ?? rt.deviceBindingLimit;
      try {
        const params = model.parameters();
        const opt = new AdamW(params, { lr: 1e-2, weightDecay: 0.1, maxGradNorm: 0.5 });
        const tokens = tensor(ids, [B, T]), targets = tensor(tg, [B, T]);
        const losses: Tensor[] = [];
        let grads: Float32Array[] = [];
        for (let step = 0; step < 2; step++) {
          losses.push(tidy(() => {
            const l = model.loss(tokens, targets);
            l.backward();
            return l;
          }));
          if (step === 0) grads = (await readAll(params.map((p) => p.grad!))) as Float32Array[];
          opt.step();
          opt.zeroGrad();
        }
        const out = await readAll([...losses, opt.gradNorm, ...params]);
        const dispatches = rt.counters.dispatches - before;
        const packed = opt.packed;
        opt.dispose();
        [tokens, targets, ...losses].forEach((t) => t.dispose());
        return { out: out as Float32Array[], grads, dispatches, packed };
      } finally {
        rt.storageBindingLimit = rt.deviceBindingLimit;
        model.dispose();
      }
    };
    const split = await run(limit);
    const whole = await run(null);
    assertNoGpuErrors();
    assert.ok(!split.packed && whole.packed, "the arena is over the lowered limit only");
    assert.ok(
      split.dispatches > whole.dispatches + 20,
      `${split.dispatches} vs ${whole.dispatches}`,
    );
    const worst = (a: Float32Array[], b: Float32Array[], atol: number, rtol: number) =>
      Math.max(...a.map((x, i) => closeness(x, b[i], atol, rtol)));
    // losses of both steps, the gradient norm and clip scale: the same up to rounding
    const c0 = worst(split.out.slice(0, 3), whole.out.slice(0, 3), 1e-6, 1e-5);
    assert.ok(c0 <= 1, `losses and gradient norm: ${c0}× tolerance`);
    assert.ok(whole.out[2][1] < 1, "clipping was active");
    const cg = worst(split.grads, whole.grads, 1e-6, 1e-4);
    assert.ok(cg <= 1, `first step's gradients: ${cg}× tolerance`);
    // Parameters after two steps. AdamW moves a weight by about lr·g/|g| whatever |g| is, so a
    // gradient that is rounding noise (|g| ~ 1e-7 out of terms of 1e-2 that cancel) moves its weight
    // by a noise-sized fraction of lr either way: 2% of lr overall, and 1e-5 for all but a few.
    const lr = 1e-2;
    const cp = worst(split.out.slice(3), whole.out.slice(3), 0.02 * lr, 1e-5);
    assert.ok(cp <= 1, `parameters after two steps: ${cp}× tolerance`);
    let far = 0, n = 0;
    split.out.slice(3).forEach((x, i) => {
      const y = whole.out[3 + i];
      n += x.length;
      for (let j = 0; j < x.length; j++) if (!(Math.abs(x[j] - y[j]) <= 1e-5)) far++;
    });
    assert.ok(far <= n / 1000, `${far} of ${n} parameters differ by more than 1e-5`);
  });
}
