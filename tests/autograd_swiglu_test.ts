// The fused SwiGLU gate (swiglu.ts): forward against the float64 reference, backward against
// finite differences of it (and of the GPU forward), sizes that are not whole vec4 groups, strided
// inputs, one input without a gradient, extreme values, agreement with the composed silu·mul, and
// one dispatch each way.
import assert from "node:assert/strict";
import { type Arr, arr, mapN } from "../src/autograd/reference.ts";
import { ops } from "../src/autograd/mod.ts";
import { ComputeBatch, startProfiling } from "../src/gpu/mod.ts";
import { readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, checkOp, randArr, setup, up } from "./autograd_util.ts";

const rt = await setup();
const rng = new Rng(5);

const siluRef = (v: number) => v / (1 + Math.exp(-v));
const swigluRef = ([g, u]: Arr[]) => mapN((a, b) => siluRef(a) * b, g, u);

for (const shape of [[1], [3, 5], [2, 3, 8], [7, 13]]) {
  Deno.test(`swiglu ${JSON.stringify(shape)}: forward, backward and GPU finite differences`, async () => {
    await checkOp({
      name: `swiglu ${shape}`,
      inputs: [randArr(rng, shape, 2), randArr(rng, shape)],
      gpu: ([g, u]) => ops.swiglu(g, u),
      ref: swigluRef,
    });
  });
}

Deno.test("swiglu: strided inputs, and a gradient for one input only", async () => {
  await checkOp({
    name: "swiglu of transposed views",
    inputs: [randArr(rng, [6, 5], 2), randArr(rng, [6, 5])],
    gpu: ([g, u]) => ops.swiglu(g.transpose(), u.transpose()),
    ref: ([g, u]) => {
      const t = (x: Arr) =>
        arr(Array.from({ length: 30 }, (_, i) => x.data[(i % 6) * 5 + Math.floor(i / 6)]), [5, 6]);
      return swigluRef([t(g), t(u)]);
    },
  });
  await checkOp({
    name: "swiglu, up only",
    inputs: [randArr(rng, [4, 9], 2), randArr(rng, [4, 9])],
    grads: [1],
    gpu: ([g, u]) => ops.swiglu(g, u),
    ref: swigluRef,
  });
});

Deno.test("swiglu: saturated gates and the composed silu·mul agree; one dispatch each way", async () => {
  const g = arr([-100, -30, -1e-6, 0, 1e-6, 30, 100, 3.5, -2.25], [9]);
  const u = randArr(rng, [9]);
  const dy = randArr(rng, [9]);
  const gt = up(g, true), ut = up(u, true), dyt = up(dy);
  const gc = up(g, true), uc = up(u, true);
  rt.flush();
  const batch = new ComputeBatch(rt.gpu);
  const fused = rt.recordInto(batch, () =>
    tidy(() => {
      const y = ops.swiglu(gt, ut);
      y.backward(dyt);
      return y;
    }));
  const profiler = rt.gpu.hasTimestamps ? startProfiling(rt.gpu) : undefined;
  batch.submit();
  const kernels = (await profiler?.finish())?.map((t) => `${t.kernel}:${t.entryPoint}`);
  const composed = tidy(() => {
    const y = ops.mul(ops.silu(gc), uc);
    y.backward(dyt);
    return y;
  });
  const [yf, dgf, duf, yc, dgc, duc] = await readAll([
    fused,
    gt.grad!,
    ut.grad!,
    composed,
    gc.grad!,
    uc.grad!,
  ]);
  assertNoGpuErrors();
  assertClose("forward vs reference", yf, swigluRef([g, u]).data, 1e-6, 1e-5);
  assertClose("forward vs composed", yf, yc, 1e-7, 1e-6);
  assertClose("dgate vs composed", dgf, dgc, 1e-7, 1e-6);
  assertClose("dup vs composed", duf, duc, 1e-7, 1e-6);
  if (kernels) {
    assert.deepEqual(
      // besides the leaves' zero-filled .grad and their accumulation
      kernels.filter((k) => !k.endsWith(":accumulate") && !k.startsWith("tensor_fill")),
      ["ops_swiglu:forward", "ops_swiglu:backward"],
    );
  }
  for (const t of [gt, ut, dyt, gc, uc, fused, composed]) t.dispose();
});

Deno.test("swiglu: shapes must match, and ids are refused", () => {
  const a = up(randArr(rng, [2, 3])), b = up(randArr(rng, [3, 2]));
  assert.throws(
    () => ops.swiglu(a, b),
    /swiglu: gate \[2,3\] and up \[3,2\] must have one shape/,
  );
  const ids = tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
  assert.throws(() => ops.swiglu(ids, a), /swiglu/);
  for (const t of [a, b, ids]) t.dispose();
});
