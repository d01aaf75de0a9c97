// Edge cases a demanding user hits: powers at 0, rows masked with the most negative f32, large
// reductions, and optimizer misuse. Each compares against the float64 reference of
// src/autograd/reference.ts (or a closed form) and names the element that differs.
import assert from "node:assert/strict";
import { ops } from "../src/autograd/mod.ts";
import {
  type Arr,
  arr,
  crossEntropyRef,
  embeddingRef,
  gatherLastRef,
  mapN,
  matmulRef,
  permuteRef,
  reduceRef,
  rpow,
  sliceRef,
  softmaxRef,
  transposeRef,
} from "../src/autograd/reference.ts";
import { Rng } from "../src/util/rng.ts";
import { full, readAll, runtime, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import {
  assertClose,
  assertNoGpuErrors,
  assertSame,
  checkOp,
  randArr,
  setup,
  up,
} from "./autograd_util.ts";

Deno.test("pow at 0 and at negative bases: +inf, 0, NaN as real arithmetic says, and x^a's gradient", async () => {
  await setup();
  const xs = [0, 0, 2, -2, 0.5, -0.5, 0, 3];
  const exps = [-1, -2, -0.5, 0.5, 1, 1.5, 2, 3, 0];
  const x = up(arr(xs, [xs.length]), true);
  for (const a of exps) {
    const [y, g] = await (async () => {
      const out = tidy(() => {
        const y = ops.pow(x, a);
        y.sum().backward();
        return y;
      });
      const r = await readAll([out, x.grad!]);
      out.dispose();
      x.grad!.dispose();
      x.grad = null;
      return r;
    })();
    assertSame(`x^${a}`, y, xs.map((v) => rpow(v, a)));
    // d/dx x^a = a·x^(a-1) (0 when a = 0), with its infinities at 0 for a < 1
    assertSame(`d x^${a}/dx`, g, xs.map((v) => (a === 0 ? 0 : a * rpow(v, a - 1))));
  }
  // a tensor exponent takes the same path through the binary kernel
  const bs = [-1, -2, -0.5, 0.5, 1, 1.5, 2, 3];
  const base = up(arr([0, 0, 0, 0, -2, -2, 4, 0], [8]));
  const e = up(arr(bs, [8]), true);
  const out = tidy(() => {
    const y = ops.pow(base, e);
    y.sum().backward();
    return y;
  });
  const [y, ge] = await readAll([out, e.grad!]);
  assertNoGpuErrors();
  const bv = [0, 0, 0, 0, -2, -2, 4, 0];
  assertSame("pow(tensor, tensor)", y, bv.map((v, i) => rpow(v, bs[i])));
  // d/db a^b = a^b·ln a: 0 where a = 0 and b > 0 (0^b is 0 for every b > 0), NaN for a < 0 with a
  // fractional exponent or where ln a is undefined
  const want = bv.map((v, i) => {
    const p = rpow(v, bs[i]);
    if (v === 0 && bs[i] > 0) return 0;
    return p * Math.log(v);
  });
  assertSame("d pow/d exponent", ge, want, 1e-5);
  for (const t of [out, e, base, x]) t.dispose();
});

Deno.test("softmax, log-softmax and cross-entropy of rows filled with the most negative f32", async () => {
  await setup();
  // torch.finfo(float32).min is the usual attention/vocabulary mask value; a fully masked row is
  // uniform, not NaN or ±inf. Odd and multiple-of-4 widths take the scalar and vec4 kernels.
  const MIN = -3.4028234663852886e38;
  for (const n of [3, 4]) {
    const rows = [
      Array(n).fill(MIN),
      [MIN, ...Array(n - 1).fill(0).map((_, i) => i * 0.5)],
      Array(n).fill(-3.1e38),
    ];
    const x = arr(rows.flat().map(Math.fround), [3, n]);
    const t = up(x, true);
    const targets = tensor(new Int32Array([1, 0, n - 1]));
    const outs = tidy(() => {
      const ce = ops.crossEntropy(t, targets, { reduction: "none" });
      ce.sum().backward();
      return [ops.softmax(t), ops.logSoftmax(t), ce];
    });
    const [sm, lsm, ce, grad] = await readAll([...outs, t.grad!]);
    assertNoGpuErrors();
    const p = softmaxRef(x).data;
    assertClose(`softmax n=${n}`, sm, p, 1e-6, 1e-5);
    assertClose(`logSoftmax n=${n}`, lsm, softmaxRef(x, true).data, 1e-5, 1e-5);
    assertClose(`crossEntropy n=${n}`, ce, crossEntropyRef(x, [1, 0, n - 1], -100, "none").data);
    // d Σ loss / d x = softmax − one-hot(target)
    const want = p.map((v, i) => v - (i % n === [1, 0, n - 1][Math.floor(i / n)] ? 1 : 0));
    assertClose(`crossEntropy gradient n=${n}`, grad, want, 1e-6, 1e-5);
    for (const o of [...outs, t, targets]) o.dispose();
  }
});

Deno.test("long reductions: sum, mean and max of millions of elements, column sums past 65,535 chunks", async () => {
  await setup();
  // 6M elements to one output: one workgroup used to loop 23k times per thread, past llvmpipe's
  // silent 65,535-iteration cap (the sum came out as 5,592,320); the max sits at the last element.
  const n = 6_000_000;
  const host = new Float32Array(n);
  for (let i = 0; i < n; i++) host[i] = (i % 7) - 3; // Σ over whole periods of 7 is 0
  host[n - 1] = 5;
  const x = tensor(host);
  const ones = tensor(new Float32Array(n).fill(1), [n / 4, 4]);
  const outs = tidy(() => [
    ops.sum(x),
    ops.max(x),
    ops.mean(ones),
    ops.sum(ones, [0, 1]),
    ops.sum(ones, 0), // [4]: the column-sum path
  ]);
  const got = await readAll(outs);
  assertNoGpuErrors();
  let s = 0;
  for (let i = 0; i < n; i++) s += host[i];
  assertSame("sum of 6M", got[0], [s]);
  assertSame("max of 6M", got[1], [5]);
  assertSame("mean of 6M ones", got[2], [1]);
  assertSame("sum of 6M ones over both axes", got[3], [n]);
  assertSame("column sums of [1.5M, 4]", got[4], [n / 4, n / 4, n / 4, n / 4]);
  for (const t of [...outs, x, ones]) t.dispose();
  // 4.3M rows: 67k chunks of 64 rows were more workgroups than one grid dimension takes (the same
  // bound now holds for the norm weight gradients, src/autograd/norm.ts; too slow to run here)
  const rows = 4_300_000;
  const tall = tensor(new Float32Array(rows * 2).fill(0.5), [rows, 2]);
  const cs = tidy(() => ops.sum(tall, 0));
  const [colSums] = await readAll([cs]);
  assertNoGpuErrors();
  assertSame("column sums of [4.3M, 2]", colSums, [rows / 2, rows / 2]);
  for (const t of [cs, tall]) t.dispose();
});

// `x` broadcast to `shape` (a copy), for the references.
function broadcastArr(x: Arr, shape: number[]): Arr {
  return mapN((v) => v, x, arr(new Float64Array(shape.reduce((p, d) => p * d, 1)), shape));
}

Deno.test("matmul inside autograd: batch broadcasting with transposed views on both operands", async () => {
  await setup();
  const rng = new Rng(41);
  const tol = { fwd: [1e-4, 1e-4] as [number, number] };
  // [aShape, bShape] as stored; `t` marks operands passed as a transposed view
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[2, 3, 4], [1, 4, 5], false, false],
    [[1, 3, 4], [2, 4, 5], false, false],
    [[3, 4], [2, 4, 5], false, false],
    [[2, 1, 4, 3], [3, 5, 4], true, true], // aᵀ [2,1,3,4] · bᵀ [3,4,5] → [2,3,3,5]
    [[2, 4, 3], [2, 5, 4], true, true], // equal batches, both transposed, read in place
    [[4, 3], [2, 2, 5, 4], true, true],
  ];
  for (const [sa, sb, ta, tb] of cases) {
    const T = (x: Arr, t: boolean) => (t ? transposeRef(x) : x);
    await checkOp({
      name: `matmul ${JSON.stringify(sa)}${ta ? "ᵀ" : ""}·${JSON.stringify(sb)}${tb ? "ᵀ" : ""}`,
      inputs: [randArr(rng, sa), randArr(rng, sb)],
      gpu: ([a, b]) => ops.matmul(ta ? a.transpose() : a, tb ? b.transpose() : b),
      ref: ([a, b]) => {
        const A = T(a, ta), B = T(b, tb);
        const ab = A.shape.slice(0, -2), bb = B.shape.slice(0, -2);
        const n = Math.max(ab.length, bb.length);
        const batch = Array.from({ length: n }, (_, i) => {
          const da = ab[ab.length - n + i] ?? 1, db = bb[bb.length - n + i] ?? 1;
          return da === 1 ? db : da;
        });
        return matmulRef(
          broadcastArr(A, [...batch, ...A.shape.slice(-2)]),
          broadcastArr(B, [...batch, ...B.shape.slice(-2)]),
        );
      },
      ...tol,
    });
  }
  const a = up(randArr(rng, [2, 3, 4])), b = up(randArr(rng, [3, 4, 5]));
  assert.throws(() => ops.matmul(a, b), /matmul: batch axes of \[2,3,4\] and \[3,4,5\]/);
  assert.throws(() => ops.matmul(up(arr([1, 2], [2])), b), /at least 2 axes/);
});

Deno.test("NaN propagates through maximum, minimum, clamp, relu and max (never a finite value)", async () => {
  await setup();
  const v = [NaN, 5, -5, 0, 0.25, NaN, -Infinity, 2];
  const x = up(arr(v, [2, 4]));
  const y = up(arr([0, NaN, 1, 1, NaN, NaN, 0, 3], [2, 4]));
  const outs = tidy(() => [
    ops.maximum(x, 0), // scalar path
    ops.minimum(x, 0),
    ops.maximum(x, y), // vec4 path
    ops.minimum(y, x),
    ops.maximum(x.transpose(), y.transpose()), // strided path
    ops.clamp(x, -1, 1),
    ops.relu(x),
    ops.max(x, 1),
    ops.max(x.transpose(), 0),
  ]);
  const got = await readAll(outs);
  assertNoGpuErrors();
  const nanMax = (
    a: number,
    b: number,
  ) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b));
  const nanMin = (
    a: number,
    b: number,
  ) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b));
  const yv = [0, NaN, 1, 1, NaN, NaN, 0, 3];
  const T = (a: number[]) => [0, 4, 1, 5, 2, 6, 3, 7].map((i) => a[i]);
  assertSame("maximum(x, 0)", got[0], v.map((a) => nanMax(a, 0)));
  assertSame("minimum(x, 0)", got[1], v.map((a) => nanMin(a, 0)));
  assertSame("maximum(x, y)", got[2], v.map((a, i) => nanMax(a, yv[i])));
  assertSame("minimum(y, x)", got[3], v.map((a, i) => nanMin(yv[i], a)));
  assertSame("maximum(xᵀ, yᵀ)", got[4], T(v.map((a, i) => nanMax(a, yv[i]))));
  assertSame("clamp", got[5], v.map((a) => (Number.isNaN(a) ? NaN : Math.min(Math.max(a, -1), 1))));
  assertSame("relu", got[6], v.map((a) => (Number.isNaN(a) ? NaN : Math.max(a, 0))));
  assertSame("max over rows", got[7], [NaN, NaN]);
  assertSame("max over columns of xᵀ", got[8], [NaN, NaN]);
  for (const t of [...outs, x, y]) t.dispose();
});

Deno.test("elementwise ops past 65,535 workgroups run on a 2-D grid and reach every element", async () => {
  await setup();
  const n = 17_000_000; // 66,407 workgroups of 256 in the strided kernels
  const outs = tidy(() => {
    const t = ops.transpose(
      ops.reshape(ops.affine(ops.reshape(full([n], 1), [2, n / 2]), 1), [2, n / 2]),
    );
    const iota = tensor([1, 2], [1, 2]);
    return [ops.add(t, iota), ops.neg(t)]; // strided add; the copy of a strided view, then vec4
  });
  const [sum, neg] = await readAll(outs);
  assertNoGpuErrors();
  let bad = -1;
  for (let i = 0; i < n && bad < 0; i++) {
    if (sum[i] !== 2 + (i % 2) || neg[i] !== -1) bad = i;
  }
  assert.equal(bad, -1, `element ${bad}: got ${sum[bad]} and ${neg[bad]}`);
  for (const t of outs) t.dispose();
});

Deno.test("ops on strided views: a slice with an offset and a transpose, forward and backward", async () => {
  await setup();
  const rng = new Rng(77);
  // x [5, 6] → rows 1..4 (offset 6) → transposed [6, 3]: neither contiguous nor at offset 0
  const view = (t: Tensor) => ops.transpose(ops.slice(t, 0, 1, 4));
  const viewRef = (a: Arr) => transposeRef(sliceRef(a, 0, 1, 4));
  const ids = [2, 0, 1, 1, 2, 0];
  const idsT = tensor(Int32Array.from(ids));
  const cases: Array<[string, (v: Tensor) => Tensor, (v: Arr) => Arr]> = [
    [
      "add of a row",
      (v) => ops.add(v, up(arr([1, 2, 3], [3]))),
      (v) => mapN((p, q) => p + q, v, arr([1, 2, 3], [3])),
    ],
    ["sum over axis 0", (v) => ops.sum(v, 0), (v) => reduceRef(v, [0], "sum")],
    ["max over axis 1", (v) => ops.max(v, 1, true), (v) => reduceRef(v, [1], "max", true)],
    ["softmax", (v) => ops.softmax(v), (v) => softmaxRef(v)],
    [
      "crossEntropy",
      (v) => ops.crossEntropy(v, idsT),
      (v) => crossEntropyRef(v, ids, -100, "mean"),
    ],
    ["gatherLast", (v) => ops.gatherLast(v, idsT), (v) => gatherLastRef(v, ids)],
    [
      "matmul",
      (v) => ops.matmul(v, up(arr([1, -1, 2, 0.5, 3, 1], [3, 2]))),
      (v) => matmulRef(v, arr([1, -1, 2, 0.5, 3, 1], [3, 2])),
    ],
    [
      "embedding (the view as table)",
      (v) => ops.embedding(v, idsT),
      (v) => embeddingRef(v, ids, [6]),
    ],
  ];
  for (const [name, gpu, ref] of cases) {
    await checkOp({
      name: `${name} of a sliced, transposed view`,
      inputs: [randArr(rng, [5, 6])],
      gpu: ([x]) => gpu(view(x)),
      ref: ([x]) => ref(viewRef(x)),
      fwd: [1e-5, 1e-4],
    });
  }
  idsT.dispose();
});

Deno.test("sum, mean and max over every subset of axes, keepDims or not, of plain and permuted tensors", async () => {
  await setup();
  const rng = new Rng(12);
  const shape = [3, 1, 5, 7];
  const xa = randArr(rng, shape);
  xa.data[17] = xa.data[18] = 9; // a tie at the max
  const x = up(xa);
  const perm = [2, 0, 3, 1];
  const xp = ops.permute(x, perm);
  const xpa = permuteRef(xa, perm);
  const jobs: Array<[string, Tensor, Arr]> = [];
  const outs = tidy(() => {
    const ts: Tensor[] = [];
    for (let m = 0; m < 16; m++) {
      const axes = [0, 1, 2, 3].filter((a) => m & (1 << a));
      for (const keep of [false, true]) {
        for (const op of ["sum", "mean", "max"] as const) {
          for (const [t, a, name] of [[x, xa, "x"], [xp, xpa, "permuted x"]] as const) {
            const y = ops[op](t, axes, keep);
            ts.push(y);
            jobs.push([
              `${op} of ${name} over [${axes}] keepDims ${keep}`,
              y,
              reduceRef(a, axes, op, keep),
            ]);
          }
        }
      }
    }
    return ts;
  });
  const got = await readAll(outs);
  assertNoGpuErrors();
  jobs.forEach(([name, y, want], i) => {
    assert.deepEqual(y.shape, want.shape, `${name}: shape`);
    assertClose(name, got[i], want.data, 1e-4, 1e-4);
  });
  for (const t of [...outs, x]) t.dispose();
  // a strided reduction of 16,900 elements per output takes the two-pass path
  const big = randArr(rng, [130, 3, 130]);
  const bt = up(big);
  const two = tidy(() => [ops.sum(ops.permute(bt, [1, 0, 2]), [1, 2], true), ops.max(bt, [0, 2])]);
  const [s2, m2] = await readAll(two);
  assertClose("two-pass strided sum", s2, reduceRef(big, [0, 2], "sum").data, 1e-3, 1e-4);
  assertClose("two-pass strided max", m2, reduceRef(big, [0, 2], "max").data, 1e-30, 0);
  for (const t of [...two, bt]) t.dispose();
});

Deno.test("-inf logits: documented +inf/NaN where the math has them; ignored rows never leak NaN", async () => {
  await setup();
  const NI = -Infinity;
  const xa = arr([NI, NI, NI, 1, 2, 3, NI, 0, 1, NI, NI, NI], [4, 3]);
  const x = up(xa, true);
  const ign = tensor(new Int32Array([-100, 2, 1, -100])); // the all -inf rows are ignored
  const all = tensor(new Int32Array([-100, -100, -100, -100]));
  const bad = tensor(new Int32Array([0, 2, 0, 1])); // row 0 all -inf, row 2's target is -inf
  const outs = tidy(() => {
    const l = ops.crossEntropy(x, ign);
    l.backward();
    return [
      l,
      ops.crossEntropy(x, all),
      ops.crossEntropy(x, bad, { reduction: "none" }),
      ops.softmax(x),
      ops.logSoftmax(x),
    ];
  });
  const [l, lAll, per, sm, lsm, g] = await readAll([...outs, x.grad!]);
  assertNoGpuErrors();
  const p = softmaxRef(xa).data; // NaN on the all -inf rows
  assertClose(
    "loss with -inf rows ignored",
    l,
    crossEntropyRef(xa, [-100, 2, 1, -100], -100, "mean").data,
  );
  assertSame("every target ignored", lAll, [0]);
  assertSame("per-row loss: all -inf row, -inf target", [per[0], per[2]], [NaN, Infinity]);
  // gradient: (softmax − one-hot) / 2 valid rows on rows 1 and 2, exactly 0 on the ignored rows
  const want = Array.from({ length: 12 }, (_, i) => {
    const r = Math.floor(i / 3), t = [-100, 2, 1, -100][r];
    return t < 0 ? 0 : (p[i] - (i % 3 === t ? 1 : 0)) / 2;
  });
  assertClose("gradient", g, want, 1e-6, 1e-5);
  assertSame("softmax", sm, p, 1e-5);
  assertSame("logSoftmax", lsm, softmaxRef(xa, true).data, 1e-5);
  for (const t of [...outs, x, ign, all, bad]) t.dispose();
});

Deno.test("a tensor used several times in one graph (directly and through views) sums its gradients", async () => {
  await setup();
  const rng = new Rng(8);
  const cases: Array<[string, (x: Tensor) => Tensor, (x: Arr) => Arr]> = [
    ["x·x", (x) => ops.mul(x, x), (x) => mapN((a) => a * a, x)],
    ["x + x", (x) => ops.add(x, x), (x) => mapN((a) => 2 * a, x)],
    [
      "xᵀ·x elementwise",
      (x) => ops.mul(x.transpose(), x),
      (x) => mapN((a, b) => a * b, transposeRef(x), x),
    ],
    ["x @ x", (x) => ops.matmul(x, x), (x) => matmulRef(x, x)],
    [
      "slices of x added",
      (x) => ops.add(x.slice(0, 0, 2), x.slice(0, 1, 3)),
      (x) => mapN((a, b) => a + b, sliceRef(x, 0, 0, 2), sliceRef(x, 0, 1, 3)),
    ],
    [
      "softmax(x)·x",
      (x) => ops.mul(ops.softmax(x), x),
      (x) => mapN((a, b) => a * b, softmaxRef(x), x),
    ],
  ];
  for (const [name, gpu, ref] of cases) {
    await checkOp({
      name,
      inputs: [randArr(rng, [3, 3])],
      gpu: ([x]) => gpu(x),
      ref: ([x]) => ref(x),
    });
  }
});

Deno.test("backward computes no gradient for a broadcast input that does not need one", async () => {
  await setup();
  const rng = new Rng(41);
  const xa = randArr(rng, [16, 8]), ca = randArr(rng, [8]);
  // the kernels backward dispatches: summing a gradient down to c's shape is a reduction
  const backwardKernels = async (constNeedsGrad: boolean) => {
    const x = up(xa, true), c = up(ca, constNeedsGrad);
    const rt = runtime();
    const names: string[] = [];
    const dispatch = rt.dispatch;
    tidy(() => {
      const y = ops.sum(ops.mul(ops.add(x, c), ops.sub(x, c)));
      rt.dispatch = (d) => {
        names.push(d.kernel.name);
        dispatch.call(rt, d);
      };
      try {
        y.backward();
      } finally {
        rt.dispatch = dispatch;
      }
    });
    // d/dx Σ (x + c)(x − c) = 2x whether or not c needs a gradient
    const [gx] = await readAll([x.grad!]);
    assertClose("dx", gx, xa.data.map((v) => 2 * v), 1e-5, 1e-5);
    assert.equal(c.grad === null, !constNeedsGrad);
    x.dispose();
    c.dispose();
    return names;
  };
  assert.ok((await backwardKernels(true)).includes("ops_reduce"), "c's gradient is a reduction");
  const without = await backwardKernels(false);
  assert.ok(!without.includes("ops_reduce"), `reduced for a constant: ${without.join(", ")}`);
  assertNoGpuErrors();
});
