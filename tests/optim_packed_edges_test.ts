// AdamW over packed parameters in the situations the one-dispatch path does not cover by itself:
// packed parameters mixed with separate ones (the per-parameter path must bind the packed views
// as slices), against the float64 reference.
import assert from "node:assert/strict";
import { AdamW } from "../src/autograd/mod.ts";
import { ComputeBatch } from "../src/gpu/mod.ts";
import { adamwRef, type Arr } from "../src/autograd/reference.ts";
import { readAll, runtime, type Tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, randArr, setup, up, upPacked } from "./autograd_util.ts";

const OPTS = { lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1.5 };

// Steps of the linear loss Σᵢ cᵢ ⊙ pᵢ (gradient cᵢ) on `params`, then the parameters compared
// with adamwRef's from `init`.
async function checkSteps(params: Tensor[], init: Arr[], coef: Arr[], opt: AdamW, steps: number) {
  const cs = coef.map((c) => up(c));
  const ref = init.map((a) => a.data.slice());
  const m = init.map((a) => new Float64Array(a.data.length));
  const v = init.map((a) => new Float64Array(a.data.length));
  let refNorm: [number, number] = [0, 0];
  for (let step = 1; step <= steps; step++) {
    tidy(() => {
      let loss = params[0].mul(cs[0]).sum();
      for (let i = 1; i < params.length; i++) loss = loss.add(params[i].mul(cs[i]).sum());
      loss.backward();
      opt.step();
      opt.zeroGrad();
    });
    refNorm = adamwRef(
      ref,
      coef.map((c) => c.data),
      m,
      v,
      init.map((a) => a.shape.length >= 2),
      step,
      OPTS,
    );
  }
  const got = await readAll([...params, opt.gradNorm]);
  assertNoGpuErrors();
  ref.forEach((r, i) => assertClose(`param ${i}`, got[i], r, 1e-5, 1e-4));
  assertClose("grad norm and clip scale", got[params.length], refNorm, 1e-5, 1e-5);
  cs.forEach((c) => c.dispose());
}

Deno.test("AdamW over packed parameters plus a separate one (per-parameter path) matches the reference", async () => {
  await setup();
  const rng = new Rng(41);
  const shapes = [[3, 5], [7], [2, 9], [6]];
  const init = shapes.map((s) => randArr(rng, s));
  const coef = shapes.map((s) => randArr(rng, s, 2));
  const params = [...upPacked(init.slice(0, 3)), up(init[3], true)]; // e.g. a model + a value head
  const opt = new AdamW(params, OPTS);
  assert.ok(!opt.packed, "not one arena: the per-parameter path");
  await checkSteps(params, init, coef, opt, 3);
  opt.dispose();
  params.forEach((p) => p.dispose());
});

Deno.test("disposing a replaced packed optimizer leaves the new one's gradients in its arena", async () => {
  await setup();
  const rng = new Rng(43);
  const shapes = [[4, 6], [5]];
  const init = shapes.map((s) => randArr(rng, s));
  const coef = shapes.map((s) => randArr(rng, s, 2));
  const params = upPacked(init);
  const old = new AdamW(params, OPTS);
  const opt = new AdamW(params, OPTS); // e.g. a restart with a new schedule, made before the old is freed
  old.dispose();
  assert.ok(opt.packed);
  const cs = coef.map((c) => up(c));
  tidy(() => params[0].mul(cs[0]).sum().add(params[1].mul(cs[1]).sum()).backward());
  const before = runtime().counters.dispatches;
  opt.step();
  assert.equal(
    runtime().counters.dispatches - before,
    3,
    "backward put the gradients in the live optimizer's arena: nothing to move before the step",
  );
  opt.zeroGrad();
  cs.forEach((c) => c.dispose());
  opt.dispose();
  params.forEach((p) => p.dispose());
});

Deno.test("packed AdamW's first step can be recorded into a caller's batch (no upload needed)", async () => {
  await setup();
  const rng = new Rng(47);
  const shapes = [[3, 7], [9]];
  const init = shapes.map((s) => randArr(rng, s));
  const coef = shapes.map((s) => randArr(rng, s, 2));
  const params = upPacked(init);
  const opt = new AdamW(params, OPTS);
  assert.ok(opt.packed);
  const cs = coef.map((c) => up(c));
  const rt = runtime();
  rt.flush();
  const batch = new ComputeBatch(rt.gpu);
  rt.recordInto(batch, () =>
    tidy(() => {
      params[0].mul(cs[0]).sum().add(params[1].mul(cs[1]).sum()).backward();
      opt.step();
      opt.zeroGrad();
    }));
  batch.submit();
  const ref = init.map((a) => a.data.slice());
  const m = init.map((a) => new Float64Array(a.data.length));
  const v = init.map((a) => new Float64Array(a.data.length));
  const refNorm = adamwRef(ref, coef.map((c) => c.data), m, v, [true, false], 1, OPTS);
  const got = await readAll([...params, opt.gradNorm]);
  assertNoGpuErrors();
  ref.forEach((r, i) => assertClose(`param ${i}`, got[i], r, 1e-5, 1e-4));
  assertClose("grad norm and clip scale", got[2], refNorm, 1e-5, 1e-5);
  cs.forEach((c) => c.dispose());
  opt.dispose();
  params.forEach((p) => p.dispose());
});
