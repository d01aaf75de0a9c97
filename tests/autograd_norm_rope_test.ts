// rmsNormRope (kernels/ops_norm_rope.wgsl): the forward against the float64 reference
// rope(rmsNorm(x, w)), the backward against central finite differences of that reference, and
// both against the composed GPU ops on larger shapes: every lane layout (D/2 from 1 to 1024
// pairs, powers of two and not), backward blocks of one and several row groups with a partial
// last one, both layouts, offsets, T = 1, large and tiny magnitudes, a zero row, the weight as a
// leaf (its gradient sunk into .grad) and as a computed tensor (through the tape).
import assert from "node:assert/strict";
import { ops } from "../src/autograd/mod.ts";
import { type Arr, rmsNormRopeRef } from "../src/autograd/reference.ts";
import { readAll, runtime, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, checkOp, randArr, setup, up } from "./autograd_util.ts";

const rng = new Rng(17);
type Layout = "bthd" | "bhtd";

Deno.test("rmsNormRope matches the float64 reference and its finite differences", async () => {
  await setup();
  // [shape, layout, offset, base, scale of x, eps]
  const cases: [number[], Layout, number, number, number, number][] = [
    [[1, 3, 2, 8], "bthd", 0, 10000, 1, 1e-6],
    [[2, 1, 3, 2], "bthd", 5, 10000, 1, 1e-6], // D = 2, T = 1
    [[1, 5, 1, 32], "bthd", 7, 1e6, 1, 1e-6], // 5 rows
    [[3, 1, 1, 64], "bthd", 11, 10000, 1, 1e-6], // T = 1 at an offset
    [[1, 3, 1, 128], "bthd", 2, 10000, 1, 1e-6],
    [[1, 3, 1, 6], "bthd", 1, 100, 1, 1e-6], // 3 pairs in 4 lanes
    [[1, 2, 3, 8], "bhtd", 4, 10000, 1, 1e-6],
    [[1, 3, 1, 16], "bthd", 3, 10000, 1e3, 1e-6], // large
    [[1, 3, 1, 16], "bthd", 3, 10000, 1e-3, 1e-6], // tiny: eps is a third of mean(x²)
  ];
  for (const [shape, layout, offset, base, scale, eps] of cases) {
    const D = shape[shape.length - 1];
    const x = randArr(rng, shape, scale, 0.1 * scale);
    const w = randArr(rng, [D], 0.5, 1);
    await checkOp({
      name: `rmsNormRope ${JSON.stringify(shape)} ${layout} offset ${offset} scale ${scale}`,
      inputs: [x, w],
      gpu: ([a, g]) => ops.rmsNormRope(a, g, { eps, offset, base, layout }),
      ref: ([a, g]) => rmsNormRopeRef(a, g, eps, layout, offset, base),
      // x is scale-free up to eps, so dx grows as 1/scale
      bwd: [1e-4 / Math.min(1, scale), 1e-3],
      gpuH: 1e-2 * scale,
    });
  }
});

// y, dx, dw of `f(x, w)` for the upstream gradient gy, w a leaf or `w0 · 2 − w0` (computed).
async function run(
  f: (x: Tensor, w: Tensor) => Tensor,
  x: Arr,
  w: Arr,
  gy: Arr,
  leafW: boolean,
): Promise<ArrayLike<number>[]> {
  const xt = up(x, true), wt = up(w, true);
  const y = tidy(() => {
    const wUsed = leafW ? wt : ops.sub(ops.mul(wt, 2), wt);
    const out = f(xt, wUsed);
    out.backward(up(gy));
    return out;
  });
  const got = await readAll([y, xt.grad!, wt.grad!]);
  assertNoGpuErrors();
  for (const t of [y, xt, wt]) t.dispose();
  return got;
}

Deno.test("rmsNormRope matches the composed rope(rmsNorm(x, w)) on the GPU, w a leaf or computed", async () => {
  await setup();
  // [shape, layout, offset]: 8-lane rows; 64-lane rows in blocks of two row groups with a partial
  // last block (1,203 rows); 256-lane rows with 4, 2 and 1 pairs per lane (D = 2048, 1024, 512);
  // 48 pairs in 64 lanes; rows past the fused kernel (D = 2052: the composed fallback)
  const cases: [number[], Layout, number][] = [
    [[2, 37, 3, 16], "bthd", 0],
    [[3, 401, 1, 128], "bthd", 9],
    [[2, 3, 2, 2048], "bthd", 1],
    [[1, 2, 3, 1024], "bhtd", 0],
    [[1, 5, 1, 512], "bthd", 3],
    [[3, 5, 7, 96], "bhtd", 2],
    [[2, 3, 1, 2052], "bthd", 0],
  ];
  const eps = 1e-5;
  for (const [shape, layout, offset] of cases) {
    for (const leafW of [true, false]) {
      const D = shape[shape.length - 1];
      const x = randArr(rng, shape, 2, 0.3);
      x.data.fill(0, D, 2 * D); // a zero row: y = 0, finite dx
      const w = randArr(rng, [D], 0.5, 1);
      const gy = randArr(rng, shape);
      const opts = { eps, offset, base: 10000, layout };
      const fused = await run((a, g) => ops.rmsNormRope(a, g, opts), x, w, gy, leafW);
      const composed = await run(
        (a, g) => ops.rope(ops.rmsNorm(a, g, eps), opts),
        x,
        w,
        gy,
        leafW,
      );
      const name = `${JSON.stringify(shape)} ${layout} w ${leafW ? "leaf" : "computed"}`;
      assertClose(`${name} y`, fused[0], composed[0], 1e-6, 1e-5);
      assertClose(`${name} dx`, fused[1], composed[1], 1e-5, 1e-4);
      assertClose(`${name} dw`, fused[2], composed[2], 1e-4, 1e-4);
      // and the forward against float64 (the composed ops could share a mistake); an f32 angle
      // of position t is off by up to t·2⁻²⁴ rad (1e-5 at t = 400), in fused and composed alike
      const want = rmsNormRopeRef(x, w, eps, layout, offset, 10000);
      const tMax = offset + shape[layout === "bthd" ? shape.length - 3 : shape.length - 2];
      assertClose(`${name} y vs float64`, fused[0], want.data, 1e-5 + 5e-7 * tMax, 1e-4);
    }
  }
});

Deno.test("rmsNormRope backward: many rows per block (D = 8 in 4 lanes, 16,501 rows)", async () => {
  await setup();
  // 64 rows per workgroup step, 256 blocks of two steps, the last block partial
  const shape = [1, 16501, 1, 8];
  const x = randArr(rng, shape, 1, 0.2);
  const w = randArr(rng, [8], 0.5, 1);
  const gy = randArr(rng, shape);
  const opts = { eps: 1e-6, offset: 0, base: 10000 };
  const fused = await run((a, g) => ops.rmsNormRope(a, g, opts), x, w, gy, true);
  const composed = await run((a, g) => ops.rope(ops.rmsNorm(a, g, 1e-6), opts), x, w, gy, true);
  assertClose("y", fused[0], composed[0], 1e-6, 1e-5);
  assertClose("dx", fused[1], composed[1], 1e-5, 1e-4);
  // dw sums 16,501 rows in two different orders
  assertClose("dw", fused[2], composed[2], 1e-3, 1e-4);
});

Deno.test("rmsNormRope: one dispatch forward, one backward and the fold of dw into .grad", async () => {
  await setup();
  const shape = [2, 5, 4, 32];
  const x = up(randArr(rng, shape), true), w = up(randArr(rng, [32], 0.5, 1), true);
  const gy = up(randArr(rng, shape));
  const count = (f: () => Tensor) => {
    const before = runtime().counters.dispatches;
    tidy(() => f().backward(gy));
    return runtime().counters.dispatches - before;
  };
  const fwdOnly = (f: () => Tensor) => {
    const before = runtime().counters.dispatches;
    tidy(() => {
      f();
    });
    return runtime().counters.dispatches - before;
  };
  const fused = () => ops.rmsNormRope(x, w, { offset: 2 });
  const composed = () => ops.rope(ops.rmsNorm(x, w), { offset: 2 });
  count(fused); // creates x.grad and w.grad (a fill each), so the counts below are a step's
  assert.equal(fwdOnly(fused), 1);
  // forward, backward, the fold of dw's partials into w.grad, the add of dx into x.grad
  assert.equal(count(fused), 4);
  assert.ok(count(composed) >= count(fused) + 2, "the composed ops take at least two more");
  await readAll([x.grad!]);
  assertNoGpuErrors();
  for (const t of [x, w, gy]) t.dispose();
});

Deno.test("rmsNormRope: bad shapes and options are errors naming the op and the shapes", async () => {
  await setup();
  const x = tensor(new Float32Array(2 * 3 * 8), [2, 3, 8]);
  const w = tensor(new Float32Array(4), [4]);
  const w8 = tensor(new Float32Array(8), [8]);
  assert.throws(
    () => ops.rmsNormRope(x, w),
    /rmsNormRope: x \[2, ?3, ?8\] needs weight of shape \[8\], got \[4\]/,
  );
  assert.throws(() => ops.rmsNormRope(tensor([1, 2], [1, 2]), w), /rmsNormRope: needs x of/);
  const odd = tensor(new Float32Array(2 * 3 * 5), [2, 3, 5]);
  const w5 = tensor(new Float32Array(5), [5]);
  assert.throws(() => ops.rmsNormRope(odd, w5), /rmsNormRope: head size 5 .* must be even/);
  assert.throws(() => ops.rmsNormRope(x, w8, { eps: -1 }), /rmsNormRope: eps -1 must be finite/);
  assert.throws(
    () => ops.rmsNormRope(x, w8, { offset: 1.5 }),
    /rmsNormRope: offset 1.5 must be a non-negative integer/,
  );
  assert.throws(() => ops.rmsNormRope(x, w8, { base: NaN }), /rmsNormRope: base NaN must be/);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => ops.rmsNormRope(x, w8, { layout: "bhdt" as any }),
    /rmsNormRope: layout "bhdt"/,
  );
  const xi = tensor(new Int32Array(2 * 3 * 8), [2, 3, 8], "i32");
  assert.throws(() => ops.rmsNormRope(xi, w8), /rmsNormRope/);
  for (const t of [x, w, w8, odd, w5, xi]) t.dispose();
});

Deno.test("rmsNormRope of a strided view (a permuted [B, H, T, D]) matches the composed ops", async () => {
  await setup();
  const [B, H, T, D] = [2, 3, 5, 16];
  const x = randArr(rng, [B, H, T, D]), w = randArr(rng, [D], 0.5, 1);
  const gy = randArr(rng, [B, T, H, D]);
  const grads = async (f: (v: Tensor, g: Tensor) => Tensor) => {
    const xt = up(x, true), wt = up(w, true);
    const y = tidy(() => {
      const out = f(ops.permute(xt, [0, 2, 1, 3]), wt);
      out.backward(up(gy));
      return out;
    });
    const got = await readAll([y, xt.grad!, wt.grad!]);
    for (const t of [y, xt, wt]) t.dispose();
    return got;
  };
  const opts = { eps: 1e-6, offset: 4, base: 500 };
  const fused = await grads((v, g) => ops.rmsNormRope(v, g, opts));
  const composed = await grads((v, g) => ops.rope(ops.rmsNorm(v, g, 1e-6), opts));
  assertNoGpuErrors();
  ["y", "dx", "dw"].forEach((what, i) => {
    assertClose(`permuted view ${what}`, fused[i], composed[i], 1e-5, 1e-4);
  });
});
