// Review of the deferred gradient sums, qkvNormRope and fused attention v2 (session 3): each test
// here failed before the fix named in its commit.
import assert from "node:assert/strict";
import {
  AdamW,
  backward,
  beginGradSums,
  deferredPartials,
  endGradSums,
  ops,
  record,
  setDeferredGradSums,
} from "../src/autograd/mod.ts";
import {
  copyInto,
  packTensors,
  readAll,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, randArr, setup, up, upPacked } from "./autograd_util.ts";

await setup();
const rng = new Rng(3);

// Defers `blocks` random rows into `dst` (a destination of `cols` floats) `times` times in one
// pass, as a weight used `times` times in one forward does; returns the float64 sums added.
function deferRepeated(dst: Tensor, blocks: number, cols: number, times: number): Float64Array {
  const want = new Float64Array(cols);
  tidy(() => {
    beginGradSums();
    try {
      for (let i = 0; i < times; i++) {
        const parts = deferredPartials(dst, blocks, cols);
        assert.ok(parts, `no partials for use ${i}`);
        const rows = Float32Array.from(
          { length: blocks * cols },
          () => Math.fround(rng.normal()),
        );
        copyInto(tensor(rows, [blocks, cols]), parts);
        for (let b = 0; b < blocks; b++) {
          for (let j = 0; j < cols; j++) want[j] += rows[b * cols + j];
        }
      }
    } finally {
      endGradSums(true);
    }
  });
  return want;
}

// Segments of one dispatch that add into the same floats raced (each workgroup reads, adds and
// writes its columns of dst): a weight used several times in one forward lost some of its uses.
Deno.test("deferred sums: one weight's partials deferred several times in a pass all arrive", async () => {
  // vec4 entry point (256 columns) and scalar one (odd width); enough trials that a race shows
  for (const cols of [256, 13]) {
    for (let trial = 0; trial < 24; trial++) {
      const dst = tensor(new Float32Array(cols), [cols]);
      const want = deferRepeated(dst, 16, cols, 64);
      const [got] = await readAll([dst]);
      assertNoGpuErrors();
      assertClose(`cols ${cols} trial ${trial}`, got, want, 1e-3, 1e-4);
      dst.dispose();
    }
  }
});

// A segment whose destination window covers another's (qkvNormRope's span over qNorm's and
// kNorm's gradients, with a third gradient packed in the gap it zero-fills) raced the same way.
Deno.test("deferred sums: a segment spanning another segment's destination", async () => {
  for (let trial = 0; trial < 24; trial++) {
    const [a, b, c] = packTensors([64, 64, 64].map((n) => tensor(new Float32Array(n), [n])));
    const span = a.viewAs([c.offset - a.offset + 64], [1], a.offset, "span");
    const W = span.size;
    const wantB = new Float64Array(64), wantSpan = new Float64Array(W);
    tidy(() => {
      beginGradSums();
      try {
        for (let i = 0; i < 64; i++) {
          // b's own partials, and a span that adds zeros over b's columns
          const pb = deferredPartials(b, 16, 64)!;
          const rb = Float32Array.from({ length: 16 * 64 }, () => Math.fround(rng.normal()));
          copyInto(tensor(rb, [16, 64]), pb);
          for (let r = 0; r < 16; r++) for (let j = 0; j < 64; j++) wantB[j] += rb[r * 64 + j];
          const ps = deferredPartials(span, 16, W)!;
          const rs = new Float32Array(16 * W);
          for (let r = 0; r < 16; r++) {
            for (let j = 0; j < W; j++) {
              const inB = j >= b.offset - a.offset && j < b.offset - a.offset + 64;
              rs[r * W + j] = inB ? 0 : Math.fround(rng.normal());
              wantSpan[j] += rs[r * W + j];
            }
          }
          copyInto(tensor(rs, [16, W]), ps);
        }
      } finally {
        endGradSums(true);
      }
    });
    const [ga, gb, gc] = await readAll([a, b, c]);
    assertNoGpuErrors();
    assertClose(`b trial ${trial}`, gb, wantB, 1e-3, 1e-4);
    assertClose(`a trial ${trial}`, ga, wantSpan.slice(0, 64), 1e-3, 1e-4);
    assertClose(`c trial ${trial}`, gc, wantSpan.slice(c.offset - a.offset), 1e-3, 1e-4);
    span.dispose();
    [a, b, c].forEach((t) => t.dispose());
  }
});

// A backward run inside another's closure (an op whose gradient needs a sub-model's gradients)
// joined the outer pass, so the deferred part of the inner weights' gradients (here an RMSNorm
// weight's column sums) was added only when the outer pass ended: the closure read a `.grad`
// without it.
async function nestedBackward(deferred: boolean): Promise<ArrayLike<number>[]> {
  const local = new Rng(12);
  const R = 300, C = 16;
  const x = up(randArr(local, [C]), true);
  const w = up(randArr(local, [C], 0.4, 1), true);
  const z = up(randArr(local, [R, C]));
  const gz = up(randArr(local, [R, C]));
  setDeferredGradSums(deferred);
  try {
    tidy(() => {
      // y = x, whose backward multiplies the gradient by w's gradient of an inner loss (its
      // forward recorded now: closures run without recording)
      const inner = ops.rmsNorm(z, w, 1e-6);
      const y = record(x.viewAs(x.shape, x.strides, x.offset, "custom"), "custom", [x], (g) => {
        backward(inner, gz);
        return [ops.mul(g, w.grad!)];
      });
      ops.sum(ops.mul(y, y)).backward();
    });
  } finally {
    setDeferredGradSums(true);
  }
  const got = await readAll([x.grad!, w.grad!]);
  assertNoGpuErrors();
  [x, w, z, gz].forEach((t) => t.dispose());
  return got;
}

Deno.test("deferred sums: a backward nested in a backward closure leaves complete gradients", async () => {
  const off = await nestedBackward(false);
  const on = await nestedBackward(true);
  assert.ok(
    Array.from(off[1]).some((v) => Math.abs(v) > 1e-3),
    "the inner weight gradient is all zero",
  );
  assertClose("inner weight's gradient", on[1], off[1], 1e-5, 1e-5);
  assertClose("outer gradient (read the inner .grad)", on[0], off[0], 1e-5, 1e-5);
});

// A norm over no rows: its backward's one block returned before writing its partial row, which
// the deferred sums then added to the weight's gradient from whatever a previous pass had left in
// the arena (an uninitialised buffer before deferral, zero only when the pool happened to give a
// fresh one). The gradient of a weight that saw no rows is zero.
Deno.test("norms over zero rows give their weights a zero gradient", async () => {
  for (const C of [64, 10]) { // the fused kernels (C % 4 = 0) and the scalar ones
    const local = new Rng(31);
    const [w, bias] = upPacked([randArr(local, [C], 0.4, 1), randArr(local, [C])]);
    const opt = new AdamW([w, bias], { lr: 0 });
    const x = up(randArr(local, [500, C]));
    // a pass that leaves partials in the arena
    tidy(() => ops.sum(ops.layerNorm(x, w, bias)).backward());
    opt.zeroGrad();
    tidy(() => {
      const empty = zeros([0, C]);
      const outs = [ops.rmsNorm(empty, w, 1e-6), ops.layerNorm(empty, w, bias)];
      // Σ over no elements, plus a term so that the loss needs a gradient
      const loss = outs.map((o) => ops.sum(o)).reduce((a, b) => ops.add(a, b));
      ops.add(loss, ops.sum(ops.mul(w, 0))).backward();
    });
    const [gw, gb] = await readAll([w.grad!, bias.grad!]);
    assertNoGpuErrors();
    assert.deepEqual(Array.from(gw), new Array(C).fill(0), `C ${C} weight`);
    assert.deepEqual(Array.from(gb), new Array(C).fill(0), `C ${C} bias`);
    opt.dispose();
    [w, bias, x].forEach((t) => t.dispose());
  }
});
