import assert from "node:assert/strict";
import { backward, noGrad, ops } from "../src/autograd/mod.ts";
import {
  empty,
  full,
  item,
  keep,
  normalAtRef,
  ones,
  randn,
  randu,
  read,
  readAll,
  runtime,
  sizeClass,
  tensor,
  tidy,
  zeros,
} from "../src/tensor/mod.ts";
import { uniformAt } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, setup } from "./autograd_util.ts";

Deno.test("creation: from arrays (f32/i32/u32), zeros, ones, full", async () => {
  await setup();
  const a = tensor([1.5, -2, 3], [3]);
  const i = tensor(new Int32Array([-7, 0, 2147483647]));
  const u = tensor(new Uint32Array([4294967295, 1]));
  const [ra, ri, ru, z, o, f] = await readAll([a, i, u, zeros([2, 2]), ones([5]), full([3], 0.25)]);
  assert.deepEqual([...ra], [1.5, -2, 3]);
  assert.ok(ri instanceof Int32Array);
  assert.deepEqual([...ri], [-7, 0, 2147483647]);
  assert.deepEqual([...ru], [4294967295, 1]);
  assert.deepEqual([...z], [0, 0, 0, 0]);
  assert.deepEqual([...o], [1, 1, 1, 1, 1]);
  assert.deepEqual([...f], [0.25, 0.25, 0.25]);
  assert.throws(() => tensor([1, 2, 3], [2, 2]), /3 values do not fill shape \[2,2\]/);
  assert.throws(() => tensor([1.5], [1], "i32"), /integers/);
  assertNoGpuErrors();
});

Deno.test("GPU random draws mirror hash3 of src/util/rng.ts", async () => {
  await setup();
  const n = 1001;
  const [u, g] = await readAll([
    randu([n], { seed: 5, stream: 3, lo: -1, hi: 2 }),
    randn([n], { seed: 5, mean: 1, std: 2 }),
  ]);
  const wantU = Float64Array.from({ length: n }, (_, i) => -1 + 3 * uniformAt(5, 3, i));
  const wantN = Float64Array.from({ length: n }, (_, i) => 1 + 2 * normalAtRef(5, 0, i));
  assertClose("randu", u, wantU, 1e-6, 1e-6);
  assertClose("randn", g, wantN, 1e-4, 1e-4);
  const mean = [...g].reduce((s, v) => s + v, 0) / n;
  assert.ok(Math.abs(mean - 1) < 0.2, `randn mean ${mean}`);
  const [other] = await readAll([randn([4], { seed: 6 })]);
  assert.notDeepEqual([...other], [...g.slice(0, 4)]);
});

Deno.test("views: transpose/slice/expand are free, reshape of contiguous shares storage", async () => {
  await setup();
  const x = tensor([0, 1, 2, 3, 4, 5], [2, 3]);
  const before = runtime().counters.dispatches;
  const t = x.transpose();
  const s = x.slice(1, 1, 3);
  const r = x.reshape([3, 2]);
  const e = tensor([1, 2], [2, 1]).expand([2, 4]);
  assert.equal(runtime().counters.dispatches, before, "views record no dispatch");
  assert.equal(t.storage, x.storage);
  assert.equal(r.storage, x.storage);
  assert.ok(!t.isContiguous && r.isContiguous);
  const [rt, rs, rr, re] = await readAll([t, s, r, e]);
  assert.deepEqual([...rt], [0, 3, 1, 4, 2, 5]);
  assert.deepEqual([...rs], [1, 2, 4, 5]);
  assert.deepEqual([...rr], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...re], [1, 1, 1, 1, 2, 2, 2, 2]);
});

Deno.test("readAll reads many tensors with one wait", async () => {
  await setup();
  const ts = [ones([3]), zeros([5]), full([2], 7)];
  const reads = runtime().counters.reads;
  const out = await readAll(ts);
  assert.equal(runtime().counters.reads, reads + 1);
  assert.equal(out.length, 3);
  assert.equal(await item(ts[2].sum()), 14);
});

Deno.test("release: dispose, tidy, keep, and clear errors on use after release", async () => {
  const rt = await setup();
  const live0 = rt.pool.stats().liveBuffers;
  const kept = tidy(() => {
    const a = ones([4]);
    const b = a.mul(3).add(1);
    keep(zeros([2])).dispose();
    return b;
  });
  assert.equal(rt.pool.stats().liveBuffers, live0 + 1, "only the returned tensor survives");
  assert.deepEqual([...(await read(kept))], [4, 4, 4, 4]);
  kept.dispose();
  assert.equal(rt.pool.stats().liveBuffers, live0);
  assert.throws(() => kept.add(1), /Tensor f32 \[4\] \(from affine\) was used after release/);
  await assert.rejects(() => read(kept), /used after release/);
  // a view keeps the storage alive after its base is disposed
  const base = tensor([1, 2, 3, 4], [2, 2]);
  const view = base.transpose();
  base.dispose();
  assert.deepEqual([...(await read(view))], [1, 3, 2, 4]);
  view.dispose();
  assert.equal(rt.pool.stats().liveBuffers, live0);
  assert.throws(() => tidy(() => Promise.resolve(1)), /synchronous/);
});

Deno.test("bad input: shape mismatches name the op and both shapes; wrong dtypes are named", async () => {
  await setup();
  const a = zeros([2, 3]);
  const b = zeros([4, 3]);
  const ids = tensor(new Int32Array([1, 2]));
  assert.throws(() => a.add(b), /add: shapes \[2,3\] and \[4,3\] cannot be broadcast together/);
  assert.throws(() => a.matmul(b), /matmul: shapes \[2,3\] and \[4,3\] do not multiply/);
  assert.throws(
    () => ops.concat([a, zeros([2, 2])], 0),
    /concat: shapes \[2,3\] and \[2,2\] differ outside axis 0/,
  );
  assert.throws(
    () => ops.rmsNorm(a, zeros([4])),
    /rmsNorm: x \[2,3\] needs weight of shape \[3\], got \[4\]/,
  );
  assert.throws(
    () => ops.crossEntropy(a, tensor(new Int32Array([1, 2, 3]))),
    /crossEntropy: logits \[2,3\] need targets of shape \[2\], got \[3\]/,
  );
  assert.throws(() => ids.exp(), /exp: expected a f32 tensor, got Tensor i32 \[2\]/);
  assert.throws(
    () => ops.crossEntropy(a, zeros([2])),
    /crossEntropy: expected a i32 tensor, got Tensor f32 \[2\]/,
  );
  assert.throws(() => ops.embedding(a, zeros([2])), /embedding: expected a i32 tensor/);
  assert.throws(
    () => a.reshape([4, 2]),
    /reshape: cannot reshape \[2,3\] \(6 elements\) to \[4,2\]/,
  );
  assert.throws(() => a.slice(1, 2, 5), /slice: range 2\.\.5 is outside axis 1 \(size 3\)/);
  assert.throws(() => empty([2, -1]), /non-negative integers/);
  // ids known on the host are range-checked (the ignore index is allowed)
  assert.throws(
    () => ops.crossEntropy(a, tensor(new Int32Array([1, 3]))),
    /crossEntropy: id 3 at position 1 is outside \[0, 3\)/,
  );
  assert.throws(
    () => ops.embedding(a, tensor(new Int32Array([1, -1]))),
    /embedding: id -1 at position 1 is outside \[0, 2\)/,
  );
  assert.throws(() => ops.gatherLast(a, tensor(new Int32Array([0, 7]))), /gatherLast: id 7/);
  ops.crossEntropy(a, tensor(new Int32Array([1, -100]))).dispose();
});

Deno.test("autograd: accumulation across backward calls, noGrad, detach, non-scalar root", async () => {
  await setup();
  const w = tensor([1, 2, 3], [3]);
  w.requiresGrad = true;
  tidy(() => {
    w.mul(w).sum().backward(); // d = 2w
    w.mul(w).sum().backward(); // accumulates: 4w
    const y = w.mul(2);
    y.add(y).sum().backward(); // a tensor used twice: +4
  });
  assert.deepEqual([...(await read(w.grad!))], [8, 12, 16]);
  const noTape = noGrad(() => w.mul(2));
  assert.equal(noTape.node, null);
  assert.throws(() => noTape.sum().backward(), /does not depend on any tensor with requiresGrad/);
  const d = w.detach();
  assert.equal(d.node, null);
  assert.equal(d.requiresGrad, false);
  assert.throws(
    () => backward(w.mul(2)),
    /is not a scalar; pass an output gradient of shape \[3\]/,
  );
  const y = w.mul(3);
  backward(y, ones([3]));
  assert.deepEqual([...(await read(w.grad!))], [11, 15, 19]);
  assert.throws(() => backward(y, ones([3])), /already consumed/);
  // a saved activation released before the backward: the error names the op
  const z = tidy(() => {
    const h = w.silu();
    const out = h.mul(2).sum();
    h.dispose();
    return out;
  });
  assert.throws(
    () => z.backward(),
    /backward of 'affine': Tensor f32 \[3\] \(from silu\) was used after release/,
  );
  // a forward built in one tidy and backpropagated outside it fails loudly, never silently
  const loss = tidy(() => w.exp().mul(w).sum());
  assert.throws(() => loss.backward(), /backward of 'mul': .* was used after release/);
  assertNoGpuErrors();
});

Deno.test("pool: size classes waste at most 25% and buffers are reused", async () => {
  const rt = await setup();
  for (const n of [1, 256, 257, 1000, 4096, 5000, 123457]) {
    const c = sizeClass(n);
    assert.ok(c >= n && c <= Math.max(256, n * 1.25 + 4), `class ${c} for ${n}`);
  }
  const created = rt.pool.stats().created;
  for (let i = 0; i < 5; i++) {
    tidy(() => {
      ones([100]).add(1);
    });
  }
  assert.ok(rt.pool.stats().created - created <= 3, "the same buffers come back from the pool");
});
