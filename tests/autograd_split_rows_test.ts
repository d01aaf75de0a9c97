// Row-wise ops over `[rows, V]` tensors larger than one storage binding (the logits of a
// 151,936-token vocabulary against llvmpipe's 128 MiB), at small sizes: the runtime's binding limit
// is lowered so that the logits span several blocks of rows. Each op must give exactly what it
// gives at the device's limit (one binding, the same kernels over the same rows) and match its
// float64 reference; and AdamW over a parameter larger than one binding (updated in blocks of
// elements) must match the float64 AdamW.
import assert from "node:assert/strict";
import { AdamW, ops } from "../src/autograd/mod.ts";
import {
  adamwRef,
  type Arr,
  crossEntropyRef,
  gatherLastRef,
  softmaxRef,
} from "../src/autograd/reference.ts";
import { readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import {
  assertClose,
  assertNoGpuErrors,
  atBindingLimit as at,
  randArr,
  setup,
  up,
} from "./autograd_util.ts";

/**
 * Logits [rows, V] with the rows the kernels find hard: peaked, flat (all equal), ties at the
 * max, a -inf entry away from the target, values near the f32 range, and plain random ones.
 */
function hardLogits(rng: Rng, rows: number, V: number, targets: Int32Array): Arr {
  const x = randArr(rng, [rows, V], 3);
  for (let r = 0; r < rows; r++) {
    const row = x.data.subarray(r * V, (r + 1) * V);
    const t = targets[r] >= 0 ? targets[r] : 0;
    switch (r % 6) {
      case 0:
        row[(t + 1) % V] = 20; // peaked away from the target
        break;
      case 1:
        row.fill(0.5); // flat
        break;
      case 2:
        row[0] = row[V - 1] = 9; // a tie at the max
        break;
      case 3:
        row[(t + 2) % V] = -Infinity;
        break;
      case 4:
        for (let i = 0; i < V; i++) row[i] = Math.fround(row[i] * 1e4); // wide range
        break;
    }
  }
  return x;
}

// Float64 gradient of Σ w[r]·loss[r] (reduction none) or w·loss (mean/sum) wrt the logits.
function crossEntropyGradRef(
  x: Arr,
  targets: Int32Array,
  ignore: number,
  reduction: "mean" | "sum" | "none",
  w: Float64Array,
): Float64Array {
  const V = x.shape[1];
  const p = softmaxRef(x).data;
  const valid = targets.filter((t) => t !== ignore).length;
  const scale = reduction === "mean" ? 1 / Math.max(1, valid) : 1;
  const g = new Float64Array(x.data.length);
  targets.forEach((t, r) => {
    if (t === ignore) return;
    const wr = (reduction === "none" ? w[r] : w[0]) * scale;
    for (let i = 0; i < V; i++) g[r * V + i] = (p[r * V + i] - (i === t ? 1 : 0)) * wr;
  });
  return g;
}

Deno.test("crossEntropy over logits in row blocks equals one binding and the float64 reference", async () => {
  const rt = await setup();
  // [V, limit, rows]: V % 4 == 0 (vec4 kernels) in blocks of 16 rows, odd V (scalar kernels) in
  // blocks of 64, V = 1024 of 2 (with 32- or 256-byte offset alignment alike)
  for (const [V, limit, rows] of [[100, 6400, 45], [37, 9472, 150], [1024, 8192, 7]]) {
    const rng = new Rng(V);
    const ignore = -1;
    const targets = Int32Array.from(
      { length: rows },
      (_, r) => r % 7 === 3 ? ignore : r % 5 === 0 ? V - 1 : rng.int(V),
    );
    const x = hardLogits(rng, rows, V, targets);
    assert.ok(rows * V * 4 > 2 * limit, "the logits span several blocks");
    for (const reduction of ["mean", "sum", "none"] as const) {
      const n = reduction === "none" ? rows : 1;
      const w = Float64Array.from({ length: n }, () => Math.fround(0.5 + rng.uniform()));
      const run = () => {
        const xs = up(x, true);
        const ts = tensor(targets, [rows]);
        const loss = tidy(() => {
          const l = ops.crossEntropy(xs, ts, { ignoreIndex: ignore, reduction });
          l.backward(tensor(Float32Array.from(w), l.shape));
          return l;
        });
        return readAll([loss, xs.grad!]).finally(() => [xs, ts, loss].forEach((t) => t.dispose()));
      };
      const [split, nSplit] = await at(limit, run);
      const [whole, nWhole] = await at(null, run);
      assertNoGpuErrors();
      const what = `V ${V}, ${reduction}`;
      assert.ok(nSplit > nWhole, `${what}: ${nSplit} dispatches split vs ${nWhole} whole`);
      assert.deepEqual(split[0], whole[0], `${what}: loss split vs one binding`);
      assert.deepEqual(split[1], whole[1], `${what}: gradient split vs one binding`);
      const ref = crossEntropyRef(x, targets, ignore, reduction);
      assertClose(`${what}: loss`, split[0], ref.data, 1e-4, 1e-5);
      const gRef = crossEntropyGradRef(x, targets, ignore, reduction, w);
      assertClose(`${what}: gradient`, split[1], gRef, 1e-6, 1e-4);
    }
  }
  rt.storageBindingLimit = rt.deviceBindingLimit;
});

Deno.test("softmax, logSoftmax and gatherLast over rows in blocks equal one binding and float64", async () => {
  await setup();
  for (const [V, limit, rows] of [[100, 6400, 45], [37, 9472, 150]]) {
    const rng = new Rng(7 + V);
    const ids = Int32Array.from({ length: rows }, (_, r) => (r % 4 === 0 ? V - 1 : rng.int(V)));
    const x = hardLogits(rng, rows, V, ids);
    const w = randArr(rng, [rows, V]);
    const wRow = randArr(rng, [rows]);
    const ops3 = [
      { name: "softmax", fn: (t: Tensor) => ops.softmax(t), g: w },
      { name: "logSoftmax", fn: (t: Tensor) => ops.logSoftmax(t), g: w },
      { name: "gatherLast", fn: (t: Tensor) => ops.gatherLast(t, tensor(ids, [rows])), g: wRow },
    ];
    for (const op of ops3) {
      // the op's output, and the gradient of Σ g ⊙ output (the op's own backward, no other op
      // on the [rows, V] tensors, whose element-wise kernels bind them whole)
      const run = () => {
        const xs = up(x, true);
        const y = tidy(() => {
          const out = op.fn(xs);
          out.backward(up(op.g));
          return out;
        });
        return readAll([y, xs.grad!]).finally(() => [xs, y].forEach((t) => t.dispose()));
      };
      const [split, nSplit] = await at(limit, run);
      const [whole, nWhole] = await at(null, run);
      assertNoGpuErrors();
      const what = `${op.name}, V ${V}`;
      assert.ok(nSplit > nWhole, `${what}: ${nSplit} dispatches split vs ${nWhole}`);
      assert.deepEqual(split[0], whole[0], `${what}: output split vs one binding`);
      assert.deepEqual(split[1], whole[1], `${what}: gradient split vs one binding`);
      const p = softmaxRef(x).data;
      const ref = new Float64Array(rows * V);
      for (let r = 0; r < rows; r++) {
        const o = r * V;
        let gy = 0, gs = 0;
        for (let i = 0; i < V; i++) [gy, gs] = [gy + w.data[o + i] * p[o + i], gs + w.data[o + i]];
        for (let i = 0; i < V; i++) {
          ref[o + i] = op.name === "softmax"
            ? p[o + i] * (w.data[o + i] - gy)
            : op.name === "logSoftmax"
            ? w.data[o + i] - p[o + i] * gs
            : i === ids[r]
            ? wRow.data[r]
            : 0;
        }
      }
      const fwd = op.name === "softmax"
        ? p
        : op.name === "logSoftmax"
        ? softmaxRef(x, true).data
        : gatherLastRef(x, ids).data;
      assertClose(`${what}: forward`, split[0], fwd, 1e-3, 1e-5);
      assertClose(`${what}: gradient`, split[1], ref, 1e-5, 1e-4);
    }
  }
});

Deno.test("AdamW over a parameter larger than one binding (blocks of elements) matches float64", async () => {
  await setup();
  const rng = new Rng(21);
  // [300, 20] is 24,000 bytes: 6 blocks of 1,024 elements under a 4 KiB limit, the last partial;
  // [37] and [130, 3] (1,560 bytes) fit
  const shapes = [[300, 20], [37], [130, 3]];
  const init = shapes.map((s) => randArr(rng, s));
  const steps = 3;
  // a gradient per step and parameter, of varied scale; the last parameter's on step 2 only
  const grads = Array.from(
    { length: steps },
    (_, t) => shapes.map((s, i) => (i === 2 && t !== 1 ? null : randArr(rng, s, 1 + t + i))),
  );
  const o = { lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  for (const maxGradNorm of [0, 3]) {
    const run = async () => {
      const ps = init.map((a) => up(a, true));
      const opt = new AdamW(ps, { ...o, maxGradNorm });
      for (const gs of grads) {
        tidy(() => {
          // each gradient reaches its leaf through the tape (accumulated into .grad in blocks)
          gs.forEach((g, i) => g && ps[i].backward(up(g)));
          opt.step();
          opt.zeroGrad();
          // a parameter without a gradient this step is skipped (as PyTorch skips it)
          ps.forEach((p) => (p.grad?.dispose(), p.grad = null));
        });
      }
      const out = await readAll([...ps, opt.gradNorm]);
      opt.dispose();
      ps.forEach((t: Tensor) => t.dispose());
      return out;
    };
    const [split, nSplit] = await at(4096, run);
    const [whole, nWhole] = await at(null, run);
    assertNoGpuErrors();
    assert.ok(nSplit > nWhole + steps * 10, `${nSplit} dispatches split vs ${nWhole}`);
    const ref = init.map((a) => a.data.slice());
    const m = init.map((a) => new Float64Array(a.data.length));
    const v = init.map((a) => new Float64Array(a.data.length));
    let norm: [number, number] = [0, 0];
    grads.forEach((gs, t) => {
      const g64 = gs.map((g) => g?.data ?? null);
      norm = adamwRef(ref, g64, m, v, [true, false, true], t + 1, { ...o, maxGradNorm });
    });
    ref.forEach((r, i) => {
      assertClose(`param ${i} (maxGradNorm ${maxGradNorm})`, split[i], r, 1e-5, 1e-4);
      // an element's update does not depend on its block; only the norm's sum order does
      if (maxGradNorm === 0) assert.deepEqual(split[i], whole[i], `param ${i} split vs whole`);
      else assertClose(`param ${i} split vs whole`, split[i], whole[i], 1e-6, 1e-6);
    });
    assertClose("grad norm and clip scale", split[3], norm, 1e-5, 1e-5);
    if (maxGradNorm > 0) assert.ok(norm[1] < 1, "clipping was active");
  }
});

Deno.test("a row longer than the binding limit is a RangeError naming the op and tensor", async () => {
  const rt = await setup();
  const x = tensor(new Float32Array(4 * 2000), [4, 2000]);
  const t = tensor(new Int32Array(4), [4]);
  rt.storageBindingLimit = 4096; // one row of 2,000 floats is 8,000 bytes
  try {
    assert.throws(() => ops.crossEntropy(x, t), /crossEntropy: Tensor f32 \[4,2000\]/);
    assert.throws(() => ops.logSoftmax(x), /logSoftmax: Tensor f32 \[4,2000\]/);
  } finally {
    rt.storageBindingLimit = rt.deviceBindingLimit;
    x.dispose();
    t.dispose();
  }
});
