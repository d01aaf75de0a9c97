// Ops on tensors larger than one storage binding, forced at small shapes by lowering
// `TensorRuntime.storageBindingLimit`: the embedding lookup and its scatter-add gradient in row
// blocks (ids on the first and last rows of blocks, repeated, and bad ids), x·Wᵀ with the
// classifier W over the limit (and its output, and the gradients' operands) forward and backward
// against float64 and its finite differences, a tied embedding/classifier whose two gradients
// meet in W.grad, the fused add-RMS prologue over blocks of W, and fills / random draws in blocks.
// Each is also compared with the same ops at the device's own limit (one binding).
import assert from "node:assert/strict";
import { ops } from "../src/autograd/mod.ts";
import { ComputeBatch, type Dispatch } from "../src/gpu/mod.ts";
import {
  type Arr,
  arr,
  embeddingRef,
  matmulRef,
  rmsNormRef,
  transposeRef,
} from "../src/autograd/reference.ts";
import {
  randn,
  readAll,
  type Tensor,
  tensor,
  type TensorRuntime,
  tidy,
  zeros,
} from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import {
  assertClose,
  assertNoGpuErrors,
  checkOp,
  closeness,
  randArr,
  setup,
  up,
} from "./autograd_util.ts";

// Runs `fn` with bindings of at most `bytes`, and counts its dispatches.
async function limited<T>(
  rt: TensorRuntime,
  bytes: number | null,
  fn: () => Promise<T>,
): Promise<{ value: T; dispatches: number }> {
  const before = rt.counters.dispatches;
  rt.storageBindingLimit = bytes ?? rt.deviceBindingLimit;
  try {
    const value = await fn();
    return { value, dispatches: rt.counters.dispatches - before };
  } finally {
    rt.storageBindingLimit = rt.deviceBindingLimit;
  }
}

const V = 300, C = 37;
// 1024 floats per binding: the [300, 37] table in 13 blocks of 24 rows (multiples of 8 rows keep
// each block's offset 32-byte aligned), the last of 12.
const EMB_LIMIT = 4096;

Deno.test("embedding over one binding: lookup and scatter-add gradient in row blocks", async () => {
  const rt = await setup();
  const rng = new Rng(5);
  const table = randArr(rng, [V, C]);
  // first and last rows of blocks (0, 23 | 24, 47 | 48 ... 288, 299), repeats, scattered ids
  const idList = [0, 23, 24, 47, 48, 299, 288, 287, 24, 24, 0, 150, 299, 71, 72, 5, 23, 200];
  const ids = Int32Array.from(idList);
  const g = randArr(rng, [ids.length, C]);
  const run = (limit: number | null) =>
    limited(rt, limit, async () => {
      const w = up(table, true);
      const idT = tensor(ids, [2, 9]);
      const out = tidy(() => {
        const y = ops.embedding(w, idT);
        y.backward(up(arr(g.data, [2, 9, C])));
        return y;
      });
      const got = await readAll([out, w.grad!]);
      [w, idT, out].forEach((t) => t.dispose());
      return got;
    });
  const split = await run(EMB_LIMIT);
  const whole = await run(null);
  assertNoGpuErrors();
  // 13 lookups + rank + 13 scatters, and the gradient's blocked fill (zeros [300, 37])
  assert.ok(
    split.dispatches >= whole.dispatches + 24,
    `${split.dispatches} vs ${whole.dispatches}`,
  );
  const want = embeddingRef(table, ids, [2, 9]);
  assert.deepEqual(Array.from(split.value[0]), Array.from(want.data));
  const dref = new Float64Array(V * C);
  ids.forEach((id, n) => {
    for (let c = 0; c < C; c++) dref[id * C + c] += g.data[n * C + c];
  });
  assertClose("embedding grad (split) vs float64", split.value[1], dref, 1e-6, 1e-6);
  // the same sum in the same order: bit-equal to one binding's
  assert.deepEqual(split.value[0], whole.value[0]);
  assert.deepEqual(split.value[1], whole.value[1]);
});

Deno.test("embedding over one binding: bad ids computed on the GPU give NaN rows once", async () => {
  const rt = await setup();
  const rng = new Rng(6);
  const table = randArr(rng, [V, C]);
  const ids = Int32Array.from([299, -1, 24, 300, 0, 23]);
  const { value } = await limited(rt, EMB_LIMIT, async () => {
    const w = up(table);
    const idT = tensor(ids, [6]);
    idT.hostValues = null; // as if computed on the GPU: no host check
    const y = ops.embedding(w, idT);
    const [got] = await readAll([y]);
    [w, idT, y].forEach((t) => t.dispose());
    return got;
  });
  assertNoGpuErrors();
  ids.forEach((id, n) => {
    const row = Array.from(value.slice(n * C, (n + 1) * C));
    if (id < 0 || id >= V) assert.ok(row.every(Number.isNaN), `row ${n} (id ${id}) is NaN`);
    else assert.deepEqual(row, Array.from(table.data.slice(id * C, (id + 1) * C)));
  });
});

Deno.test("x·Wᵀ with W over one binding: forward and gradients vs float64 finite differences", async () => {
  const rt = await setup();
  const rng = new Rng(7);
  // W [100, 37]: 3700 floats in blocks of 24 rows; x [2, 3, 37]; the product fits
  const x = randArr(rng, [2, 3, C]);
  const w = randArr(rng, [100, C]);
  const ref = ([a, b]: Arr[]) => {
    const y = matmulRef(arr(a.data, [6, C]), transposeRef(b));
    return arr(y.data, [2, 3, 100]);
  };
  const { dispatches } = await limited(rt, EMB_LIMIT, () =>
    checkOp({
      name: "x·Wᵀ (W in blocks)",
      inputs: [x, w],
      gpu: ([a, b]) => ops.matmul(a, ops.transpose(b)),
      ref,
      fwd: [1e-5, 1e-4],
      bwd: [2e-4, 2e-3],
    }));
  assert.ok(dispatches > 20, `${dispatches} dispatches`);
  // the output over the limit too: 16 rows of [16, 100] (C in 2 blocks of rows, dX's A = dY and
  // dW's C in blocks, dW's K cut); the GPU finite differences would bind the output whole
  const x2 = randArr(rng, [16, C]);
  await limited(rt, EMB_LIMIT, () =>
    checkOp({
      name: "x·Wᵀ (W, output and gradients in blocks)",
      inputs: [x2, w],
      gpu: ([a, b]) => ops.matmul(a, ops.transpose(b)),
      ref: ([a, b]) => matmulRef(a, transposeRef(b)),
      bwd: [2e-4, 2e-3],
      gpuH: 0,
    }));
  assertNoGpuErrors();
});

Deno.test("tied embedding and classifier over one binding: both gradients meet in W.grad", async () => {
  const rt = await setup();
  const rng = new Rng(8);
  const Vt = 100;
  const w = randArr(rng, [Vt, C]);
  const ids = Int32Array.from([0, 99, 23, 24, 24, 50, 7, 99, 48, 47, 1, 2]);
  const g = randArr(rng, [ids.length, Vt]);
  const run = (limit: number | null) =>
    limited(rt, limit, async () => {
      const W = up(w, true);
      const idT = tensor(ids, [ids.length]);
      const out = tidy(() => {
        const logits = ops.matmul(ops.embedding(W, idT), ops.transpose(W));
        logits.backward(up(g));
        return logits;
      });
      const got = await readAll([out, W.grad!]);
      [W, idT, out].forEach((t) => t.dispose());
      return got;
    });
  const split = await run(EMB_LIMIT);
  const whole = await run(null);
  assertNoGpuErrors();
  assert.ok(split.dispatches > whole.dispatches);
  // float64: logits = E·Wᵀ with E = W[ids]; dW = gᵀ·E + scatter(ids, g·W)
  const E = embeddingRef(w, ids, [ids.length]);
  const logits = matmulRef(E, transposeRef(w));
  assertClose("tied logits (split)", split.value[0], logits.data, 1e-5, 1e-4);
  const dW = matmulRef(transposeRef(g), E).data;
  const dE = matmulRef(g, w).data;
  ids.forEach((id, n) => {
    for (let c = 0; c < C; c++) dW[id * C + c] += dE[n * C + c];
  });
  assertClose("tied W.grad (split) vs float64", split.value[1], dW, 1e-4, 1e-4);
  const near = closeness(split.value[1], whole.value[1], 1e-5, 1e-5);
  assert.ok(near <= 1, `split vs one binding: ${near}`);
});

Deno.test("fused add-RMS classifier over one binding: blocks of W through the prologue", async () => {
  const rt = await setup();
  const rng = new Rng(9);
  const x = randArr(rng, [4, C]), r = randArr(rng, [4, C]);
  const gain = randArr(rng, [C], 0.5, 1);
  const w = randArr(rng, [301, C]);
  const run = (limit: number | null) =>
    limited(rt, limit, async () => {
      const ts = [x, r, gain, w].map((a) => up(a));
      const res = tidy(() => {
        const o = ops.addRmsNormMatmul(ts[0], ts[1], ts[2], ops.transpose(ts[3]), 1e-6, {
          fused: true,
        });
        return [o.sum, o.out];
      });
      const got = await readAll(res);
      [...ts, ...res].forEach((t: Tensor) => t.dispose());
      return got;
    });
  const split = await run(16384); // W [301, 37] in 3 blocks of 104 rows
  const whole = await run(null);
  assertNoGpuErrors();
  assert.equal(split.dispatches, whole.dispatches + 2);
  const h = arr(x.data.map((v, i) => Math.fround(v + r.data[i])), [4, C]);
  assert.deepEqual(Array.from(split.value[0]), Array.from(h.data), "x + r, once per block");
  const want = matmulRef(rmsNormRef(h, gain, 1e-6), transposeRef(w));
  assertClose("fused add-RMS (split) vs float64", split.value[1], want.data, 1e-5, 1e-4);
  assertClose("fused add-RMS split vs whole", split.value[1], whole.value[1], 1e-5, 1e-4);
});

Deno.test("fills and random draws over one binding are those of the whole tensor", async () => {
  const rt = await setup();
  const draw = (limit: number | null) =>
    limited(rt, limit, async () => {
      const ts = [
        randn([301, 37], { seed: 3, stream: 2, mean: 1, std: 2 }),
        zeros([301, 37]),
        ops.affine(zeros([3]), 1, 4), // a small tensor still binds whole
      ];
      const got = await readAll(ts);
      ts.forEach((t) => t.dispose());
      return got;
    });
  const split = await draw(EMB_LIMIT);
  const whole = await draw(null);
  assertNoGpuErrors();
  assert.ok(split.dispatches >= whole.dispatches + 20, `${split.dispatches}`);
  assert.deepEqual(split.value[0], whole.value[0]);
  assert.ok(split.value[1].every((v) => v === 0) && split.value[1].length === 301 * 37);
  assert.deepEqual(Array.from(split.value[2]), [4, 4, 4]);
  assert.throws(() => (rt.storageBindingLimit = 100), /must be an integer number of bytes >= 256/);
  assert.throws(
    () => (rt.storageBindingLimit = rt.deviceBindingLimit + 16),
    /over the device's maxStorageBufferBindingSize/,
  );
});

Deno.test("a strided view of a buffer over one binding is copied through the slice around it", async () => {
  const rt = await setup();
  const rng = new Rng(10);
  const a = randArr(rng, [V, C]);
  // every storage binding of every dispatch, as recorded
  const sizes: number[] = [];
  const inner = ComputeBatch.prototype.dispatch;
  ComputeBatch.prototype.dispatch = function (this: ComputeBatch, d: Dispatch) {
    for (const b of d.bindings) {
      if (b instanceof GPUBuffer) sizes.push(b.size);
      else if (!ArrayBuffer.isView(b)) sizes.push(b.size ?? b.buffer.size);
    }
    return inner.call(this, d);
  };
  const { value, dispatches } = await limited(rt, EMB_LIMIT, async () => {
    const t = up(a);
    // rows 25..40 transposed: 592 floats of a 11,100-float buffer, from an unaligned element
    const view = ops.transpose(ops.slice(t, 0, 25, 41));
    const dense = tidy(() => ops.affine(view, 1, 0)); // materialises the view, then binds it
    const got = await readAll([dense]);
    [t, view, dense].forEach((x) => x.dispose());
    return got[0];
  });
  ComputeBatch.prototype.dispatch = inner;
  assertNoGpuErrors();
  assert.ok(dispatches >= 2);
  assert.ok(sizes.length >= 4 && sizes.every((n) => n <= EMB_LIMIT), `bindings ${sizes}`);
  const want = new Float64Array(C * 16);
  for (let c = 0; c < C; c++) {
    for (let r = 0; r < 16; r++) want[c * 16 + r] = a.data[(25 + r) * C + c];
  }
  assert.deepEqual(Array.from(value), Array.from(want));
});
