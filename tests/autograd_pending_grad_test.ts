// Pending gradients (tape.ts `takePendingGrad`): an RMSNorm on a residual stream adds the stream's
// gradient from its other consumer into its own dx kernel, so the tape's add dispatch disappears.
// Checked against float64, with the kernels of the backward listed (no binary add is left), for a
// stream whose other gradient is contiguous (taken) and strided (left to the tape), and the API's
// null cases.
import assert from "node:assert/strict";
import { type Arr, arr, rmsNormRef } from "../src/autograd/reference.ts";
import { ops, record, takePendingGrad } from "../src/autograd/mod.ts";
import { ComputeBatch, startProfiling } from "../src/gpu/mod.ts";
import { readAll, type Tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, randArr, setup, up } from "./autograd_util.ts";

const rt = await setup();
const rng = new Rng(43);
const EPS = 1e-6;

// Runs `fn` (which records a backward) and returns the kernels it dispatched, by name.
async function kernelsOf(fn: () => void): Promise<string[] | null> {
  rt.flush();
  const batch = new ComputeBatch(rt.gpu);
  rt.recordInto(batch, fn);
  if (!rt.gpu.hasTimestamps) {
    batch.submit();
    return null;
  }
  const profiler = startProfiling(rt.gpu);
  batch.submit();
  return (await profiler.finish()).map((t) => `${t.kernel}:${t.entryPoint}`);
}

// d/dx of Σ gy·(1.5x + 2·rmsNorm(1.5x)·w), and d/dw, in float64.
function residualGradRef(x: Arr, w: Arr, gy: Arr): [Float64Array, Float64Array] {
  const C = w.data.length, R = x.data.length / C;
  const dx = new Float64Array(x.data.length), dw = new Float64Array(C);
  for (let r = 0; r < R; r++) {
    const s = Array.from({ length: C }, (_, i) => 1.5 * x.data[r * C + i]);
    const rs = 1 / Math.sqrt(s.reduce((a, v) => a + v * v, 0) / C + EPS);
    let b = 0;
    for (let i = 0; i < C; i++) b += (2 * gy.data[r * C + i] * w.data[i] * s[i] * rs) / C;
    for (let i = 0; i < C; i++) {
      const g = 2 * gy.data[r * C + i];
      dw[i] += g * s[i] * rs;
      const ds = gy.data[r * C + i] + rs * (g * w.data[i] - s[i] * rs * b);
      dx[r * C + i] = 1.5 * ds;
    }
  }
  return [dx, dw];
}

for (const [R, C] of [[5, 64], [1, 8], [9, 36]]) {
  Deno.test(`rmsNorm adds the residual stream's pending gradient in its kernel [${R}, ${C}]`, async () => {
    const x = randArr(rng, [R, C]), w = randArr(rng, [C], 0.4, 1), gy = randArr(rng, [R, C]);
    const [xt, wt, gt] = [up(x, true), up(w, true), up(gy)];
    let out: Tensor | undefined;
    const kernels = await kernelsOf(() => {
      out = tidy(() => {
        const s = ops.mul(xt, 1.5);
        const o = ops.add(s, ops.mul(ops.rmsNorm(s, wt, EPS), 2));
        o.backward(gt);
        return o;
      });
    });
    const [got, dx, dw] = await readAll([out!, xt.grad!, wt.grad!]);
    assertNoGpuErrors();
    const s = arr(x.data.map((v) => 1.5 * v), [R, C]);
    const n = rmsNormRef(s, w, EPS);
    assertClose("forward", got, s.data.map((v, i) => v + 2 * n.data[i]), 1e-5, 1e-5);
    const [wantDx, wantDw] = residualGradRef(x, w, gy);
    assertClose(`dx [${R}, ${C}]`, dx, wantDx, 2e-4, 2e-4);
    assertClose(`dw [${R}, ${C}]`, dw, wantDw, 2e-4, 2e-4);
    if (kernels) {
      assert.ok(kernels.includes("ops_norm:rms_bwd_dw4"), kernels.join(", "));
      // one binary add: the forward's; the tape's sum of the stream's two gradients would be a
      // second (the leaf's `.grad` takes ops_binary:accumulate)
      assert.equal(
        kernels.filter((k) => k === "ops_binary:vec4_main").length,
        1,
        `the tape added the stream's gradients itself: ${kernels.join(", ")}`,
      );
    }
    for (const t of [xt, wt, gt, out!]) t.dispose();
  });
}

Deno.test("a strided pending gradient is left to the tape, with the same result", async () => {
  // s's other consumer is a broadcast sum, whose gradient is an expand view (not contiguous).
  const [R, C] = [4, 16];
  const x = randArr(rng, [R, C]), w = randArr(rng, [C], 0.4, 1);
  const [xt, wt] = [up(x, true), up(w, true)];
  const loss = tidy(() => {
    const s = ops.mul(xt, 1.5);
    const l = ops.add(ops.sum(s), ops.sum(ops.mul(ops.rmsNorm(s, wt, EPS), 2)));
    l.backward();
    return l;
  });
  const [dx] = await readAll([xt.grad!]);
  const [wantDx] = residualGradRef(x, w, arr(new Array(R * C).fill(1), [R, C]));
  assertClose("dx", dx, wantDx, 2e-4, 2e-4);
  assertNoGpuErrors();
  for (const t of [xt, wt, loss]) t.dispose();
});

Deno.test("takePendingGrad is null outside a backward and for tensors that are not inputs", async () => {
  const a = up(randArr(rng, [2, 4]), true), other = up(randArr(rng, [2, 4]), true);
  assert.equal(takePendingGrad(a), null);
  const seen: (Tensor | null)[] = [];
  const out = tidy(() => {
    const a2 = ops.mul(a, 3);
    // a custom op reading a2: its backward asks for a pending gradient of a non-input and of a2
    const custom = record(ops.mul(a2, 1), "probe", [a2], (g) => {
      seen.push(takePendingGrad(other));
      const p = takePendingGrad(a2);
      seen.push(p);
      return [p ? ops.add(g, p) : g];
    });
    const o = ops.add(ops.add(custom, a2), 0); // a2 has a second consumer, processed first
    o.backward(up(arr(new Array(8).fill(1), [2, 4])));
    return o;
  });
  assert.equal(seen[0], null);
  assert.ok(seen[1] !== null, "the second consumer's gradient was pending");
  const [g] = await readAll([a.grad!]);
  assert.deepEqual([...g], new Array(8).fill(6)); // (1 + 1)·3 whatever path added the two
  for (const t of [a, other, out]) t.dispose();
});
