// addRmsNormMatmul (src/autograd/add_rms_matmul.ts): the skinny matmul reading A through a
// residual add and an RMSNorm (kernels/matmul_skinny_add_rms.wgsl), forced on this CPU adapter,
// against a float64 reference of rmsNorm(x + r)·g · w and against the composed GPU ops: M = 1, 3,
// 8, 37, 64; K and N odd (scalar prelude) and multiples of 4 (vec4); w stored [N, K] (read
// transposed, at an offset in an arena) and [K, N]; with and without r; peaked rows (one huge
// element) and rows of zeros (rstd = 1/sqrt(eps)); the sum bit-equal to x + r in f32. Then: the
// composed path with gradients, the choice by adapter, K never split, the read_write form and the
// errors. Whole decode steps and a rollout: tests/nn_decode_add_rms_test.ts.
import assert from "node:assert/strict";
import { noGrad, ops } from "../src/autograd/mod.ts";
import {
  addRmsFusedObstacle,
  type AddRmsNormMatmulOptions,
} from "../src/autograd/add_rms_matmul.ts";
import { type Arr, matmulRef, rmsNormRef } from "../src/autograd/reference.ts";
import { ComputeBatch, createStorageBuffer, type Dispatch, readBuffers } from "../src/gpu/mod.ts";
import {
  chooseSkinnyTiling,
  encodeMatmul,
  type MatmulParams,
  skinnyCost,
  skinnyMaxM,
  type SkinnyOverride,
  skinnyVec4,
  withSkinnyMaxM,
} from "../src/tensor/matmul/mod.ts";
import { packTensors, readAll, type Tensor, tensor } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { asGpu, assertNoGpuErrors, checkOp, randArr, setup } from "./autograd_util.ts";

const rt = await setup();
const U = 2 ** -24; // f32 unit roundoff
const EPS = 1e-6;

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
  K: number;
  N: number;
  /** w stored [N, K] and passed as its transpose (as the model passes its projections). */
  transB: boolean;
  /** With a residual delta r. */
  residual: boolean;
  force?: Omit<SkinnyOverride, "kSplits">;
}

const rowsOf = (c: Case) => c.lead.reduce((p, d) => p * d, 1);
const nameOf = (c: Case) =>
  `M=${rowsOf(c)} K=${c.K} N=${c.N} ${c.transB ? "NT" : "NN"} ${c.residual ? "x+r" : "x"}` +
  (c.force ? ` ${JSON.stringify(c.force)}` : "");

// x and r [M, K]: normal draws; row 1 peaked (x holds 3e3 at one k, r small), row 2 all zeros
// (x and r), every 7th element of r cancels x exactly (h = 0 there).
function makeInputs(rng: Rng, M: number, K: number) {
  const x = Float32Array.from({ length: M * K }, () => rng.normal());
  const r = Float32Array.from({ length: M * K }, () => 0.5 * rng.normal());
  for (let i = 0; i < x.length; i += 7) r[i] = -x[i];
  if (M > 1) {
    x.fill(0.01, K, 2 * K);
    x[K + (K >> 1)] = 3e3;
  }
  if (M > 2) {
    x.fill(0, 2 * K, 3 * K);
    r.fill(0, 2 * K, 3 * K);
  }
  const g = Float32Array.from({ length: K }, () => 0.5 + rng.uniform());
  return { x, r, g };
}

/**
 * The float64 reference y = rstd · Σ_k h_k g_k · w_kn with h = x + r (exact), rstd = 1 /
 * sqrt(Σh²/K + eps), and per output a bound on an f32 kernel's error, |y| ≤ rstd·Σ|h g w| = A:
 * - h rounded to f32 and the product h·g: 2u per term; the dot product in any order: γ_K·A;
 * - Σh² (nonnegative terms, h rounded) in any order: relative γ_{K+2}; /K and + eps: 2u more;
 *   inverseSqrt (WGSL: 2 ulp): so rstd is within ½γ_{K+4} + 3u relative; the final scale: u.
 * Together A·(γ_{K+3} + ½γ_{K+4} + 5u), the same for the composed ops (which scale each h by rstd
 * before the product: 3u per term instead of 2u, inside the same γ).
 */
function reference(
  x: Float32Array,
  r: Float32Array | null,
  g: Float32Array,
  w: Float32Array,
  c: Case,
) {
  const M = rowsOf(c), { K, N, transB } = c;
  const want = new Float64Array(M * N), bound = new Float64Array(M * N);
  const gamma = (n: number) => (n * U) / (1 - n * U);
  const rel = gamma(K + 3) + gamma(K + 4) / 2 + 5 * U;
  for (let m = 0; m < M; m++) {
    const h = Array.from({ length: K }, (_, k) => x[m * K + k] + (r ? r[m * K + k] : 0));
    const rstd = 1 / Math.sqrt(h.reduce((s, v) => s + v * v, 0) / K + EPS);
    for (let n = 0; n < N; n++) {
      let s = 0, abs = 0;
      for (let k = 0; k < K; k++) {
        const t = h[k] * g[k] * (transB ? w[n * K + k] : w[k * N + n]);
        s += t;
        abs += Math.abs(t);
      }
      want[m * N + n] = rstd * s;
      bound[m * N + n] = rstd * abs * rel + 1e-30;
    }
  }
  return { want, bound };
}

// Largest |got − want| and largest error / bound (NaN counts as out of bound).
function errors(got: ArrayLike<number>, want: ArrayLike<number>, bound: ArrayLike<number>) {
  let maxError = 0, maxRatio = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    maxError = Number.isNaN(e) ? NaN : Math.max(maxError, e);
    maxRatio = Number.isNaN(e) ? Infinity : Math.max(maxRatio, e / bound[i]);
  }
  return { maxError, maxRatio };
}

// The weight as the op sees it: the transpose of [N, K] at an offset inside an arena (as a
// model's projections), or a plain [K, N].
function weight(w: Float32Array, c: Case): { w: Tensor; dispose: () => void } {
  if (!c.transB) {
    const t = tensor(w, [c.K, c.N]);
    return { w: t, dispose: () => t.dispose() };
  }
  const [pad, stored] = packTensors([tensor(new Float32Array(5), [5]), tensor(w, [c.N, c.K])]);
  assert.ok(stored.offset > 0, "the weight sits at an offset in its arena");
  return { w: ops.transpose(stored), dispose: () => [pad, stored].forEach((t) => t.dispose()) };
}

interface Run {
  fused: Float32Array;
  composed: Float32Array;
  sumFused: Float32Array;
  sumComposed: Float32Array;
  kernels: string[];
}

// The fused product and sum (kernels recorded) and the composed ones, for one case.
async function run(
  c: Case,
  x32: Float32Array,
  r32: Float32Array,
  g32: Float32Array,
  w32: Float32Array,
): Promise<Run> {
  const shape = [...c.lead, c.K];
  const x = tensor(x32, shape), r = c.residual ? tensor(r32, shape) : null;
  const g = tensor(g32, [c.K]);
  const { w, dispose } = weight(w32, c);
  rt.flush(); // the arena's copies first: the spy batch is submitted on its own
  const spy = new SpyBatch(rt.gpu);
  const opts: AddRmsNormMatmulOptions = { fused: true, skinnyTiling: c.force };
  const f = noGrad(() => rt.recordInto(spy, () => ops.addRmsNormMatmul(x, r, g, w, EPS, opts)));
  spy.submit();
  const k = noGrad(() => ops.addRmsNormMatmul(x, r, g, w, EPS, { fused: false }));
  assert.deepEqual(f.out.shape, [...c.lead, c.N]);
  assert.deepEqual(k.out.shape, f.out.shape);
  if (!r) assert.ok(f.sum === x && k.sum === x, "without r the sum is x itself");
  const [fused, composed, sumFused, sumComposed] = (await readAll([
    f.out,
    k.out,
    f.sum,
    k.sum,
  ])) as Float32Array[];
  new Set([x, r, g, f.out, k.out, f.sum, k.sum]).forEach((t) => t?.dispose());
  dispose();
  assertNoGpuErrors();
  return { fused, composed, sumFused, sumComposed, kernels: spy.kernels };
}

async function check(c: Case, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const M = rowsOf(c);
  const { x, r, g } = makeInputs(rng, M, c.K);
  const w = Float32Array.from({ length: c.K * c.N }, () => rng.normal());
  const res = await run(c, x, r, g, w);
  const { want, bound } = reference(x, c.residual ? r : null, g, w, c);
  const fused = errors(res.fused, want, bound);
  const composed = errors(res.composed, want, bound);
  const scalar = !skinnyVec4({ N: c.N, K: c.K, transB: c.transB });
  console.log(
    `${nameOf(c).padEnd(46)} ${res.kernels.join(" + ")}: max |err| vs float64 fused ` +
      `${fused.maxError.toExponential(2)} (${fused.maxRatio.toFixed(3)} of bound), composed ` +
      `${composed.maxError.toExponential(2)} (${composed.maxRatio.toFixed(3)})`,
  );
  assert.ok(fused.maxRatio <= 1, `${nameOf(c)}: fused ${JSON.stringify(fused)} vs float64`);
  assert.ok(composed.maxRatio <= 1, `${nameOf(c)}: composed ${JSON.stringify(composed)}`);
  if (M > 2) {
    // the row of zeros: exactly 0 (rstd = 1/sqrt(eps) times sums of exact zeros)
    for (let n = 0; n < c.N; n++) assert.ok(Object.is(res.fused[2 * c.N + n] + 0, 0));
  }
  // The sum: one f32 addition per element, as add_rms_fwd4 does it (written once, in full).
  for (let i = 0; i < x.length; i++) {
    const s = c.residual ? Math.fround(x[i] + r[i]) : x[i];
    if (res.sumFused[i] !== s || res.sumComposed[i] !== s) {
      assert.fail(
        `${nameOf(c)}: sum[${i}] fused ${res.sumFused[i]} composed ` +
          `${res.sumComposed[i]}, want ${s}`,
      );
    }
  }
  const re = new RegExp(`^matmul_skinny${scalar ? "_scalar" : ""}_addRms(\\+aliased)?$`);
  assert.equal(res.kernels.length, 1, `${nameOf(c)}: one dispatch, ${res.kernels}`);
  assert.match(res.kernels[0], re, nameOf(c));
}

Deno.test("addRmsNormMatmul fused: scalar prelude (odd K or N) matches float64, the sum x + r exactly", async () => {
  const cases: Case[] = [
    { lead: [1], K: 7, N: 5, transB: true, residual: true },
    { lead: [3], K: 8, N: 6, transB: false, residual: true }, // K aligned, B's rows (N) not
    { lead: [8, 1], K: 9, N: 9, transB: false, residual: false },
    { lead: [37], K: 203, N: 7, transB: true, residual: true },
    { lead: [64], K: 11, N: 17, transB: true, residual: true, force: { colGroups: 8 } },
    { lead: [4, 16], K: 5, N: 3, transB: true, residual: false, force: { prefetch: false } },
    { lead: [37], K: 135, N: 13, transB: false, residual: true, force: { colGroups: 1 } },
  ];
  for (const [i, c] of cases.entries()) {
    assert.ok(!skinnyVec4({ N: c.N, K: c.K, transB: c.transB }), nameOf(c));
    await check(c, 100 + i);
  }
});

Deno.test("addRmsNormMatmul fused: vec4 prelude (K a multiple of 4), column blocks, long K", async () => {
  const cases: Case[] = [
    { lead: [1], K: 12, N: 5, transB: true, residual: true },
    { lead: [3, 1], K: 16, N: 9, transB: true, residual: false },
    { lead: [8], K: 32, N: 40, transB: false, residual: true, force: { colGroups: 2 } },
    { lead: [37], K: 300, N: 33, transB: true, residual: true },
    { lead: [64], K: 24, N: 31, transB: true, residual: true, force: { colGroups: 8 } },
    { lead: [64], K: 516, N: 12, transB: false, residual: false, force: { prefetch: false } },
    { lead: [64], K: 132, N: 20, transB: true, residual: true, force: { colGroups: 1 } },
  ];
  for (const [i, c] of cases.entries()) {
    assert.ok(skinnyVec4({ N: c.N, K: c.K, transB: c.transB }), nameOf(c));
    await check(c, 200 + i);
  }
});

Deno.test("addRmsNormMatmul fused: K is never split across workgroups (the norm needs whole rows)", async () => {
  // A shape the plain product splits; the prologue's planner does not, and forcing it is refused.
  const [M, N, K] = [64, 128, 2048];
  assert.ok(chooseSkinnyTiling(M, N, K).kSplits > 1, "the plain product splits");
  assert.equal(chooseSkinnyTiling(M, N, K, 65535, "addRms").kSplits, 1);
  assert.equal(skinnyCost(M, N, K, { rowGroups: 8, colGroups: 4, kSplits: 2 }, "addRms"), Infinity);
  await check({ lead: [M], K, N: 8, transB: true, residual: true }, 300);
  const x = tensor(new Float32Array(4 * 256), [4, 256]), g = tensor(new Float32Array(256), [256]);
  const w = tensor(new Float32Array(256 * 8), [256, 8]);
  const force = { kSplits: 2 } as Omit<SkinnyOverride, "kSplits">; // what a cast could smuggle in
  const y = noGrad(() =>
    ops.addRmsNormMatmul(x, null, g, w, EPS, { fused: true, skinnyTiling: force })
  );
  assert.deepEqual(y.out.shape, [4, 8], "the op itself always asks for one slice");
  [x, g, w, y.out].forEach((t) => t.dispose());
});

Deno.test("encodeMatmul addRms: every operand in one buffer (the read_write form), and bad operands named", async () => {
  // x, r, g, the sum and C at aligned offsets of one buffer, B in another: C and the sum share a
  // buffer with what the kernel reads, so every binding is declared read_write (+aliased).
  const gpu = rt.gpu;
  const c: Case = { lead: [5], K: 12, N: 7, transB: true, residual: true };
  const [M, K, N] = [5, c.K, c.N];
  const rng = new Rng(700);
  const { x, r, g } = makeInputs(rng, M, K);
  const w = Float32Array.from({ length: N * K }, () => rng.normal());
  const at = [0, 256, 512, 768, 1024]; // bytes: x, r, g, sum, C
  const arena = createStorageBuffer(gpu, 2048), wb = createStorageBuffer(gpu, w.byteLength);
  [x, r, g].forEach((d, i) => gpu.device.queue.writeBuffer(arena, at[i], d));
  gpu.device.queue.writeBuffer(wb, 0, w);
  const slice = (i: number) => ({ buffer: arena, offset: at[i] });
  const params = {
    a: slice(0),
    b: { buffer: wb },
    c: slice(4),
    M,
    N,
    K,
    transB: true,
    prologueA: "addRms" as const,
    addRms: { r: slice(1), gain: slice(2), sum: slice(3), eps: EPS },
  };
  const spy = new SpyBatch(gpu);
  encodeMatmul(spy, gpu, params);
  spy.submit();
  assert.deepEqual(spy.kernels, ["matmul_skinny_addRms+aliased"]);
  const host = new Float32Array((await readBuffers(gpu, [{ buffer: arena }]))[0]);
  const got = host.subarray(at[4] / 4, at[4] / 4 + M * N), sum = host.subarray(at[3] / 4);
  const { want, bound } = reference(x, r, g, w, c);
  assert.ok(errors(got, want, bound).maxRatio <= 1, JSON.stringify(errors(got, want, bound)));
  for (let i = 0; i < M * K; i++) assert.equal(sum[i], Math.fround(x[i] + r[i]), `sum[${i}]`);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ addRms: undefined }, /addRms operands go with prologueA "addRms" and only with it/],
    [{ prologueA: undefined }, /addRms operands go with prologueA "addRms" and only with it/],
    [{ addRms: { ...params.addRms, sum: null } }, /addRms needs both r and sum, or neither/],
    [{ addRms: { ...params.addRms, eps: -1 } }, /addRms eps -1 must be finite and >= 0/],
    [{ addRms: { ...params.addRms, sum: slice(0) } }, /addRms\.sum .* overlaps a/],
    [{ addRms: { ...params.addRms, gain: slice(4) } }, /c .* overlaps addRms\.gain/],
    [{ variant: "tiled" }, /prologueA needs the skinny kernel, not tiled/],
  ];
  for (const [patch, re] of bad) {
    const batch = new ComputeBatch(gpu);
    assert.throws(
      () => encodeMatmul(batch, gpu, { ...params, ...patch } as MatmulParams),
      re,
      JSON.stringify(Object.keys(patch)) + String(re),
    );
    assert.equal(batch.length, 0, "nothing recorded");
  }
  // A K that splits into two slices of 64: refused for this prologue.
  const buf = (n: number) => ({ buffer: createStorageBuffer(gpu, 4 * n) });
  const long = { ...params, K: 128, a: buf(M * 128), b: buf(128 * N), c: buf(M * N) };
  const split = {
    ...long,
    addRms: { r: buf(M * 128), gain: buf(128), sum: buf(M * 128), eps: EPS },
  };
  const batch = new ComputeBatch(gpu);
  assert.throws(
    () => encodeMatmul(batch, gpu, { ...split, splitK: 2 }),
    /the "addRms" prologue cannot split K across workgroups/,
  );
  assert.equal(batch.length, 0, "nothing recorded");
  arena.destroy();
  wb.destroy();
  assertNoGpuErrors();
});

// Float64 reference of the op on Arrs: rmsNorm(x (+ r), g) · w.
function opRef([x, r, g, w]: Arr[]): Arr {
  const h = r ? { shape: x.shape, data: x.data.map((v, i) => v + r.data[i]) } : x;
  return matmulRef(rmsNormRef(h, g, EPS), w);
}

Deno.test("addRmsNormMatmul: composed, with gradients, when a gradient is needed", async () => {
  const rng = new Rng(500);
  const pos = (shape: number[]) => randArr(rng, shape, 0.5, 1);
  for (const K of [8, 7]) { // add_rms_fwd4, then add + rmsNorm
    await checkOp({
      name: `addRmsNormMatmul out, K=${K}`,
      inputs: [randArr(rng, [5, K]), randArr(rng, [5, K]), pos([K]), randArr(rng, [K, 6])],
      gpu: ([x, r, g, w]) => ops.addRmsNormMatmul(x, r, g, w, EPS).out,
      ref: opRef,
    });
    await checkOp({
      name: `addRmsNormMatmul sum, K=${K}`,
      inputs: [randArr(rng, [5, K]), randArr(rng, [5, K]), pos([K]), randArr(rng, [K, 6])],
      grads: [0, 1],
      gpu: ([x, r, g, w]) => ops.addRmsNormMatmul(x, r, g, w, EPS).sum,
      ref: ([x, r]) => ({ shape: x.shape, data: x.data.map((v, i) => v + r.data[i]) }),
    });
  }
  await checkOp({
    name: "addRmsNormMatmul without r",
    inputs: [randArr(rng, [3, 2, 8]), pos([8]), randArr(rng, [8, 5])],
    gpu: ([x, g, w]) => ops.addRmsNormMatmul(x, null, g, w, EPS).out,
    ref: ([x, g, w]) => matmulRef(rmsNormRef(x, g, EPS), w),
  });
  // With a gradient needed: the composed ops even where the adapter would fuse; forcing the fused
  // kernel is then an error; under noGrad it runs.
  const x = tensor(Float32Array.from({ length: 3 * 8 }, () => rng.normal()), [3, 8]);
  const g = tensor(Float32Array.from({ length: 8 }, () => 1 + rng.uniform()), [8]);
  const w = tensor(Float32Array.from({ length: 8 * 5 }, () => rng.normal()), [8, 5]);
  g.requiresGrad = true;
  assert.equal(addRmsFusedObstacle(x, x, g, w, true), "a gradient is needed");
  assert.throws(
    () => ops.addRmsNormMatmul(x, x, g, w, EPS, { fused: true }),
    /addRmsNormMatmul: the fused kernel cannot run: a gradient is needed/,
  );
  const spy = new SpyBatch(rt.gpu);
  const y = rt.recordInto(spy, () => ops.addRmsNormMatmul(x, x, g, w, EPS));
  spy.submit();
  assert.ok(y.out.node !== null, "recorded on the tape");
  assert.equal(spy.kernels.length, 2, `add_rms_fwd4, then the product: ${spy.kernels}`);
  assert.equal(spy.kernels[0], "ops_norm");
  assert.match(spy.kernels[1], /^matmul_(tiled|skinny)/);
  assert.equal(noGrad(() => addRmsFusedObstacle(x, x, g, w, true)), undefined);
  const z = noGrad(() => ops.addRmsNormMatmul(x, x, g, w, EPS, { fused: true }));
  assert.equal(z.out.node, null);
  const [a, b, s1, s2] = await readAll([y.out, z.out, y.sum, z.sum]);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= 1e-5 * (1 + Math.abs(a[i])));
  }
  assert.deepEqual(s1, s2);
  [x, g, w, y.out, y.sum, z.out, z.sum].forEach((t) => t.dispose());
  assertNoGpuErrors();
});

Deno.test("addRmsNormMatmul: fused by default on GPUs, composed on CPU adapters or without the skinny kernel", async () => {
  const rng = new Rng(600);
  const [M, K, N] = [6, 8, 12];
  const x = tensor(Float32Array.from({ length: M * K }, () => rng.normal()), [M, 1, K]);
  const g = tensor(Float32Array.from({ length: K }, () => 1 + rng.uniform()), [K]);
  const w = tensor(Float32Array.from({ length: K * N }, () => rng.normal()), [K, N]);
  // As a GPU chooses (fused), as this adapter chooses (fused on a GPU; on a CPU adapter the composed
  // norm, then the skinny product), and with the skinny kernel off (the norm, then tiled).
  const outs = [];
  for (
    const [how, rows] of [["as a GPU", undefined], ["this adapter", undefined], ["off", 0]] as const
  ) {
    const spy = new SpyBatch(rt.gpu);
    const y = (how === "as a GPU" ? asGpu : <T>(f: () => T) => f())(() =>
      withSkinnyMaxM(rows, () => {
        const fuses = rows !== 0 && !rt.gpu.isFallback;
        assert.equal(noGrad(() => addRmsFusedObstacle(x, x, g, w)) === undefined, fuses, how);
        const y = noGrad(() => rt.recordInto(spy, () => ops.addRmsNormMatmul(x, x, g, w)));
        spy.submit();
        assert.deepEqual(
          spy.kernels.map((k) => k.replace("+aliased", "")),
          fuses
            ? ["matmul_skinny_addRms"]
            : ["ops_norm", rows === 0 ? "matmul_tiled" : "matmul_skinny"],
          how,
        );
        return y;
      })
    );
    outs.push(y);
  }
  assert.equal(skinnyMaxM(rt.gpu), 64, "64 rows on every adapter by default");
  // The K limit (ADD_RMS_FUSED_MAX_K) refuses by default, never when forced.
  assert.match(noGrad(() => addRmsFusedObstacle(x, x, g, w, false, 4)) ?? "", /K = 8 is over/);
  assert.equal(noGrad(() => addRmsFusedObstacle(x, x, g, w, true, 4)), undefined);
  const big = tensor(new Float32Array(65 * K), [65, K]);
  assert.match(noGrad(() => addRmsFusedObstacle(big, null, g, w)) ?? "", /65 rows are over/);
  assert.throws(
    () => noGrad(() => ops.addRmsNormMatmul(big, null, g, w, EPS, { fused: true })),
    /fused kernel cannot run: 65 rows are over the skinny kernel's 64/,
  );
  const [fused, ...others] = await readAll(outs.map((o) => o.out));
  for (const other of others) {
    for (let i = 0; i < fused.length; i++) {
      assert.ok(Math.abs(fused[i] - other[i]) <= 1e-5 * (1 + Math.abs(fused[i])));
    }
  }
  [x, g, w, big, ...outs.flatMap((o) => [o.out, o.sum])].forEach((t) => t.dispose());
});

Deno.test("addRmsNormMatmul: shapes, dtypes and eps that do not fit are named", () => {
  const t = (shape: number[]) => tensor(new Float32Array(shape.reduce((p, d) => p * d, 1)), shape);
  const cases: Array<[number[], number[] | null, number[], number[], RegExp]> = [
    [[3, 8], [3, 7], [8], [8, 2], /x \[3,8\] and r \[3,7\] must have the same shape/],
    [[3, 8], null, [7], [8, 2], /x \[3,8\] must be \[\.\.\., K\] with weight g \[7\] = \[K\]/],
    [[3, 8], null, [8], [5, 2], /and w \[5,2\] = \[\.\.\., K, N\]/],
    [[8], null, [8], [8, 2], /x \[8\] must be \[\.\.\., K\]/],
  ];
  for (const [xs, rs, gs, ws, re] of cases) {
    const before = rt.counters.dispatches;
    assert.throws(
      () => noGrad(() => ops.addRmsNormMatmul(t(xs), rs && t(rs), t(gs), t(ws), EPS)),
      re,
    );
    assert.equal(rt.counters.dispatches, before, "nothing recorded");
  }
  assert.throws(
    () => ops.addRmsNormMatmul(t([2, 4]), null, t([4]), t([4, 2]), NaN),
    /addRmsNormMatmul: eps NaN must be finite and >= 0/,
  );
  const ids = tensor(new Int32Array(8), [2, 4]);
  assert.throws(
    () => ops.addRmsNormMatmul(ids, null, t([4]), t([4, 2])),
    /addRmsNormMatmul/,
  );
  // A batched w is multiplied as matmul does, composed; the fused kernel takes one matrix.
  const w3 = t([2, 8, 3]);
  assert.match(addRmsFusedObstacle(t([2, 5, 8]), null, t([8]), w3) ?? "", /is batched/);
  const y = noGrad(() => ops.addRmsNormMatmul(t([2, 5, 8]), null, t([8]), w3));
  assert.deepEqual(y.out.shape, [2, 5, 3]);
});
