// Views at an aligned, non-zero offset are contiguous and bound as slices: vec4 kernels read them
// in groups of four, so a view that ends at its storage's end on a size that is not a multiple of
// four must still give every element (compared with the same values in a tensor of their own).
import assert from "node:assert/strict";
import { arenaAlignment, readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { ops } from "../src/autograd/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertNoGpuErrors, randArr, setup, up } from "./autograd_util.ts";

Deno.test("an aligned view ending at its storage's end on an odd size reads every element", async () => {
  await setup();
  const rng = new Rng(31);
  const align = arenaAlignment();
  for (const tail of [1, 2, 3, 5, 6, 7]) {
    const x = randArr(rng, [align + tail]);
    const whole = up(x);
    const own = up({ data: x.data.slice(align), shape: [tail] });
    const view = ops.slice(whole, 0, align, align + tail);
    assert.ok(view.isContiguous, "an aligned view is bound directly");
    const run = (t: typeof view) =>
      tidy(() => [ops.exp(t), ops.mul(t, t), ops.add(t, t), ops.softmax(t)]);
    const want = await readAll(run(own));
    const got = await readAll(run(view));
    got.forEach((g, i) => assert.deepEqual([...g], [...want[i]], `tail ${tail}, result ${i}`));
    for (const t of [whole, own, view]) t.dispose();
  }
  assertNoGpuErrors();
});

Deno.test("reshape of a view at an aligned offset keeps its elements (and its gradient)", async () => {
  await setup();
  const rng = new Rng(33);
  const align = arenaAlignment();
  const x = randArr(rng, [3 * align]);
  const whole = up(x, true);
  const own = up({ data: x.data.slice(align, 2 * align), shape: [align] }, true);
  const view = ops.slice(whole, 0, align, 2 * align);
  assert.ok(view.isContiguous);
  const w = up(randArr(rng, [align / 8, 8]));
  const run = (t: typeof view) =>
    tidy(() => {
      const r = ops.reshape(t, [align / 8, 8]);
      r.mul(w).sum().backward();
      return r;
    });
  const [want, wantGrad] = await readAll([run(own), own.grad!]);
  const [got, gotGrad] = await readAll([run(view), whole.grad!]);
  assert.deepEqual([...got], [...want], "reshape of the aligned view");
  assert.deepEqual([...gotGrad.slice(align, 2 * align)], [...wantGrad], "gradient of the view");
  assert.ok(gotGrad.slice(0, align).every((g) => g === 0), "nothing flows outside the view");
  for (const t of [whole, own, view, w]) t.dispose();
  assertNoGpuErrors();
});

Deno.test("a small aligned view of a buffer larger than one binding is bound alone", async () => {
  const rt = await setup();
  const limit = rt.gpu.limits.maxStorageBufferBindingSize;
  if (limit > 512 * 2 ** 20) {
    console.log(`skipped: this device binds ${limit} bytes; the test needs a small limit`);
    return;
  }
  // one storage past the binding limit: binding "the rest of the buffer" from a view would be
  // rejected, and every dispatch of the batch with it
  const cols = 1024;
  const rows = Math.ceil(limit / 4 / cols) + 8;
  const big = tensor(new Float32Array(rows * cols), [rows, cols]); // an upload: nothing binds it whole
  const view = ops.slice(big, 0, 2, 3); // one row at an aligned offset
  assert.ok(view.isContiguous);
  const [got] = await readAll([tidy(() => ops.affine(view, 1, 3))]);
  assert.ok(got.every((v) => v === 3), "the kernel ran and read the view");
  view.dispose();
  big.dispose();
  assertNoGpuErrors();
});
