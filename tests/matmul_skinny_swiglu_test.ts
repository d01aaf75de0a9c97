// swigluMatmul (src/autograd/swiglu_matmul.ts): the skinny matmul reading A through SwiGLU's gate
// (kernels/matmul_skinny_swiglu.wgsl), forced on this CPU adapter, against the float64 reference
// of silu(gate)·up · w and against the composed GPU ops: M = 1, odd, 64; I odd (scalar prelude)
// and a multiple of 4 (vec4); N odd; w stored [N, I] (read transposed, at an offset in an arena)
// and [I, N]; K split across workgroups, forced and as planned; saturated gates (±30) and -0.
// Then: the gate equals swigluJoined's to f32 rounding (identity weight), the composed path with
// gradients when one is needed, the choice by adapter, and the errors.
import assert from "node:assert/strict";
import { noGrad, ops } from "../src/autograd/mod.ts";
import { swigluFusedObstacle, type SwigluMatmulOptions } from "../src/autograd/swiglu_matmul.ts";
import { type Arr, mapN, matmulRef, sliceRef } from "../src/autograd/reference.ts";
import { ComputeBatch, type Dispatch } from "../src/gpu/mod.ts";
import {
  chooseSkinnyTiling,
  skinnyCost,
  skinnyMaxM,
  type SkinnyOverride,
  skinnyVec4,
  withSkinnyMaxM,
} from "../src/tensor/matmul/mod.ts";
import { packTensors, readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { decodeStep, KVCache } from "../src/nn/kv_cache.ts";
import type { ModelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";
import { asGpu, assertNoGpuErrors, checkOp, randArr, setup } from "./autograd_util.ts";

const rt = await setup();
const U = 2 ** -24; // f32 unit roundoff

/** A recording batch: the names of the kernels dispatched into it. */
class SpyBatch extends ComputeBatch {
  kernels: string[] = [];
  override dispatch(d: Dispatch): this {
    this.kernels.push(d.kernel.name);
    return super.dispatch(d);
  }
}

interface Case {
  /** Leading axes of x (their product is M). */
  lead: number[];
  I: number;
  N: number;
  /** w stored [N, I] and passed as its transpose (as the MLP passes wDown). */
  transB: boolean;
  force?: SkinnyOverride;
}

const rowsOf = (c: Case) => c.lead.reduce((p, d) => p * d, 1);
const nameOf = (c: Case) =>
  `M=${rowsOf(c)} I=${c.I} N=${c.N} ${c.transB ? "NT" : "NN"}` +
  (c.force ? ` ${JSON.stringify(c.force)}` : "");

// x [M, 2I]: normal draws (scale 2) with saturating gates (±30), zeros and -0 sprinkled over both
// halves.
function makeX(rng: Rng, M: number, I: number): Float32Array {
  const x = new Float32Array(M * 2 * I);
  const special = [30, -30, -0, 0];
  for (let i = 0; i < x.length; i++) {
    x[i] = i % 11 === 3 ? special[(i / 11 | 0) % 4] : 2 * rng.normal();
  }
  return x;
}

const silu = (v: number) => v / (1 + Math.exp(-v));

/**
 * The float64 reference y = (silu(g)·u) · op(w) and, per output, a bound on an f32 kernel's
 * error: the dot product's γ_{K+2}·Σ|a·b| (any summation order) plus, per term, the f32 gate's
 * own error (WGSL's exp is within 3 + 2|x| ulp; the reciprocal and three products a few more).
 */
function reference(x: Float32Array, w: Float32Array, M: number, I: number, N: number, tB: boolean) {
  const want = new Float64Array(M * N), bound = new Float64Array(M * N);
  const gamma = ((I + 2) * U) / (1 - (I + 2) * U);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0, abs = 0, gate = 0;
      for (let k = 0; k < I; k++) {
        const g = x[m * 2 * I + k], a = silu(g) * x[m * 2 * I + I + k];
        const t = a * (tB ? w[n * I + k] : w[k * N + n]);
        s += t;
        abs += Math.abs(t);
        gate += Math.abs(t) * (16 + 2 * Math.abs(g)) * U;
      }
      want[m * N + n] = s;
      bound[m * N + n] = gamma * abs + gate + 1e-30;
    }
  }
  return { want, bound };
}

// Largest |got − want| and largest error / bound.
function errors(got: ArrayLike<number>, want: ArrayLike<number>, bound: ArrayLike<number>) {
  let maxError = 0, maxRatio = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    maxError = Number.isNaN(e) ? NaN : Math.max(maxError, e);
    maxRatio = Number.isNaN(e) ? Infinity : Math.max(maxRatio, e / bound[i]);
  }
  return { maxError, maxRatio };
}

// The weight as swigluMatmul sees it: the transpose of [N, I] at an offset inside an arena (as
// a model's wDown), or a plain [I, N].
function weight(w: Float32Array, c: Case): { w: Tensor; dispose: () => void } {
  if (!c.transB) {
    const t = tensor(w, [c.I, c.N]);
    return { w: t, dispose: () => t.dispose() };
  }
  const [pad, stored] = packTensors([tensor(new Float32Array(5), [5]), tensor(w, [c.N, c.I])]);
  assert.ok(stored.offset > 0, "the weight sits at an offset in its arena");
  return {
    w: ops.transpose(stored),
    dispose: () => [pad, stored].forEach((t) => t.dispose()),
  };
}

interface Run {
  fused: Float32Array;
  composed: Float32Array;
  gated: Float32Array;
  kernels: string[];
}

// The fused product (kernels recorded), the composed one and the composed gate, for one case.
async function run(c: Case, x32: Float32Array, w32: Float32Array): Promise<Run> {
  const x = tensor(x32, [...c.lead, 2 * c.I]);
  const { w, dispose } = weight(w32, c);
  rt.flush(); // the arena's copies first: the spy batch is submitted on its own
  const spy = new SpyBatch(rt.gpu);
  const opts: SwigluMatmulOptions = { fused: true, skinnyTiling: c.force };
  const y = noGrad(() => rt.recordInto(spy, () => ops.swigluMatmul(x, w, opts)));
  spy.submit();
  const [z, g] = noGrad(() => [ops.swigluMatmul(x, w, { fused: false }), ops.swigluJoined(x)]);
  assert.deepEqual(y.shape, [...c.lead, c.N]);
  assert.deepEqual(z.shape, y.shape);
  const [fused, composed, gated] = (await readAll([y, z, g])) as Float32Array[];
  [x, y, z, g].forEach((t) => t.dispose());
  dispose();
  assertNoGpuErrors();
  return { fused, composed, gated, kernels: spy.kernels };
}

async function check(c: Case, seed: number): Promise<Run> {
  const rng = new Rng(seed);
  const M = rowsOf(c);
  const x = makeX(rng, M, c.I);
  const w = Float32Array.from({ length: c.I * c.N }, () => rng.normal());
  const r = await run(c, x, w);
  const { want, bound } = reference(x, w, M, c.I, c.N, c.transB);
  const vsRef = errors(r.fused, want, bound);
  // Against the composed path: the float64 product of its f32 gate, bounded as a plain matmul's
  // (the two gates agree to a couple of ulps: see the identity-weight test).
  const wantC = new Float64Array(M * c.N), boundC = new Float64Array(M * c.N);
  const gamma = ((c.I + 4) * U) / (1 - (c.I + 4) * U);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < c.N; n++) {
      let s = 0, abs = 0;
      for (let k = 0; k < c.I; k++) {
        const t = r.gated[m * c.I + k] * (c.transB ? w[n * c.I + k] : w[k * c.N + n]);
        s += t;
        abs += Math.abs(t);
      }
      wantC[m * c.N + n] = s;
      boundC[m * c.N + n] = gamma * abs + 1e-30;
    }
  }
  const vsComposedGate = errors(r.fused, wantC, boundC);
  const vsComposed = errors(r.fused, r.composed, new Float64Array(M * c.N).fill(1));
  const scalar = !skinnyVec4({ N: c.N, K: c.I, transB: c.transB });
  console.log(
    `${nameOf(c).padEnd(44)} ${r.kernels.join(" + ")}: max |err| vs float64 ` +
      `${vsRef.maxError.toExponential(2)} (${vsRef.maxRatio.toFixed(3)} of bound), vs composed ` +
      `${vsComposed.maxError.toExponential(2)}, vs float64 of composed gate ` +
      `${vsComposedGate.maxRatio.toFixed(3)} of bound`,
  );
  assert.ok(vsRef.maxRatio <= 1, `${nameOf(c)}: ${JSON.stringify(vsRef)} against float64`);
  assert.ok(vsComposedGate.maxRatio <= 1, `${nameOf(c)}: against the composed gate`);
  const re = new RegExp(`^matmul_skinny${scalar ? "_scalar" : ""}_swiglu(\\+aliased)?$`);
  assert.match(r.kernels[0], re, nameOf(c));
  const split = r.kernels.length > 1;
  assert.deepEqual(r.kernels.slice(1), split ? ["matmul_splitk_reduce"] : [], nameOf(c));
  if (c.force?.kSplits) assert.equal(split, c.force.kSplits > 1, nameOf(c));
  return r;
}

Deno.test("swigluMatmul fused: scalar prelude (odd I) matches float64 and the composed path", async () => {
  const cases: Case[] = [
    { lead: [1], I: 7, N: 5, transB: true },
    { lead: [1], I: 8, N: 6, transB: false }, // I aligned but B's rows (N) are not
    { lead: [13, 1], I: 9, N: 9, transB: false },
    { lead: [64], I: 11, N: 17, transB: true, force: { colGroups: 8 } },
    { lead: [4, 16], I: 5, N: 3, transB: true, force: { colGroups: 1, prefetch: false } },
    { lead: [64], I: 203, N: 7, transB: true, force: { kSplits: 2 } },
  ];
  for (const [i, c] of cases.entries()) {
    assert.ok(!skinnyVec4({ N: c.N, K: c.I, transB: c.transB }), nameOf(c));
    await check(c, 100 + i);
  }
});

Deno.test("swigluMatmul fused: vec4 prelude (I a multiple of 4), column blocks and K splits", async () => {
  const cases: Case[] = [
    { lead: [1], I: 12, N: 5, transB: true },
    { lead: [13, 1], I: 12, N: 9, transB: true },
    { lead: [37], I: 16, N: 40, transB: false, force: { colGroups: 1 } },
    { lead: [64], I: 20, N: 33, transB: true },
    { lead: [64], I: 24, N: 31, transB: true, force: { colGroups: 8 } },
    { lead: [5], I: 300, N: 11, transB: true, force: { kSplits: 3 } },
    { lead: [9], I: 132, N: 20, transB: false, force: { kSplits: 4, prefetch: false } },
  ];
  for (const [i, c] of cases.entries()) {
    assert.ok(skinnyVec4({ N: c.N, K: c.I, transB: c.transB }), nameOf(c));
    await check(c, 200 + i);
  }
});

Deno.test("swigluMatmul fused: K split across workgroups as the planner chooses it", async () => {
  // The gate's cost tips this shape to a split that the plain product does not take.
  const [M, N, I] = [64, 128, 320];
  const planned = chooseSkinnyTiling(M, N, I, 65535, "swiglu");
  assert.equal(chooseSkinnyTiling(M, N, I).kSplits, 1);
  assert.ok(planned.kSplits > 1, JSON.stringify(planned));
  const plain = { ...planned, kSplits: 1 };
  assert.ok(skinnyCost(M, N, I, plain, "swiglu") > skinnyCost(M, N, I, plain));
  // As a GPU plans it (a CPU adapter never splits K: skinny.ts SKINNY_FALLBACK_TILING).
  const gpu = rt.gpu as { isFallback: boolean }, was = gpu.isFallback;
  gpu.isFallback = false;
  try {
    const r = await check({ lead: [M], I, N, transB: true }, 300);
    assert.equal(r.kernels.length, 2, "the product and the sum of its slices");
  } finally {
    gpu.isFallback = was;
  }
});

Deno.test("swigluMatmul fused: the gate is swigluJoined's to f32 rounding (identity weight)", async () => {
  // With w = identity every output is one gate value (the other terms are exact zeros), so the
  // fused gate is compared with the composed kernel's output element by element.
  for (const [I, M] of [[12, 7], [9, 64]]) {
    const rng = new Rng(400 + I);
    const x = makeX(rng, M, I);
    const eye = new Float32Array(I * I);
    for (let k = 0; k < I; k++) eye[k * I + k] = 1;
    const r = await run({ lead: [M], I, N: I, transB: true }, x, eye);
    let exact = 0, worst = 0;
    for (let i = 0; i < r.gated.length; i++) {
      const [a, b] = [r.fused[i], r.gated[i]];
      if (Object.is(a, b) || a === b) exact++;
      const want = silu(x[(i / I | 0) * 2 * I + (i % I)]) * x[(i / I | 0) * 2 * I + I + (i % I)];
      assert.ok(Math.abs(b - want) <= 1e-5 * Math.abs(want) + 1e-30, `composed gate ${i}`);
      worst = Math.max(worst, Math.abs(a - b) / Math.max(Math.abs(b) * U, 1e-45));
    }
    console.log(
      `I=${I} M=${M}: ${exact}/${r.gated.length} gate values bit-equal, worst ${worst} ulp`,
    );
    assert.ok(worst <= 4, `fused and composed gates differ by ${worst} ulp`);
  }
});

// Float64 reference of the whole op on Arrs (for checkOp's forward and finite differences).
function swigluMatmulRef([x, w]: Arr[]): Arr {
  const a = x.shape.length - 1, I = x.shape[a] / 2;
  const g = mapN((v, u) => silu(v) * u, sliceRef(x, a, 0, I), sliceRef(x, a, I, 2 * I));
  return matmulRef(g, w);
}

Deno.test("swigluMatmul: composed, with gradients, when a gradient is needed", async () => {
  const rng = new Rng(500);
  await checkOp({
    name: "swigluMatmul with gradients",
    inputs: [randArr(rng, [5, 14]), randArr(rng, [7, 6])],
    gpu: ([x, w]) => ops.swigluMatmul(x, w),
    ref: swigluMatmulRef,
  });
  // The kernels taken: with a gradient needed, the composed ops even when forced is not asked
  // and the adapter would fuse; forcing the fused kernel then is an error; under noGrad it runs.
  const x = tensor(Float32Array.from({ length: 3 * 8 }, () => rng.normal()), [3, 8]);
  const w = tensor(Float32Array.from({ length: 4 * 5 }, () => rng.normal()), [4, 5]);
  x.requiresGrad = true;
  assert.equal(swigluFusedObstacle(x, w, true), "a gradient is needed");
  assert.throws(
    () => ops.swigluMatmul(x, w, { fused: true }),
    /swigluMatmul: the fused kernel cannot run: a gradient is needed/,
  );
  const spy = new SpyBatch(rt.gpu);
  const y = rt.recordInto(spy, () => ops.swigluMatmul(x, w));
  spy.submit();
  assert.ok(y.node !== null, "recorded on the tape");
  assert.match(spy.kernels[0], /^ops_swiglu_joined/);
  assert.equal(swigluFusedObstacle(x, w, true), "a gradient is needed");
  assert.equal(noGrad(() => swigluFusedObstacle(x, w, true)), undefined);
  const z = noGrad(() => ops.swigluMatmul(x, w, { fused: true }));
  assert.equal(z.node, null);
  const [a, b] = await readAll([y, z]);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= 1e-5 * (1 + Math.abs(a[i])));
  }
  [x, w, y, z].forEach((t) => t.dispose());
  assertNoGpuErrors();
});

Deno.test("swigluMatmul: fused by default on GPUs, composed on CPU adapters or without the skinny kernel", async () => {
  const rng = new Rng(600);
  const [M, I, N] = [6, 8, 12];
  const x = tensor(Float32Array.from({ length: M * 2 * I }, () => rng.normal()), [M, 1, 2 * I]);
  const w = tensor(Float32Array.from({ length: I * N }, () => rng.normal()), [I, N]);
  // As a GPU chooses (fused), as this adapter chooses (fused on a GPU; on a CPU adapter the composed
  // gate, then the skinny product), and with the skinny kernel off (the gate, then tiled).
  const ys = ([["as a GPU", undefined], ["this adapter", undefined], ["off", 0]] as const).map((
    [how, rows],
  ) =>
    (how === "as a GPU" ? asGpu : <T>(f: () => T) => f())(() =>
      withSkinnyMaxM(rows, () => {
        const spy = new SpyBatch(rt.gpu);
        const y = noGrad(() => rt.recordInto(spy, () => ops.swigluMatmul(x, w)));
        spy.submit();
        const fuses = rows !== 0 && !rt.gpu.isFallback;
        assert.equal(noGrad(() => swigluFusedObstacle(x, w)) === undefined, fuses, how);
        assert.deepEqual(
          spy.kernels.map((k) => k.replace("+aliased", "")),
          fuses
            ? ["matmul_skinny_swiglu"]
            : ["ops_swiglu_joined_vec4", rows === 0 ? "matmul_tiled" : "matmul_skinny"],
          how,
        );
        return y;
      })
    )
  );
  assert.equal(skinnyMaxM(rt.gpu), 64, "64 rows on every adapter by default");
  const big = tensor(new Float32Array(65 * 2 * I), [65, 2 * I]);
  assert.match(noGrad(() => swigluFusedObstacle(big, w)) ?? "", /65 rows are over/);
  assert.throws(
    () => noGrad(() => ops.swigluMatmul(big, w, { fused: true })),
    /fused kernel cannot run: 65 rows are over the skinny kernel's 64/,
  );
  const [fused, ...others] = await readAll(ys);
  for (const other of others) {
    for (let i = 0; i < fused.length; i++) {
      assert.ok(Math.abs(fused[i] - other[i]) <= 1e-5 * (1 + Math.abs(fused[i])));
    }
  }
  [x, w, big, ...ys].forEach((t) => t.dispose());
});

Deno.test("swigluMatmul: shapes that do not fit are named", () => {
  const t = (shape: number[]) => tensor(new Float32Array(shape.reduce((p, d) => p * d, 1)), shape);
  const cases: Array<[number[], number[]]> = [
    [[3, 7], [3, 2]], // odd last axis
    [[3, 8], [5, 2]], // w's rows are not I
    [[8], [4, 2]], // x needs rows
    [[3, 8], [2, 4, 2, 1]], // w's rows are not I (batched)
  ];
  for (const [xs, ws] of cases) {
    const before = rt.counters.dispatches;
    assert.throws(
      () => noGrad(() => ops.swigluMatmul(t(xs), t(ws), { fused: true })),
      /swigluMatmul: x \[.*\] must be \[\.\.\., 2I\] \(gate, then up\) and w \[.*\] must be \[\.\.\., I, N\]/,
    );
    assert.equal(rt.counters.dispatches, before, "nothing recorded");
  }
  // A batched w is multiplied as matmul does, composed; the fused kernel takes one matrix.
  const w3 = t([2, 4, 3]);
  assert.match(swigluFusedObstacle(t([2, 5, 8]), w3) ?? "", /is batched/);
  const y = noGrad(() => ops.swigluMatmul(t([2, 5, 8]), w3));
  assert.deepEqual(y.shape, [2, 5, 3]);
});

Deno.test("swigluMatmul: decode steps with the skinny kernels on (as on a GPU) take the fused gate", async () => {
  // With the skinny kernel off (withSkinnyMaxM(0)) a decode step records the tiled kernels and the
  // composed gate; choosing as a GPU, the fused gate. The logits of four steps must match.
  const cfg: ModelConfig = {
    vocabSize: 13,
    hidden: 16,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 8,
    intermediate: 24,
    maxSeqLen: 32,
    ropeTheta: 10000,
    normEps: 1e-6,
    tiedEmbeddings: true,
    qkNorm: true,
  };
  const rng = new Rng(700);
  const host = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, shape] of Transformer.shapes(cfg)) {
    const n = shape.reduce((p, d) => p * d, 1);
    const data = Float32Array.from(
      { length: n },
      () => shape.length === 1 ? 0.5 + rng.uniform() : 0.4 * rng.normal(),
    );
    host.set(name, { shape, data });
  }
  const model = Transformer.fromTensors(cfg, host);
  const B = 5, steps = 4;
  const logits: Float32Array[][] = [], kernels: string[][] = [];
  try {
    for (const rows of [0, undefined]) {
      const cache = new KVCache(model, B, 8);
      const mine: Float32Array[] = [], names: string[] = [];
      for (let pos = 0; pos < steps; pos++) {
        const tokens = tensor(Int32Array.from({ length: B }, (_, i) => (3 * i + pos) % 13), [B]);
        const spy = new SpyBatch(rt.gpu);
        const record = () =>
          noGrad(() => rt.recordInto(spy, () => tidy(() => decodeStep(model, tokens, cache, pos))));
        const y = rows === 0 ? withSkinnyMaxM(0, record) : asGpu(record);
        spy.submit();
        names.push(...spy.kernels);
        mine.push(((await readAll([y]))[0]) as Float32Array);
        [y, tokens].forEach((t) => t.dispose());
      }
      cache.dispose();
      logits.push(mine);
      kernels.push(names);
    }
  } finally {
    model.dispose();
  }
  const count = (names: string[], re: RegExp) => names.filter((k) => re.test(k)).length;
  const gates = steps * cfg.layers;
  assert.equal(count(kernels[0], /^ops_swiglu_joined/), gates, "skinny off: composed");
  assert.equal(count(kernels[0], /^matmul_skinny/), 0);
  assert.equal(count(kernels[1], /^ops_swiglu_joined/), 0, "skinny on: no swiglu dispatch");
  assert.equal(count(kernels[1], /^matmul_skinny(_scalar)?_swiglu/), gates);
  // The skinny choice also folds each add + RMSNorm into the product that reads it
  // (ops.addRmsNormMatmul: tests/matmul_skinny_add_rms_test.ts): 2 per layer and the final one.
  const norms = steps * (2 * cfg.layers + 1);
  assert.equal(count(kernels[0], /^ops_norm/), norms, "skinny off: the norms dispatched");
  assert.equal(count(kernels[1], /^ops_norm/), 0, "skinny on: no norm dispatch");
  assert.equal(kernels[1].length, kernels[0].length - gates - norms, "one dispatch per gate less");
  let worst = 0;
  for (let s = 0; s < steps; s++) {
    for (let i = 0; i < logits[0][s].length; i++) {
      const [a, b] = [logits[0][s][i], logits[1][s][i]];
      worst = Math.max(worst, Math.abs(a - b) / (1e-4 + Math.abs(a)));
    }
  }
  console.log(
    `decode logits, skinny + fused vs tiled + composed: worst relative ${worst.toExponential(2)}`,
  );
  assert.ok(worst <= 1e-3, `logits differ: ${worst}`);
  assertNoGpuErrors();
});
