// Tensors packed in one arena: the layout, the copied values and zeroed padding, and ops reading
// and writing packed views bound as slices (plain, transposed for matmul, broadcast, reduced,
// sliced) giving exactly what the same ops give on separate tensors.
import assert from "node:assert/strict";
import {
  arenaAlignment,
  arenaLayout,
  packTensors,
  readAll,
  sharedArena,
  type Tensor,
  tidy,
} from "../src/tensor/mod.ts";
import { ops } from "../src/autograd/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertNoGpuErrors, randArr, setup, up } from "./autograd_util.ts";

Deno.test("arenaLayout aligns every start and covers every tensor", () => {
  const sizes = [5, 64, 1, 130, 0, 7];
  const { offsets, length } = arenaLayout(sizes, 64);
  assert.deepEqual(offsets, [0, 64, 128, 192, 384, 448]);
  assert.equal(length, 512);
  const rng = new Rng(4);
  for (let trial = 0; trial < 50; trial++) {
    const s = Array.from({ length: 1 + rng.int(8) }, () => rng.int(300));
    const l = arenaLayout(s, 64);
    l.offsets.forEach((o, i) => {
      assert.equal(o % 64, 0);
      if (i > 0) assert.ok(l.offsets[i - 1] + s[i - 1] <= o, "overlap");
    });
    assert.ok(l.offsets.at(-1)! + s.at(-1)! <= l.length);
  }
});

Deno.test("packTensors copies each tensor to an aligned view and zeroes the padding", async () => {
  await setup();
  const rng = new Rng(9);
  const shapes = [[3, 5], [7], [64], [2, 3, 4], [1]];
  const src = shapes.map((s) => randArr(rng, s));
  const inputs = src.map((a) => up(a));
  const views = packTensors(inputs);
  const align = arenaAlignment();
  views.forEach((v, i) => {
    assert.deepEqual([...v.shape], shapes[i]);
    assert.ok(v.isContiguous, `view ${i} must be bindable`);
    assert.equal(v.offset % align, 0);
    assert.equal(v.storage, views[0].storage);
  });
  const shared = sharedArena(views);
  assert.ok(!("why" in shared), "the views form one arena");
  assert.ok("why" in sharedArena(inputs), "separate tensors do not");
  const got = await readAll(views);
  got.forEach((g, i) => assert.deepEqual([...g], [...src[i].data].map(Math.fround)));
  // the whole arena: tensors where they were put, zero everywhere else
  const whole = views[0].viewAs([views[0].storage.length], [1], 0, "whole");
  const [all] = await readAll([whole]);
  const expected = new Float32Array(views[0].storage.length);
  views.forEach((v, i) => expected.set(src[i].data, v.offset));
  assert.deepEqual([...all], [...expected]);
  whole.dispose();
  for (const t of [...inputs, ...views]) t.dispose();
  assertNoGpuErrors();
});

Deno.test("ops on packed views bound as slices equal the same ops on separate tensors", async () => {
  await setup();
  const rng = new Rng(21);
  // odd sizes, so that vec4 kernels reach past the end of a view into the padding
  const a = randArr(rng, [6, 9]), w = randArr(rng, [5, 9]), b = randArr(rng, [9]);
  const g = randArr(rng, [3]), x = randArr(rng, [4, 3]);
  const separate = [up(a), up(w), up(b), up(g), up(x)];
  const packed = packTensors(separate);
  const run = (t: Tensor[]) =>
    tidy(() => {
      const [ta, tw, tb, tg, tx] = t;
      return [
        ops.matmul(ta, ops.transpose(tw)), // a packed weight read transposed
        ops.add(ta, tb), // row broadcast
        ops.mul(ta, ta), // same-shape vec4 path
        ops.sum(ta, 0), // column sums
        ops.rmsNorm(tx, tg, 1e-6),
        ops.exp(ops.slice(ta, 0, 2, 5)), // a slice of a packed view
        ops.softmax(tw),
      ];
    });
  const want = await readAll(run(separate));
  const got = await readAll(run(packed));
  got.forEach((r, i) => assert.deepEqual([...r], [...want[i]], `result ${i}`));
  for (const t of [...separate, ...packed]) t.dispose();
  assertNoGpuErrors();
});
