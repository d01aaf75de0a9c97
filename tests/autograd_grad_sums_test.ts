// Deferred gradient sums (src/autograd/grad_sums.ts, kernels/grad_sums.wgsl): weights' partial
// gradient rows written during a backward pass and column-summed into their `.grad` by one
// dispatch at its end. The segmented sum is checked against float64 on segments of many shapes
// (both entry points, more segments than one table holds, destinations in one arena and in
// buffers of their own); a backward with norms and a split-K weight gradient against the same
// backward with deferral off (same gradients, fewer dispatches), and against float64.
import assert from "node:assert/strict";
import { arr, rmsNormRef } from "../src/autograd/reference.ts";
import {
  AdamW,
  beginGradSums,
  deferredPartials,
  endGradSums,
  gradSumsStats,
  ops,
  setDeferredGradSums,
} from "../src/autograd/mod.ts";
import { copyInto, packTensors, readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, randArr, setup, up, upPacked } from "./autograd_util.ts";

const rt = await setup();
const rng = new Rng(91);

interface Case {
  blocks: number;
  cols: number;
}

// Fills each destination's deferred partials with random rows inside one pass and returns what
// every destination must hold afterwards (start + column sums, float64).
function deferInto(dsts: Tensor[], start: Float32Array[], cases: Case[]): Float64Array[] {
  const want: Float64Array[] = [];
  tidy(() => {
    beginGradSums();
    try {
      cases.forEach((c, i) => {
        const parts = deferredPartials(dsts[i], c.blocks, c.cols);
        assert.ok(parts, `no partials for segment ${i}`);
        const rows = Float32Array.from(
          { length: c.blocks * c.cols },
          () => Math.fround(rng.normal()),
        );
        copyInto(tensor(rows, [c.blocks, c.cols]), parts);
        const w = Float64Array.from(start[i]);
        for (let b = 0; b < c.blocks; b++) {
          for (let j = 0; j < c.cols; j++) w[j] += rows[b * c.cols + j];
        }
        want.push(w);
      });
    } finally {
      endGradSums(true);
    }
  });
  return want;
}

function startValues(cases: Case[]): Float32Array[] {
  return cases.map((c) => Float32Array.from({ length: c.cols }, () => Math.fround(rng.normal())));
}

Deno.test("deferred sums: segments in one arena and in buffers of their own, against float64", async () => {
  // odd widths (scalar entry point), widths over one strip, one block, more blocks than the
  // unrolled loop takes at once
  const cases: Case[] = [
    { blocks: 1, cols: 64 },
    { blocks: 3, cols: 10 },
    { blocks: 257, cols: 130 },
    { blocks: 70, cols: 1 },
    { blocks: 5, cols: 200 },
  ];
  const start = startValues(cases);
  const packed = packTensors(start.map((s, i) => tensor(s, [cases[i].cols])));
  const want = deferInto(packed, start, cases);
  const got = await readAll(packed);
  assertNoGpuErrors();
  got.forEach((g, i) => assertClose(`arena segment ${i}`, g, want[i], 1e-5, 1e-5));
  // destinations with buffers of their own: aligned ones take the vec4 entry point
  const own: Case[] = [{ blocks: 33, cols: 68 }, { blocks: 2, cols: 7 }, { blocks: 16, cols: 256 }];
  const s2 = startValues(own);
  const dsts = s2.map((s, i) => tensor(s, [own[i].cols]));
  const want2 = deferInto(dsts, s2, own);
  const got2 = await readAll(dsts);
  got2.forEach((g, i) => assertClose(`own buffer ${i}`, g, want2[i], 1e-5, 1e-5));
  [...packed, ...dsts].forEach((t) => t.dispose());
});

Deno.test("deferred sums: more segments than one dispatch's table", async () => {
  const cases: Case[] = Array.from({ length: 300 }, (_, i) => ({ blocks: 1 + (i % 4), cols: 4 }));
  const start = startValues(cases);
  const packed = packTensors(start.map((s) => tensor(s, [4])));
  const before = rt.counters.dispatches;
  const want = deferInto(packed, start, cases);
  const got = await readAll(packed);
  assertNoGpuErrors();
  got.forEach((g, i) => assertClose(`segment ${i}`, g, want[i], 1e-5, 1e-5));
  assert.ok(rt.counters.dispatches > before, "nothing was dispatched");
  packed.forEach((t) => t.dispose());
});

Deno.test("deferred sums: none outside a pass or when off; a failed pass adds nothing", async () => {
  const dst = tensor(new Float32Array([1, 2, 3, 4]), [4]);
  assert.equal(deferredPartials(dst, 2, 4), null);
  setDeferredGradSums(false);
  try {
    beginGradSums();
    assert.equal(deferredPartials(dst, 2, 4), null);
    endGradSums(true);
  } finally {
    setDeferredGradSums(true);
  }
  tidy(() => {
    beginGradSums();
    const parts = deferredPartials(dst, 1, 4)!;
    copyInto(tensor(new Float32Array([10, 10, 10, 10]), [1, 4]), parts);
    endGradSums(false);
  });
  assert.deepEqual([...(await readAll([dst]))[0]], [1, 2, 3, 4]);
  assert.throws(() => endGradSums(true), /no pass was begun/);
  dst.dispose();
});

// A backward with an RMSNorm weight (norm partials) and a weight whose gradient has a long K
// (split-K partials): per-block partial rows of both, deferred or reduced at once.
async function normAndLongK(deferred: boolean, packed: boolean) {
  const R = 2048, C = 16, N = 8, EPS = 1e-6;
  const local = new Rng(5);
  const x = randArr(local, [R, C]), g = randArr(local, [C], 0.4, 1), w = randArr(local, [C, N]);
  const gy = randArr(local, [R, N]);
  const [gt, wt] = packed ? upPacked([g, w]) : [up(g, true), up(w, true)];
  const xt = up(x), gyt = up(gy);
  // the optimizer gives packed parameters their gradients in one arena too
  const opt = packed ? new AdamW([gt, wt], { lr: 1e-3 }) : null;
  setDeferredGradSums(deferred);
  const before = rt.counters.dispatches;
  try {
    tidy(() => ops.matmul(ops.rmsNorm(xt, gt, EPS), wt).backward(gyt));
  } finally {
    setDeferredGradSums(true);
  }
  const dispatches = rt.counters.dispatches - before;
  const [dg, dw] = await readAll([gt.grad!, wt.grad!]);
  assertNoGpuErrors();
  opt?.dispose();
  [gt, wt, xt, gyt].forEach((t) => t.dispose());
  return { dg, dw, dispatches, x, g, w, gy, R, C, N, EPS };
}

Deno.test("deferred sums: a backward's norm and split-K weight gradients, fewer dispatches", async () => {
  for (const packed of [true, false]) {
    const on = await normAndLongK(true, packed);
    const off = await normAndLongK(false, packed);
    assertClose(`dg on/off packed=${packed}`, on.dg, off.dg, 1e-5, 1e-5);
    assertClose(`dw on/off packed=${packed}`, on.dw, off.dw, 1e-5, 1e-5);
    // float64: dw = hᵀ·gy with h = rmsNorm(x)·g, dg = Σ_rows (gy·wᵀ) ∘ x̂
    const { x, g, w, gy, R, C, N, EPS } = on;
    const h = rmsNormRef(x, g, EPS).data;
    const ones = rmsNormRef(x, arr(new Array(C).fill(1), [C]), EPS).data;
    const dw = new Float64Array(C * N), dg = new Float64Array(C);
    for (let r = 0; r < R; r++) {
      for (let c = 0; c < C; c++) {
        let dh = 0;
        for (let n = 0; n < N; n++) {
          dw[c * N + n] += h[r * C + c] * gy.data[r * N + n];
          dh += gy.data[r * N + n] * w.data[c * N + n];
        }
        dg[c] += dh * ones[r * C + c];
      }
    }
    assertClose("dw vs float64", on.dw, dw, 1e-4, 1e-4);
    assertClose("dg vs float64", on.dg, dg, 1e-4, 1e-4);
    // the norm's column sum and the split-K reduction become one deferred dispatch (or, with
    // gradients in buffers of their own, one each: no more than before)
    assert.ok(
      packed ? on.dispatches < off.dispatches : on.dispatches <= off.dispatches,
      `deferred ${on.dispatches} vs ${off.dispatches} dispatches`,
    );
    console.log(`packed=${packed}: ${off.dispatches} → ${on.dispatches} dispatches per backward`);
  }
});

Deno.test("deferred sums: an optimizer's packed gradients, steps without new allocations", async () => {
  const local = new Rng(8);
  const [g, w] = upPacked([randArr(local, [32], 0.4, 1), randArr(local, [32, 4])]);
  const x = up(randArr(local, [1500, 32])), gy = up(randArr(local, [1500, 4]));
  const opt = new AdamW([g, w], { lr: 1e-3 });
  const step = () =>
    tidy(() => {
      opt.zeroGrad();
      ops.matmul(ops.rmsNorm(x, g, 1e-6), w).backward(gy);
      opt.step();
    });
  step();
  step();
  await readAll([w]);
  const live = rt.pool.stats().liveBytes;
  for (let i = 0; i < 5; i++) step();
  await readAll([w]);
  assert.equal(rt.pool.stats().liveBytes, live, "memory grew across steps");
  assertNoGpuErrors();
  opt.dispose();
  [g, w, x, gy].forEach((t) => t.dispose());
});

Deno.test("deferred sums: the arena settles into one chunk after the first pass and then stays", async () => {
  // 40 segments of 9,000 floats: past the first chunk (65,536 floats), so the first pass grows
  const cases: Case[] = Array.from({ length: 40 }, () => ({ blocks: 3, cols: 3000 }));
  const sizes: number[] = [];
  for (let pass = 0; pass < 3; pass++) {
    const start = startValues(cases);
    const packed = packTensors(start.map((s) => tensor(s, [3000])));
    const want = deferInto(packed, start, cases);
    const got = await readAll(packed);
    got.forEach((g, i) => assertClose(`pass ${pass} segment ${i}`, g, want[i], 1e-5, 1e-5));
    const st = gradSumsStats();
    if (pass > 0) assert.equal(st.chunks, 1, `pass ${pass}: ${st.chunks} chunks`);
    sizes.push(st.bytes);
    packed.forEach((t) => t.dispose());
  }
  assert.equal(sizes[2], sizes[1], `arena bytes per pass ${sizes.join(", ")}`);
  assertNoGpuErrors();
});
