import assert from "node:assert/strict";
import { AdamW, warmupConstant, warmupCosine } from "../src/autograd/mod.ts";
import { adamwRef } from "../src/autograd/reference.ts";
import { readAll, runtime, type Tensor, tidy } from "../src/tensor/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, randArr, setup, up, upPacked } from "./autograd_util.ts";

Deno.test("AdamW with global-norm clipping matches a float64 reference over several steps", async () => {
  await setup();
  const rng = new Rng(11);
  const shapes = [[3, 5], [7], [2, 2]]; // the last one never gets a gradient
  const init = shapes.map((s) => randArr(rng, s));
  const coef = shapes.map((s) => randArr(rng, s, 2));
  const ps = init.map((a) => up(a, true));
  const cs = coef.map((a) => up(a));
  for (const maxGradNorm of [1.5, 0]) {
    const params = init.map((a, i) => {
      const t = up(a, true);
      ps[i] = t;
      return t;
    });
    const o = { lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm };
    const opt = new AdamW(params, o);
    const ref = init.map((a) => a.data.slice());
    const m = init.map((a) => new Float64Array(a.data.length));
    const v = init.map((a) => new Float64Array(a.data.length));
    let refNorm: [number, number] = [0, 0];
    for (let step = 1; step <= 4; step++) {
      tidy(() => {
        // a linear loss Σ c ⊙ p over the first two parameters: the gradient is c, whatever p is
        const loss = params[0].mul(cs[0]).sum().add(params[1].mul(cs[1]).sum());
        loss.backward();
        opt.step();
        opt.zeroGrad();
      });
      const gs = [coef[0].data, coef[1].data, null];
      refNorm = adamwRef(ref, gs, m, v, [true, false, true], step, o);
    }
    const got = await readAll([...params, opt.gradNorm]);
    assertNoGpuErrors();
    ref.forEach((r, i) =>
      assertClose(`param ${i} (maxGradNorm ${maxGradNorm})`, got[i], r, 1e-5, 1e-4)
    );
    assertClose("grad norm and clip scale", got[3], refNorm, 1e-5, 1e-5);
    if (maxGradNorm > 0) assert.ok(refNorm[1] < 1, "clipping was active");
    assert.deepEqual(
      [...got[2]],
      [...init[2].data].map(Math.fround),
      "no gradient: the parameter stays (no decay step)",
    );
    opt.dispose();
    params.forEach((p: Tensor) => p.dispose());
  }
});

Deno.test("an optimizer step records dispatches only: no submit and no readback", async () => {
  await setup();
  const rng = new Rng(3);
  const w = up(randArr(rng, [4, 4]), true);
  const opt = new AdamW([w], { lr: 1e-2, maxGradNorm: 1 });
  tidy(() => w.mul(w).sum().backward());
  runtime().flush();
  const before = { ...runtime().counters };
  opt.step();
  assert.equal(runtime().counters.submits, before.submits);
  assert.equal(runtime().counters.reads, before.reads);
  assert.ok(runtime().counters.dispatches > before.dispatches);
  opt.dispose();
  w.dispose();
});

Deno.test("schedules: warm-up then cosine to the floor; constant after warm-up", () => {
  const lr = warmupCosine({ lr: 1, warmup: 10, total: 110, minLr: 0.1 });
  assert.equal(lr(0), 0.1);
  assert.equal(lr(9), 1);
  assert.equal(lr(10), 1);
  assert.ok(Math.abs(lr(60) - 0.55) < 1e-12);
  assert.ok(Math.abs(lr(110) - 0.1) < 1e-12);
  for (let s = 10; s < 110; s++) assert.ok(lr(s + 1) <= lr(s));
  const c = warmupConstant({ lr: 2, warmup: 4 });
  assert.deepEqual([0, 1, 3, 4, 100].map(c), [0.5, 1, 2, 2, 2]);
  assert.throws(() => warmupCosine({ lr: 1, warmup: 5, total: 2 }), /warmup/);
});

Deno.test("AdamW on packed parameters: one update dispatch, the float64 reference's result", async () => {
  await setup();
  const rng = new Rng(17);
  // odd sizes: vec4 lanes past a parameter's end fall in the arena's padding
  const shapes = [[3, 5], [7], [2, 2], [9, 3]]; // [2, 2] never gets a gradient
  const init = shapes.map((s) => randArr(rng, s));
  const coef = shapes.map((s) => randArr(rng, s, 2));
  const cs = coef.map((a) => up(a));
  for (const maxGradNorm of [1.5, 0]) {
    const params = upPacked(init);
    const o = { lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm };
    const opt = new AdamW(params, o);
    assert.ok(opt.packed, "packed parameters take the one-dispatch path");
    const ref = init.map((a) => a.data.slice());
    const m = init.map((a) => new Float64Array(a.data.length));
    const v = init.map((a) => new Float64Array(a.data.length));
    let refNorm: [number, number] = [0, 0];
    const used = [0, 1, 3];
    for (let step = 1; step <= 4; step++) {
      tidy(() => {
        let loss = params[used[0]].mul(cs[used[0]]).sum();
        for (const i of used.slice(1)) loss = loss.add(params[i].mul(cs[i]).sum());
        loss.backward();
        const before = runtime().counters.dispatches;
        opt.step();
        if (step > 1) {
          // partial sums, norm + clip scale, update: whatever the number of parameters
          assert.equal(runtime().counters.dispatches - before, 3, "dispatches of one step");
        }
        const z = runtime().counters.dispatches;
        opt.zeroGrad();
        assert.equal(runtime().counters.dispatches - z, 1, "zeroGrad is one fill");
      });
      const gs = shapes.map((_, i) => (used.includes(i) ? coef[i].data : null));
      refNorm = adamwRef(ref, gs, m, v, shapes.map((s) => s.length >= 2), step, o);
    }
    const got = await readAll([...params, opt.gradNorm]);
    assertNoGpuErrors();
    ref.forEach((r, i) => assertClose(`param ${i} (clip ${maxGradNorm})`, got[i], r, 1e-5, 1e-4));
    assertClose("grad norm and clip scale", got[params.length], refNorm, 1e-5, 1e-5);
    assert.deepEqual([...got[2]], [...init[2].data].map(Math.fround), "no gradient: untouched");
    opt.dispose();
    params.forEach((p) => p.dispose());
  }
});

Deno.test("packed AdamW ignores whatever lies in the arena's padding", async () => {
  await setup();
  const rng = new Rng(5);
  const init = [randArr(rng, [5]), randArr(rng, [3, 3])];
  const run = async (poison: boolean) => {
    const params = upPacked(init);
    const opt = new AdamW(params, { lr: 0.1, maxGradNorm: 1 });
    tidy(() => params[0].mul(params[0]).sum().add(params[1].sum()).backward());
    if (poison) {
      // NaN in the padding of the gradient arena after parameter 0 (elements 5..63)
      const grad = params[0].grad!;
      const rt = runtime();
      rt.flush(); // the backward's dispatches first, then the write
      const nan = new Float32Array(59).fill(NaN);
      rt.gpu.device.queue.writeBuffer(grad.storageBuffer, (grad.offset + 5) * 4, nan);
    }
    opt.step();
    const got = await readAll([...params, opt.gradNorm]);
    opt.dispose();
    params.forEach((p) => p.dispose());
    return got;
  };
  const clean = await run(false);
  const poisoned = await run(true);
  clean.forEach((c, i) => assert.deepEqual([...poisoned[i]], [...c], `output ${i}`));
  assert.ok(clean.every((c) => c.every(Number.isFinite)));
  assertNoGpuErrors();
});

Deno.test("a Transformer's parameters are packed, so its optimizer takes the one-dispatch path", async () => {
  await setup();
  const model = Transformer.init(modelConfig("tiny", 18), { seed: 3 });
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  assert.ok(opt.packed);
  assert.ok(!new AdamW([up(randArr(new Rng(1), [4]), true)], { lr: 1 }).packed);
  opt.dispose();
  model.dispose();
});
