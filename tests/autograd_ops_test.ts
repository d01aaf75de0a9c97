import { ops } from "../src/autograd/mod.ts";
import {
  arr,
  attentionRef,
  concatRef,
  crossEntropyRef,
  embeddingRef,
  gatherLastRef,
  layerNormRef,
  matmulRef,
  permuteRef,
  rmsNormRef,
  ropeRef,
  sliceRef,
  softmaxRef,
  transposeRef,
} from "../src/autograd/reference.ts";
import assert from "node:assert/strict";
import { readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, checkOp, randArr, setup, up } from "./autograd_util.ts";

const rng = new Rng(7);

Deno.test("softmax and log-softmax: peaked, flat and odd-length rows, other axes", async () => {
  await setup();
  const x = randArr(rng, [4, 7]);
  for (let i = 0; i < 7; i++) x.data[7 + i] = 0.25; // flat row
  x.data[14] = 30; // peaked row
  for (const log of [false, true]) {
    const name = log ? "logSoftmax" : "softmax";
    await checkOp({
      name,
      inputs: [x],
      gpu: ([t]) => (log ? ops.logSoftmax(t) : ops.softmax(t)),
      ref: ([t]) => softmaxRef(t, log),
    });
    await checkOp({
      name: `${name} axis 0`,
      inputs: [randArr(rng, [3, 2])],
      gpu: ([t]) => (log ? ops.logSoftmax(t, 0) : ops.softmax(t, 0)),
      ref: ([t]) => transposeRef(softmaxRef(transposeRef(t), log)),
    });
  }
  // a long row (more than one workgroup's width) and -inf entries (masked logits)
  await checkOp({
    name: "softmax 600",
    inputs: [randArr(rng, [2, 600], 3)],
    gpu: ([t]) => ops.softmax(t),
    ref: ([t]) => softmaxRef(t),
    gpuH: 0,
  });
  // rows of a multiple of 4 take the vec4 kernels: flat, peaked and -inf rows there too
  const v4 = randArr(rng, [3, 8]);
  for (let i = 0; i < 8; i++) v4.data[i] = -1.5;
  v4.data[9] = 25;
  for (const log of [false, true]) {
    await checkOp({
      name: `vec4 ${log}`,
      inputs: [v4],
      gpu: ([t]) => (log ? ops.logSoftmax(t) : ops.softmax(t)),
      ref: ([t]) => softmaxRef(t, log),
    });
  }
  const v4m = randArr(rng, [2, 4]);
  v4m.data[1] = v4m.data[6] = -Infinity;
  await checkOp({
    name: "vec4 -inf",
    inputs: [v4m],
    grads: [],
    gpu: ([t]) => ops.softmax(t),
    ref: ([t]) => softmaxRef(t),
  });
  const m = randArr(rng, [2, 5]);
  m.data[1] = m.data[3] = m.data[9] = -Infinity;
  await checkOp({
    name: "logSoftmax with -inf",
    inputs: [m],
    grads: [],
    gpu: ([t]) => ops.logSoftmax(t),
    ref: ([t]) => softmaxRef(t, true),
  });
});

Deno.test("cross-entropy (mean/sum/none, ignore index) and gatherLast", async () => {
  await setup();
  const x = randArr(rng, [2, 3, 11], 2);
  const ids = [3, -100, 0, 10, 10, -100];
  const t = tensor(new Int32Array(ids), [2, 3]);
  for (const reduction of ["mean", "sum", "none"] as const) {
    await checkOp({
      name: `crossEntropy ${reduction}`,
      inputs: [x],
      gpu: ([l]) => ops.crossEntropy(l, t, { reduction }),
      ref: ([l]) => crossEntropyRef(l, ids, -100, reduction),
    });
  }
  const allIgnored = tensor(new Int32Array(6).fill(-1), [2, 3]);
  await checkOp({
    name: "crossEntropy with every row ignored is 0, not NaN",
    inputs: [x],
    gpu: ([l]) => ops.crossEntropy(l, allIgnored, { ignoreIndex: -1 }),
    ref: ([l]) => crossEntropyRef(l, [-1, -1, -1, -1, -1, -1], -1, "mean"),
  });
  const gids = [1, 0, 10, 4, 4, 7];
  const g = tensor(new Int32Array(gids), [2, 3]);
  await checkOp({
    name: "gatherLast of logSoftmax",
    inputs: [x],
    gpu: ([l]) => ops.gatherLast(ops.logSoftmax(l), g),
    ref: ([l]) => gatherLastRef(softmaxRef(l, true), gids),
  });
});

Deno.test("embedding: repeated ids, deterministic scatter-add backward", async () => {
  await setup();
  const ids = [4, 1, 4, 0, 4, 2, 1];
  const it = tensor(new Int32Array(ids), [7]);
  await checkOp({
    name: "embedding",
    inputs: [randArr(rng, [6, 5])],
    gpu: ([w]) => ops.embedding(w, it),
    ref: ([w]) => embeddingRef(w, ids, [7]),
  });
  // more positions than one workgroup (the rank kernel streams ids in tiles) and a frequent id
  const many = Array.from({ length: 600 }, (_, i) => (i % 3 === 0 ? 7 : rng.int(50)));
  const im = tensor(new Int32Array(many), [600]);
  await checkOp({
    name: "embedding 600 ids",
    inputs: [randArr(rng, [50, 3])],
    gpu: ([w]) => ops.embedding(w, im),
    ref: ([w]) => embeddingRef(w, many, [600]),
    gpuH: 0,
  });
  const grads = [];
  for (let run = 0; run < 2; run++) {
    const w = up(randArr(new Rng(5), [50, 3]), true);
    tidy(() => ops.embedding(w, im).mul(ops.embedding(w, im)).sum().backward());
    grads.push([...(await readAll([w.grad!]))[0]]);
    w.dispose();
  }
  assert.deepEqual(grads[0], grads[1], "bit-identical gradients across runs");
  const ids2 = [[0, 3], [3, 3]];
  const it2 = tensor(new Int32Array(ids2.flat()), [2, 2]);
  await checkOp({
    name: "embedding 2-D ids",
    inputs: [randArr(rng, [4, 3])],
    gpu: ([w]) => ops.embedding(w, it2),
    ref: ([w]) => embeddingRef(w, ids2.flat(), [2, 2]),
  });
});

Deno.test("RMSNorm, LayerNorm, RoPE (both layouts, offset)", async () => {
  await setup();
  for (const [R, C] of [[3, 5], [2, 300], [150, 6]]) {
    const x = randArr(rng, [R, C], 2, 0.5);
    const w = randArr(rng, [C], 0.5, 1);
    const b = randArr(rng, [C]);
    await checkOp({
      name: `rmsNorm C=${C}`,
      inputs: [x, w],
      gpu: ([a, g]) => ops.rmsNorm(a, g, 1e-5),
      ref: ([a, g]) => rmsNormRef(a, g, 1e-5),
      gpuH: C > 100 || R > 100 ? 0 : 1e-2,
    });
    await checkOp({
      name: `layerNorm C=${C}`,
      inputs: [x, w, b],
      gpu: ([a, g, c]) => ops.layerNorm(a, g, c, 1e-5),
      ref: ([a, g, c]) => layerNormRef(a, g, c, 1e-5),
      gpuH: C > 100 || R > 100 ? 0 : 1e-2,
    });
  }
  await checkOp({
    name: "rope bthd",
    inputs: [randArr(rng, [2, 5, 3, 8])],
    gpu: ([x]) => ops.rope(x, { base: 100 }),
    ref: ([x]) => ropeRef(x, "bthd", 0, 100),
  });
  await checkOp({
    name: "rope bhtd offset",
    inputs: [randArr(rng, [1, 2, 4, 6])],
    gpu: ([x]) => ops.rope(x, { layout: "bhtd", offset: 3 }),
    ref: ([x]) => ropeRef(x, "bhtd", 3, 10000),
  });
});

Deno.test("matmul: 2-D, folded leading axes, batched, transposed operands", async () => {
  await setup();
  const tol = { fwd: [1e-4, 1e-4] as [number, number] };
  await checkOp({
    name: "matmul 2-D",
    inputs: [randArr(rng, [5, 3]), randArr(rng, [3, 7])],
    gpu: ([a, b]) => ops.matmul(a, b),
    ref: ([a, b]) => matmulRef(a, b),
    ...tol,
  });
  await checkOp({
    name: "matmul [2,3,4]·[4,5]",
    inputs: [randArr(rng, [2, 3, 4]), randArr(rng, [4, 5])],
    gpu: ([a, b]) => ops.matmul(a, b),
    ref: ([a, b]) => matmulRef(a, b),
    ...tol,
  });
  await checkOp({
    name: "matmul batched",
    inputs: [randArr(rng, [2, 2, 3, 4]), randArr(rng, [2, 2, 4, 5])],
    gpu: ([a, b]) => ops.matmul(a, b),
    ref: ([a, b]) => matmulRef(a, b),
    ...tol,
  });
  await checkOp({
    name: "matmul aᵀ·b",
    inputs: [randArr(rng, [4, 5]), randArr(rng, [4, 3])],
    gpu: ([a, b]) => ops.matmul(a.transpose(), b),
    ref: ([a, b]) => matmulRef(transposeRef(a), b),
    ...tol,
  });
  await checkOp({
    name: "matmul a·bᵀ batched",
    inputs: [randArr(rng, [3, 2, 4]), randArr(rng, [3, 6, 4])],
    gpu: ([a, b]) => ops.matmul(a, b.transpose()),
    ref: ([a, b]) => matmulRef(a, transposeRef(b)),
    ...tol,
  });
  await checkOp({
    name: "matmul aᵀ·bᵀ",
    inputs: [randArr(rng, [3, 2]), randArr(rng, [5, 3])],
    gpu: ([a, b]) => ops.matmul(a.transpose(), b.transpose()),
    ref: ([a, b]) => matmulRef(transposeRef(a), transposeRef(b)),
    ...tol,
  });
});

Deno.test("views: reshape of a view, permute, slice, expand, concat", async () => {
  await setup();
  await checkOp({
    name: "permute+reshape",
    inputs: [randArr(rng, [2, 3, 4])],
    gpu: ([x]) => x.permute([2, 0, 1]).reshape([4, 6]),
    ref: ([x]) => ({ ...permuteRef(x, [2, 0, 1]), shape: [4, 6] }),
  });
  await checkOp({
    name: "slice",
    inputs: [randArr(rng, [3, 7])],
    gpu: ([x]) => x.slice(1, 2, 6).mul(x.slice(1, 0, 4)),
    ref: ([x]) => {
      const a = sliceRef(x, 1, 2, 6), b = sliceRef(x, 1, 0, 4);
      return arr(a.data.map((v, i) => v * b.data[i]), a.shape);
    },
  });
  await checkOp({
    name: "expand",
    inputs: [randArr(rng, [3, 1])],
    gpu: ([x]) => x.expand([2, 3, 4]).contiguous(),
    ref: ([x]) =>
      arr(Array.from({ length: 24 }, (_, i) => x.data[Math.floor(i / 4) % 3]), [2, 3, 4]),
  });
  await checkOp({
    name: "concat",
    inputs: [randArr(rng, [2, 3]), randArr(rng, [2, 1]), randArr(rng, [2, 2])],
    gpu: (xs) => ops.concat(xs, 1),
    ref: (xs) => concatRef(xs, 1),
  });
  await checkOp({
    name: "concat axis 0",
    inputs: [randArr(rng, [1, 3]), randArr(rng, [2, 3])],
    gpu: (xs) => ops.concat(xs, 0),
    ref: (xs) => concatRef(xs, 0),
  });
});

Deno.test("causal self-attention with grouped-query heads", async () => {
  await setup();
  for (const [Hq, Hkv] of [[2, 2], [4, 2], [3, 1]]) {
    const [B, T, D] = [2, 5, 4];
    await checkOp({
      name: `attention Hq=${Hq} Hkv=${Hkv}`,
      inputs: [
        randArr(rng, [B, T, Hq, D]),
        randArr(rng, [B, T, Hkv, D]),
        randArr(rng, [B, T, Hkv, D]),
      ],
      gpu: ([q, k, v]) => ops.causalSelfAttention(q, k, v),
      ref: ([q, k, v]) => attentionRef(q, k, v),
      fwd: [1e-4, 1e-4],
      gpuH: 0,
    });
  }
  // queries as the last positions of a longer key sequence (KV-cache decoding: Tq = 1 and Tq = 2)
  for (const Tq of [1, 2]) {
    await checkOp({
      name: `attention Tq=${Tq} Tk=5`,
      inputs: [randArr(rng, [1, Tq, 4, 4]), randArr(rng, [1, 5, 2, 4]), randArr(rng, [1, 5, 2, 4])],
      gpu: ([q, k, v]) => ops.causalSelfAttention(q, k, v),
      ref: ([q, k, v]) => attentionRef(q, k, v),
      fwd: [1e-4, 1e-4],
      gpuH: 0,
    });
  }
  // the first query row sees only itself: its output is v at t = 0
  const q = randArr(rng, [1, 3, 1, 2]),
    k = randArr(rng, [1, 3, 1, 2]),
    v = randArr(rng, [1, 3, 1, 2]);
  const [o] = await readAll([ops.causalSelfAttention(up(q), up(k), up(v))]);
  assertNoGpuErrors();
  assertClose("attention row 0", o.slice(0, 2), v.data.slice(0, 2), 1e-6, 1e-6);
});
