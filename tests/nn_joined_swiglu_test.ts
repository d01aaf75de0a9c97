// swigluJoined (src/autograd/swiglu.ts), SwiGLU on the joined gate/up projection: forward against
// the float64 reference, backward against finite differences of it, vec4 and scalar widths,
// strided input; equal to the separate-input swiglu on the two halves (forward and gradients);
// one dispatch each way; clear errors.
import assert from "node:assert/strict";
import { type Arr, mapN, sliceRef } from "../src/autograd/reference.ts";
import { ops } from "../src/autograd/mod.ts";
import { swigluJoined } from "../src/autograd/swiglu.ts";
import { readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, checkOp, randArr, setup, up } from "./autograd_util.ts";

const rt = await setup();
const rng = new Rng(23);

const siluRef = (v: number) => v / (1 + Math.exp(-v));
function joinedRef(x: Arr): Arr {
  const a = x.shape.length - 1, H = x.shape[a] / 2;
  return mapN((g, u) => siluRef(g) * u, sliceRef(x, a, 0, H), sliceRef(x, a, H, 2 * H));
}

for (const shape of [[2], [3, 10], [2, 3, 16], [7, 26], [5, 8]]) {
  Deno.test(`swigluJoined ${JSON.stringify(shape)}: forward and backward`, async () => {
    await checkOp({
      name: `swigluJoined ${shape}`,
      inputs: [randArr(rng, shape, 2)],
      gpu: ([x]) => swigluJoined(x),
      ref: ([x]) => joinedRef(x),
    });
  });
}

Deno.test("swigluJoined: a strided input, and saturated gates", async () => {
  await checkOp({
    name: "swigluJoined of a transposed view",
    inputs: [randArr(rng, [8, 5], 2)],
    gpu: ([x]) => swigluJoined(x.transpose()),
    ref: ([x]) => {
      const t = { data: new Float64Array(40), shape: [5, 8] };
      for (let i = 0; i < 5; i++) for (let j = 0; j < 8; j++) t.data[i * 8 + j] = x.data[j * 5 + i];
      return joinedRef(t);
    },
  });
  const x = { data: Float64Array.from([-100, -30, 0, 30, 100, 1e-6, 2, 3, -1, 4]), shape: [1, 10] };
  await checkOp({
    name: "swigluJoined saturated",
    inputs: [x],
    gpu: ([t]) => swigluJoined(t),
    ref: ([t]) => joinedRef(t),
    gpuH: 0,
  });
});

Deno.test("swigluJoined equals swiglu on the halves; one dispatch each way", async () => {
  for (const H of [12, 7]) {
    const x = randArr(rng, [6, 2 * H], 2);
    const dy = up(randArr(rng, [6, H]));
    const xj = up(x, true), xs = up(x, true);
    const before = rt.counters.dispatches;
    const yj = tidy(() => {
      const y = swigluJoined(xj);
      y.backward(dy);
      return y;
    });
    // the backward also creates and accumulates the leaf's gradient (2 dispatches)
    assert.equal(rt.counters.dispatches - before, 1 + 1 + 2, "forward, backward, leaf gradient");
    const ys = tidy(() => {
      const y = ops.swiglu(ops.slice(xs, 1, 0, H), ops.slice(xs, 1, H, 2 * H));
      y.backward(dy);
      return y;
    });
    const [a, ga, b, gb] = await readAll([yj, xj.grad!, ys, xs.grad!]);
    assertClose(`H=${H} forward`, a, b, 1e-7, 1e-6);
    assertClose(`H=${H} gradient`, ga, gb, 1e-7, 1e-6);
    [xj, xs, yj, ys, dy].forEach((t) => t.dispose());
  }
  assertNoGpuErrors();
});

Deno.test("swigluJoined: an odd last axis is named", () => {
  const x = tensor(new Float32Array(6), [2, 3]);
  assert.throws(() => swigluJoined(x), /swigluJoined: x \[2,3\] needs a last axis of even length/);
  x.dispose();
});
