import assert from "node:assert/strict";
import { AdamW, warmupConstant, warmupCosine } from "../src/autograd/mod.ts";
import { adamwRef } from "../src/autograd/reference.ts";
import { readAll, runtime, type Tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, randArr, setup, up } from "./autograd_util.ts";

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
