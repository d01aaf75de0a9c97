// addRmsNorm: the residual add fused with RMSNorm (kernels/ops_norm.wgsl add_rms_fwd4), against
// the float64 reference of `s = x + r; y = rmsNorm(s)` and against the two composed GPU ops, on
// every path: one register tile (C ≤ 4096), rows walked in tiles (C > 4096) and the composed
// fallback (C % 4 != 0). The backward is the composed ops' (the sum's gradient reaches x and r
// unchanged, plus the norm's dx), so it is checked through a loss that uses both outputs, as a
// transformer's residual stream does.
import assert from "node:assert/strict";
import { ops } from "../src/autograd/mod.ts";
import { type Arr, rmsNormRef } from "../src/autograd/reference.ts";
import { readAll, runtime, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, randArr, setup, up, upPacked } from "./autograd_util.ts";

const rng = new Rng(11);
const EPS = 1e-6;

// ds = gs + dRMS(s)·gy for y = rmsNorm(s)·w, and dw, in float64.
function addRmsGradRef(s: Arr, w: Arr, gs: Arr, gy: Arr): [Float64Array, Float64Array] {
  const C = w.data.length, R = s.data.length / C;
  const ds = Float64Array.from(gs.data), dw = new Float64Array(C);
  for (let row = 0; row < R; row++) {
    let ms = 0;
    for (let i = 0; i < C; i++) ms += s.data[row * C + i] ** 2 / C;
    const rs = 1 / Math.sqrt(ms + EPS);
    let b = 0;
    for (let i = 0; i < C; i++) {
      const xh = s.data[row * C + i] * rs, g = gy.data[row * C + i] * w.data[i];
      b += (g * xh) / C;
      dw[i] += gy.data[row * C + i] * xh;
    }
    for (let i = 0; i < C; i++) {
      const xh = s.data[row * C + i] * rs, g = gy.data[row * C + i] * w.data[i];
      ds[row * C + i] += rs * (g - xh * b);
    }
  }
  return [ds, dw];
}

// The sum as f32 computes it (one rounding), which the kernel must match bit for bit.
function sumArr(x: Arr, r: Arr): Arr {
  return { shape: x.shape, data: x.data.map((v, i) => Math.fround(v + r.data[i])) };
}

async function checkAddRms(R: number, C: number, packed: boolean): Promise<void> {
  const x = randArr(rng, [R, C], 2), r = randArr(rng, [R, C], 0.5, 0.1);
  if (R > 2) { // a row whose sum is exactly 0: y = 0 with a finite gradient
    for (let i = 0; i < C; i++) r.data[2 * C + i] = -x.data[2 * C + i];
  }
  const w = randArr(rng, [C], 0.5, 1);
  const gs = randArr(rng, [R, C]), gy = randArr(rng, [R, C]);
  const [xt, rt] = [up(x, true), up(r, true)];
  const [wt] = packed ? upPacked([w]) : [up(w, true)];
  const before = runtime().counters.dispatches;
  const outs = tidy(() => {
    const { sum, normed } = ops.addRmsNorm(xt, rt, wt, EPS);
    const fwd = runtime().counters.dispatches - before;
    const loss = ops.add(ops.sum(ops.mul(sum, up(gs))), ops.sum(ops.mul(normed, up(gy))));
    loss.backward();
    return { sum, normed, fwd };
  });
  const name = `addRmsNorm [${R}, ${C}]${packed ? " (packed weight)" : ""}`;
  assert.equal(outs.fwd, C % 4 === 0 ? 1 : 2, `${name}: forward dispatches`);
  const got = await readAll([outs.sum, outs.normed, xt.grad!, rt.grad!, wt.grad!]);
  assertNoGpuErrors();
  const s = sumArr(x, r);
  assertClose(`${name} sum`, got[0], s.data, 1e-30, 0); // one f32 add: bit-exact
  assertClose(`${name} normed`, got[1], rmsNormRef(s, w, EPS).data, 1e-5, 1e-4);
  const [ds, dw] = addRmsGradRef(s, w, gs, gy);
  assertClose(`${name} dx`, got[2], ds, 2e-3, 2e-3);
  assertClose(`${name} dr`, got[3], ds, 2e-3, 2e-3);
  assertClose(`${name} dw`, got[4], dw, 2e-3, 2e-3);
  for (const t of [outs.sum, outs.normed, xt, rt, wt]) t.dispose();
}

Deno.test("addRmsNorm: forward and gradients against float64, on every kernel path", async () => {
  await setup();
  for (const [R, C] of [[1, 4], [5, 8], [33, 128], [7, 1028], [3, 4100], [4, 6], [1, 2]]) {
    await checkAddRms(R, C, false);
  }
  await checkAddRms(9, 256, true); // the weight's gradient sinks into its arena's .grad
});

Deno.test("addRmsNorm equals add then rmsNorm on the GPU, forward and backward", async () => {
  await setup();
  const [R, C] = [17, 64];
  const x = randArr(rng, [R, C]), r = randArr(rng, [R, C]), w = randArr(rng, [C], 0.3, 1);
  const gs = randArr(rng, [R, C]), gy = randArr(rng, [R, C]);
  const run = async (fused: boolean) => {
    const [xt, rt, wt] = [up(x, true), up(r, true), up(w, true)];
    const [s, y] = tidy(() => {
      const { sum, normed } = fused ? ops.addRmsNorm(xt, rt, wt, EPS) : (() => {
        const sum = ops.add(xt, rt);
        return { sum, normed: ops.rmsNorm(sum, wt, EPS) };
      })();
      ops.add(ops.sum(ops.mul(sum, up(gs))), ops.sum(ops.mul(normed, up(gy)))).backward();
      return [sum, normed];
    });
    const got = await readAll([s, y, xt.grad!, rt.grad!, wt.grad!]);
    for (const t of [s, y, xt, rt, wt]) t.dispose();
    return got;
  };
  const fused = await run(true), composed = await run(false);
  ["sum", "normed", "dx", "dr", "dw"].forEach((n, i) => {
    assertClose(`fused vs composed ${n}`, fused[i], composed[i], 1e-6, 1e-5);
  });
  assertNoGpuErrors();
});

Deno.test("addRmsNorm: the sum outlives the normalised rows; bad shapes are clear errors", async () => {
  await setup();
  const x = up(randArr(rng, [3, 8])), r = up(randArr(rng, [3, 8])), w = up(randArr(rng, [8]));
  const { sum, normed } = ops.addRmsNorm(x, r, w);
  normed.dispose(); // releases the op's temporaries, not the residual stream
  const [s] = await readAll([sum]);
  assert.equal(s.length, 24);
  sum.dispose();
  assert.throws(
    () => ops.addRmsNorm(x, up(randArr(rng, [3, 4])), w),
    /addRmsNorm: x \[3,8\] and r \[3,4\] must have the same shape/,
  );
  assert.throws(
    () => ops.addRmsNorm(x, r, up(randArr(rng, [4]))),
    /addRmsNorm: x \[3,8\] needs weight of shape \[8\]/,
  );
  for (const t of [x, r, w]) t.dispose();
});
