// Gradient sinks (tape.ts `gradSink`): a matmul whose right operand is a weight (a leaf, or the
// transpose view `w.transpose()` of one) adds that weight's gradient straight into `.grad` in the
// kernel. Checked against float64 references, across repeated backward calls and shared weights,
// for separate and arena-packed parameters, and with the dispatches counted: no accumulate
// dispatch is left for a sunk weight, and views that are not plain transposes still take the tape.
import assert from "node:assert/strict";
import { type Arr, arr, matmulRef, transposeRef } from "../src/autograd/reference.ts";
import { gradSink, noGrad, ops } from "../src/autograd/mod.ts";
import { ComputeBatch, startProfiling } from "../src/gpu/mod.ts";
import { readAll, type Tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, randArr, setup, up, upPacked } from "./autograd_util.ts";

const rt = await setup();
const rng = new Rng(41);

function add(a: Arr, b: Arr): Arr {
  return arr(a.data.map((v, i) => v + b.data[i]), a.shape);
}
function scale(a: Arr, s: number): Arr {
  return arr(a.data.map((v) => v * s), a.shape);
}

// Runs `fn` (which records a backward) and returns the kernels it dispatched, by name.
async function kernelsOf(fn: () => void): Promise<string[]> {
  rt.flush();
  const batch = new ComputeBatch(rt.gpu);
  rt.recordInto(batch, fn);
  if (!rt.gpu.hasTimestamps) {
    batch.submit();
    return [];
  }
  const profiler = startProfiling(rt.gpu);
  batch.submit();
  return (await profiler.finish()).map((t) => `${t.kernel}:${t.entryPoint}`);
}

for (const packed of [false, true]) {
  const kind = packed ? "arena-packed" : "separate";

  Deno.test(`gradSink (${kind}): x·w and x·wᵀ give the reference gradients with no accumulate dispatch`, async () => {
    const M = 5, K = 7, N = 3;
    const x = randArr(rng, [M, K]);
    const w = randArr(rng, [K, N]); // used as x·w
    const v = randArr(rng, [N, K]); // stored [out, in], used as x·vᵀ
    const R = randArr(rng, [M, N]);
    const [wt, vt] = packed ? upPacked([w, v]) : [up(w, true), up(v, true)];
    const xt = up(x); // data: needs no gradient, so no dx either
    const Rt = up(R);
    const kernels = await kernelsOf(() =>
      tidy(() => {
        ops.matmul(xt, wt).backward(Rt);
        ops.matmul(xt, vt.transpose()).backward(Rt);
      })
    );
    const [gw, gv] = await readAll([wt.grad!, vt.grad!]);
    assertNoGpuErrors();
    assertClose("dw = xᵀR", gw, matmulRef(transposeRef(x), R).data);
    assertClose("dv = Rᵀx", gv, matmulRef(transposeRef(R), x).data);
    if (rt.gpu.hasTimestamps) {
      assert.deepEqual(kernels.filter((k) => k.endsWith(":accumulate")), []);
      // two forward products and one gradient product each: no dx for data
      assert.equal(kernels.filter((k) => k.startsWith("matmul")).length, 4, kernels.join(" "));
    }
    for (const t of [wt, vt, xt, Rt]) t.dispose();
  });

  Deno.test(`gradSink (${kind}): a weight used twice, and backward run twice, sums every contribution`, async () => {
    const M = 4, K = 6, N = 5;
    const x1 = randArr(rng, [M, K]), x2 = randArr(rng, [M, K]);
    const w = randArr(rng, [N, K]);
    const R = randArr(rng, [M, N]);
    const [wt] = packed ? upPacked([w]) : [up(w, true)];
    const x1t = up(x1, true), x2t = up(x2), Rt = up(R);
    for (let i = 0; i < 2; i++) {
      tidy(() =>
        ops.add(ops.matmul(x1t, wt.transpose()), ops.matmul(x2t, wt.transpose())).backward(Rt)
      );
    }
    const [gw, gx1] = await readAll([wt.grad!, x1t.grad!]);
    assertNoGpuErrors();
    const once = add(matmulRef(transposeRef(R), x1), matmulRef(transposeRef(R), x2));
    assertClose("dw, two uses, two backward calls", gw, scale(once, 2).data);
    assertClose("dx1 (through the tape)", gx1, scale(matmulRef(R, w), 2).data);
    for (const t of [wt, x1t, x2t, Rt]) t.dispose();
  });
}

Deno.test("gradSink: views that are not a plain transpose of a leaf take the tape, and are right", async () => {
  const M = 3, K = 4;
  const x = randArr(rng, [M, K]);
  const w = randArr(rng, [K, 6]);
  const R = randArr(rng, [M, 2]);
  const wt = up(w, true), xt = up(x), Rt = up(R);
  // columns 2..4 of w: a strided view whose gradient the slice's backward scatters
  const b = wt.slice(1, 2, 4);
  assert.equal(noGrad(() => gradSink(b)), null);
  tidy(() => ops.matmul(xt, b).backward(Rt));
  const [gw] = await readAll([wt.grad!]);
  assertNoGpuErrors();
  const dSlice = matmulRef(transposeRef(x), R); // [K, 2]
  const want = new Float64Array(K * 6);
  for (let k = 0; k < K; k++) {
    for (let j = 0; j < 2; j++) want[k * 6 + 2 + j] = dSlice.data[k * 2 + j];
  }
  assertClose("dw through a slice", gw, want);
  b.dispose();
  for (const t of [wt, xt, Rt]) t.dispose();
});

Deno.test("gradSink: leaves and their transposes qualify; outputs of ops and data do not", () => {
  const w = up(randArr(rng, [3, 5]), true);
  const d = up(randArr(rng, [3, 5]));
  const checks = tidy(() => {
    const sinkW = gradSink(w);
    const sinkT = gradSink(w.transpose());
    const out: (ReturnType<typeof gradSink>)[] = [
      gradSink(d),
      gradSink(ops.mul(w, 2)),
      gradSink(ops.transpose(ops.mul(w, 2))),
    ];
    return { sinkW, sinkT, out };
  });
  assert.equal(checks.sinkW?.transposed, false);
  assert.equal(checks.sinkW?.grad, w.grad);
  assert.equal(checks.sinkT?.transposed, true);
  assert.equal(checks.sinkT?.grad, w.grad);
  assert.deepEqual(checks.out, [null, null, null]);
  for (const t of [w, d] as Tensor[]) t.dispose();
});

Deno.test("gradSink: rmsNorm folds its weight's gradient partials into .grad (twice: sums)", async () => {
  for (const [rows, C] of [[3, 8], [40, 12], [5, 7]]) {
    const x = randArr(rng, [rows, C]);
    const w = randArr(rng, [C], 0.5, 1);
    const R = randArr(rng, [rows, C]);
    const [wt] = upPacked([w]);
    const wTape = up(w, true); // reached through an op: the tape's path, the yardstick
    const xt = up(x), Rt = up(R);
    const kernels = await kernelsOf(() => tidy(() => ops.rmsNorm(xt, wt).backward(Rt)));
    tidy(() => ops.rmsNorm(xt, wt).backward(Rt));
    for (let i = 0; i < 2; i++) tidy(() => ops.rmsNorm(xt, ops.mul(wTape, 1)).backward(Rt));
    const [sunk, taped] = await readAll([wt.grad!, wTape.grad!]);
    assertNoGpuErrors();
    assertClose(`rmsNorm dw [${rows}, ${C}]`, sunk, taped, 1e-6, 1e-5);
    assert.ok(sunk.some((v) => v !== 0));
    if (rt.gpu.hasTimestamps) {
      assert.deepEqual(kernels.filter((k) => k.endsWith(":accumulate")), [], kernels.join(" "));
    }
    for (const t of [wt, wTape, xt, Rt]) t.dispose();
  }
});
