// splitLast (src/autograd/split.ts), the split of a joined q/k/v projection: forward against the
// float64 reference (slices), backward against finite differences of it, for vec4 and scalar
// widths, two and three pieces, strided inputs, gradients reaching only some pieces, an input
// with another consumer besides the split, pieces used twice; one dispatch each way; no leak;
// clear errors.
import assert from "node:assert/strict";
import { type Arr, concatRef, mapN, sliceRef } from "../src/autograd/reference.ts";
import { noGrad, ops } from "../src/autograd/mod.ts";
import { splitLast } from "../src/autograd/split.ts";
import { recordedDispatches } from "../src/gpu/mod.ts";
import { readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertNoGpuErrors, checkOp, randArr, setup, up } from "./autograd_util.ts";

const rt = await setup();
const rng = new Rng(11);

function splitRef(x: Arr, widths: number[]): Arr[] {
  const a = x.shape.length - 1;
  let at = 0;
  return widths.map((w) => sliceRef(x, a, at, at += w));
}

// A different function of each piece, so that a piece's gradient landing in another's columns
// shows: piece p is squared and scaled by p + 2.
const mix = (ps: Tensor[]) => ops.concat(ps.map((p, i) => p.mul(p).mul(i + 2)), -1);
const mixRef = (ps: Arr[]) =>
  concatRef(ps.map((p, i) => mapN((v) => v * v * (i + 2), p)), p0Axis(ps));
const p0Axis = (ps: Arr[]) => ps[0].shape.length - 1;

const cases: [number[], number[]][] = [
  [[5, 12], [4, 4, 4]], // vec4, three pieces
  [[3, 7], [2, 5]], // scalar, two pieces
  [[2, 3, 10], [6, 2, 2]], // scalar (6 is not a multiple of 4), rank 3
  [[2, 3, 24], [16, 4, 4]], // the q/k/v shape of GQA with G = 4
  [[9], [4, 5]], // rank 1
  [[33, 8], [4, 4]], // vec4, two pieces, odd row count
];

for (const [shape, widths] of cases) {
  Deno.test(`splitLast ${JSON.stringify(shape)} into [${widths}]: forward and backward`, async () => {
    await checkOp({
      name: `splitLast ${shape} [${widths}]`,
      inputs: [randArr(rng, shape)],
      gpu: ([x]) => mix(splitLast(x, widths)),
      ref: ([x]) => mixRef(splitRef(x, widths)),
    });
  });
}

Deno.test("splitLast: each piece equals its slice exactly, and is contiguous", async () => {
  const x = randArr(rng, [7, 3, 20]);
  const xt = up(x);
  const ps = splitLast(xt, [8, 8, 4]);
  assert.ok(ps.every((p) => p.isContiguous && p.offset === 0));
  const got = await readAll(ps);
  splitRef(x, [8, 8, 4]).forEach((want, i) => {
    assert.deepEqual(ps[i].shape, want.shape);
    assert.deepEqual([...got[i]], [...want.data], `piece ${i}`);
  });
  [xt, ...ps].forEach((t) => t.dispose());
  assertNoGpuErrors();
});

Deno.test("splitLast: strided input, only some pieces used, the input read elsewhere too", async () => {
  // a transposed view: the split materialises it first
  await checkOp({
    name: "splitLast of a transposed view",
    inputs: [randArr(rng, [9, 6])],
    gpu: ([x]) => mix(splitLast(x.transpose(), [4, 4, 1])),
    ref: ([x]) => {
      const t = sliceRef(x, 0, 0, 9); // [9, 6] -> its transpose [6, 9]
      const tr = { data: new Float64Array(54), shape: [6, 9] };
      for (let i = 0; i < 6; i++) {
        for (let j = 0; j < 9; j++) tr.data[i * 9 + j] = t.data[j * 6 + i];
      }
      return mixRef(splitRef(tr, [4, 4, 1]));
    },
  });
  // the middle piece never reaches the output: its columns of the gradient are zero
  await checkOp({
    name: "splitLast, pieces 0 and 2 only",
    inputs: [randArr(rng, [4, 12])],
    gpu: ([x]) => {
      const [a, , c] = splitLast(x, [4, 4, 4]);
      return mix([a, c]);
    },
    ref: ([x]) => {
      const [a, , c] = splitRef(x, [4, 4, 4]);
      return mixRef([a, c]);
    },
  });
  // only the last piece, scalar kernel
  await checkOp({
    name: "splitLast, last piece only",
    inputs: [randArr(rng, [3, 5])],
    gpu: ([x]) => mix([splitLast(x, [2, 3])[1]]),
    ref: ([x]) => mixRef([splitRef(x, [2, 3])[1]]),
  });
  // x also feeds the output directly, and a piece is used twice: the tape sums both routes
  await checkOp({
    name: "splitLast, input with another consumer",
    inputs: [randArr(rng, [5, 8])],
    gpu: ([x]) => {
      const [a, b] = splitLast(x, [4, 4]);
      return ops.add(ops.concat([a.mul(b), a.mul(3)], -1), x.mul(x));
    },
    ref: ([x]) => {
      const [a, b] = splitRef(x, [4, 4]);
      const y = concatRef([mapN((u, v) => u * v, a, b), mapN((u) => 3 * u, a)], 1);
      return mapN((u, v) => u + v * v, y, x);
    },
  });
});

Deno.test("splitLast: one dispatch forward, one join backward; under noGrad no tape", async () => {
  const x = up(randArr(rng, [6, 16]), true);
  const dy = up(randArr(rng, [6, 16]));
  let pieces: Tensor[] = [];
  const fwd = recordedDispatches(() => (pieces = splitLast(x, [8, 4, 4])));
  assert.deepEqual(fwd, ["ops_split_vec4:split3"]);
  const y = ops.concat(pieces, -1);
  const bwd = recordedDispatches(() => tidy(() => y.backward(dy)));
  // concat's backward hands each piece a strided slice of dy, which the join materialises; the
  // pieces' gradients meet in one join (no add of partial gradients), then the leaf's gradient
  // is created and accumulated
  assert.deepEqual(bwd, [
    ...Array(3).fill("tensor_copy:main"),
    "ops_split_vec4:join3",
    "tensor_fill:fill",
    "ops_binary:accumulate",
  ]);
  const [g] = await readAll([x.grad!]);
  const [want] = await readAll([dy]);
  assert.deepEqual([...g], [...want]);
  const free = noGrad(() => splitLast(x, [8, 4, 4]));
  assert.ok(free.every((p) => p.node === null));
  [x, dy, y, ...pieces, ...free].forEach((t) => t.dispose());
  assertNoGpuErrors();
});

Deno.test("splitLast: repeated forward and backward leave the pool as it was", async () => {
  const x = up(randArr(rng, [8, 12]), true);
  const run = () =>
    tidy(() => {
      const [a, , c] = splitLast(x, [4, 4, 4]);
      ops.add(a.sum(), c.mul(c).sum()).backward();
    });
  run();
  await readAll([x.grad!]);
  const before = rt.pool.stats();
  for (let i = 0; i < 3; i++) run();
  await readAll([x.grad!]);
  const after = rt.pool.stats();
  assert.deepEqual(after, before);
  x.dispose();
  assertNoGpuErrors();
});

Deno.test("splitLast: bad widths and inputs are named", () => {
  const x = tensor(new Float32Array(12), [3, 4]);
  assert.throws(() => splitLast(x, [2, 1]), /sum to 3, but the last axis of \[3,4\] is 4/);
  assert.throws(() => splitLast(x, [4]), /two or three widths/);
  assert.throws(() => splitLast(x, [1, 1, 1, 1]), /two or three widths/);
  assert.throws(() => splitLast(x, [4, 0]), /positive integers/);
  assert.throws(() => splitLast(x, [1.5, 2.5]), /positive integers/);
  assert.throws(
    () => splitLast(tensor(new Int32Array(4), [2, 2]), [1, 1]),
    /expected a f32 tensor/,
  );
  x.dispose();
});
