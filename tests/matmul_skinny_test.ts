// The skinny matmul (kernels/matmul_skinny.wgsl, M ≤ 64) against the float64 reference: M = 1, 7,
// 64 and the row-group edges, N and K odd and not multiples of 4 (the scalar form) and aligned
// (the vec4 form), B stored N×K (as decode steps read the weights) and K×N, every column-block
// width, K split across workgroups, accumulation, buffer offsets, C sharing A's buffer; then the
// choice of kernel and tiling, the public `matmul` op as a decode step calls it, determinism, and
// the errors.
import assert from "node:assert/strict";
import {
  ComputeBatch,
  createStorageBuffer,
  type Dispatch,
  getGpu,
  readBuffers,
} from "../src/gpu/mod.ts";
import { writeBuffer } from "../src/gpu/buffers.ts";
import type { GpuContext } from "../src/gpu/device.ts";
import { noGrad, ops } from "../src/autograd/mod.ts";
import { initTensors, packTensors, readAll, tensor } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import {
  checkMatmul,
  chooseMatmulVariant,
  chooseSkinnyTiling,
  encodeMatmul,
  type MatmulParams,
  type MatmulShape,
  planMatmul,
  SKINNY_MAX_M,
  SKINNY_MIN_CHUNK,
  skinnyCost,
  skinnyMaxM,
  type SkinnyOverride,
  skinnyVec4,
} from "../src/tensor/matmul/mod.ts";

interface Case extends MatmulShape {
  /** Byte offsets of A, B, C (multiples of 256). */
  offsets?: [number, number, number];
  /** C in A's buffer, after A (the aliased kernel). */
  shareAC?: boolean;
  /** Forced column groups / K slices. */
  force?: SkinnyOverride;
}

const SENTINEL = 12345.5;

function name(c: Case): string {
  const extra = [
    c.accumulate ? "acc" : "",
    c.offsets ? `off=${c.offsets.join("/")}` : "",
    c.shareAC ? "shareAC" : "",
    c.force ? JSON.stringify(c.force) : "",
  ].filter(Boolean).join(" ");
  return `${c.M}×${c.N}×${c.K} N${c.transB ? "T" : "N"} ${extra}`.trim();
}

/** A recording batch: the names of the kernels dispatched into it. */
class SpyBatch extends ComputeBatch {
  kernels: string[] = [];
  override dispatch(d: Dispatch): this {
    this.kernels.push(d.kernel.name);
    return super.dispatch(d);
  }
}

/** Runs the cases through `encodeMatmul` (forced to `variant`, or chosen) and checks each. */
async function run(gpu: GpuContext, cases: Case[], seed: number, variant?: "skinny") {
  const rng = new Rng(seed);
  const batch = new SpyBatch(gpu);
  const pending = cases.map((cs) => {
    const { M, N, K } = cs;
    const [oa, ob, oc] = cs.offsets ?? [0, 0, 0];
    const a = Float32Array.from({ length: M * K }, () => rng.normal());
    const b = Float32Array.from({ length: K * N }, () => rng.normal());
    // Random C (the addend when accumulating) and a sentinel past its end that must survive.
    const cBefore = new Float32Array(M * N + 16).fill(SENTINEL);
    for (let i = 0; i < M * N; i++) cBefore[i] = rng.normal();
    const aBytes = oa + Math.ceil(a.byteLength / 256) * 256;
    const aBuf = createStorageBuffer(gpu, aBytes + (cs.shareAC ? oc + cBefore.byteLength : 0));
    const bBuf = createStorageBuffer(gpu, ob + b.byteLength + 64);
    const cBuf = cs.shareAC ? aBuf : createStorageBuffer(gpu, oc + cBefore.byteLength);
    const cOff = cs.shareAC ? aBytes + oc : oc;
    writeBuffer(gpu, aBuf, a, oa);
    writeBuffer(gpu, bBuf, b, ob);
    writeBuffer(gpu, cBuf, cBefore, cOff);
    const before = batch.kernels.length;
    encodeMatmul(batch, gpu, {
      ...cs,
      a: { buffer: aBuf, offset: oa },
      b: { buffer: bBuf, offset: ob },
      c: { buffer: cBuf, offset: cOff },
      variant,
      skinnyTiling: cs.force,
      splitK: cs.force?.kSplits,
    });
    return { cs, a, b, cBefore, cBuf, cOff, kernels: batch.kernels.slice(before) };
  });
  batch.submit();
  const outs = await readBuffers(
    gpu,
    pending.map((p) => ({ buffer: p.cBuf, offset: p.cOff, size: p.cBefore.byteLength })),
  );
  return pending.map((p, i) => {
    const got = new Float32Array(outs[i]);
    const r = checkMatmul(got, p.a, p.b, p.cBefore, p.cs);
    const n = p.cs.M * p.cs.N;
    const clobbered = got.subarray(n).filter((v) => v !== SENTINEL).length;
    assert.ok(
      r.ok,
      `${name(p.cs)}: max error ${r.maxError} (ratio ${r.maxRatio} at ${r.worstIndex})`,
    );
    assert.equal(clobbered, 0, `${name(p.cs)}: wrote past C`);
    return { ...r, got: got.slice(0, n), kernels: p.kernels, name: name(p.cs) };
  });
}

function layouts(shapes: Array<[number, number, number]>, extra: Partial<Case> = {}): Case[] {
  return shapes.flatMap(([M, N, K]) =>
    [false, true].map((transB) => ({ M, N, K, transB, ...extra }))
  );
}

Deno.test("skinny matmul: any shape (scalar loads) matches the float64 reference", async () => {
  const gpu = await getGpu();
  // Odd N and K, none a multiple of 4; M across every row-group count (1, 2, 4, 8 groups of 8).
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1],
    [1, 37, 203],
    [7, 13, 29],
    [9, 5, 3],
    [17, 71, 11],
    [33, 3, 131],
    [64, 45, 77],
    [63, 33, 9],
  ];
  const cases: Case[] = [
    ...layouts(shapes),
    ...layouts([[7, 41, 301]], { force: { kSplits: 3 } }),
    // 32 columns per workgroup leave 8 (M ≤ 8) or 4 (M > 32) k slices: many steps per
    // invocation, so the loop carries loads from step to step (most cases above take one step).
    ...layouts([[5, 13, 229], [63, 33, 91]], { force: { colGroups: 8 } }),
    ...layouts([[17, 13, 229]], { force: { prefetch: false, colGroups: 8 } }),
    ...layouts([[64, 23, 35]], { accumulate: true, offsets: [256, 512, 768] }),
    { M: 5, N: 19, K: 21, transB: true, offsets: [256, 0, 256], shareAC: true },
  ];
  for (const cs of cases) assert.ok(!skinnyVec4({ transB: false, ...cs }), name(cs));
  const results = await run(gpu, cases, 1, "skinny");
  for (const r of results) {
    assert.ok(r.kernels[0].startsWith("matmul_skinny_scalar"), `${r.name}: ${r.kernels}`);
  }
});

Deno.test("skinny matmul: aligned shapes (vec4 loads), every block width and split", async () => {
  const gpu = await getGpu();
  const shapes: Array<[number, number, number]> = [
    [1, 36, 68],
    [7, 132, 20],
    [64, 64, 128],
    [40, 100, 36],
  ];
  const cases: Case[] = [...layouts(shapes)];
  for (const colGroups of [1, 2, 4, 8]) {
    cases.push(...layouts([[64, 68, 44]], { force: { colGroups } }));
  }
  // K split across workgroups: 4 slices of 64; 3 slices of 48, 48, 4 (a short last slice).
  cases.push(...layouts([[64, 20, 256]], { force: { kSplits: 4, colGroups: 2 } }));
  cases.push(...layouts([[12, 8, 100]], { force: { kSplits: 3 }, accumulate: true }));
  // Loads issued after the FMAs instead of before (bench v18).
  cases.push(...layouts([[33, 44, 200]], { force: { prefetch: false, colGroups: 8 } }));
  cases.push(...layouts([[64, 20, 256]], { force: { prefetch: false, kSplits: 2 } }));
  cases.push(...layouts([[3, 40, 1000]], { force: { colGroups: 8 } }));
  cases.push({ M: 8, N: 12, K: 16, transB: true, offsets: [256, 0, 256], shareAC: true });
  cases.push({ M: 20, N: 8, K: 24, accumulate: true, offsets: [256, 512, 768] });
  const results = await run(gpu, cases, 2, "skinny");
  for (const r of results) {
    const split = r.name.includes("kSplits");
    assert.equal(r.kernels.length, split ? 2 : 1, r.name);
    assert.match(r.kernels[0], /^matmul_skinny(\+aliased)?$/, r.name);
  }
  assert.equal(results.at(-2)!.kernels[0], "matmul_skinny+aliased");
});

Deno.test("skinny matmul: encodeMatmul picks it for few rows, and the tiling fills the GPU", async () => {
  const gpu = await getGpu();
  const buf = createStorageBuffer(gpu, 4 << 20), out = createStorageBuffer(gpu, 4 << 20);
  const choose = (s: MatmulShape, maxM?: number) =>
    chooseMatmulVariant(
      planMatmul(gpu, { ...s, a: { buffer: buf }, b: { buffer: buf }, c: { buffer: out } }),
      maxM,
    );
  assert.equal(SKINNY_MAX_M, 64);
  assert.equal(choose({ M: 64, N: 1536, K: 512, transB: true }), "skinny");
  assert.equal(choose({ M: 1, N: 7, K: 5 }), "skinny");
  assert.equal(choose({ M: 65, N: 1536, K: 512, transB: true }), "tiled");
  assert.equal(choose({ M: 64, N: 1536, K: 512, transB: true }, 0), "tiled", "turned off");
  assert.equal(choose({ M: 64, N: 64, K: 32, transA: true }), "tiled", "A stored K×M");
  assert.equal(choose({ M: 8, N: 8, K: 8, batchCount: 4 }), "tiled", "batched");
  // The decode matmuls of the three anchors (M = 64 rows): each tiling gives at least 16
  // workgroups (the tiled kernel: N/64), slices of at least SKINNY_MIN_CHUNK, and no cheaper
  // tiling in the search space.
  const decode: Array<[number, number]> = [];
  for (const [C, q, kv, I] of [[128, 128, 64, 320], [256, 256, 128, 768], [512, 512, 256, 1536]]) {
    decode.push([q, C], [kv, C], [C, q], [I, C], [C, I], [1028, C]);
  }
  for (const [N, K] of decode) {
    const t = chooseSkinnyTiling(64, N, K);
    const workgroups = Math.ceil(N / (4 * t.colGroups)) * t.kSplits;
    assert.equal(t.rowGroups, 8);
    assert.ok(workgroups >= Math.max(16, Math.ceil(N / 64)), `${N}×${K}: ${workgroups}`);
    assert.ok(t.kSplits === 1 || Math.ceil(K / t.kSplits) >= SKINNY_MIN_CHUNK, `${N}×${K}`);
    for (const colGroups of [1, 2, 4, 8]) {
      for (const kSplits of [1, 2, 4]) {
        if (kSplits > 1 && K / kSplits < SKINNY_MIN_CHUNK) continue;
        const other = skinnyCost(64, N, K, { rowGroups: 8, colGroups, kSplits });
        assert.ok(skinnyCost(64, N, K, t) <= other, `${N}×${K}: ${JSON.stringify(t)}`);
      }
    }
  }
  assert.deepEqual(chooseSkinnyTiling(7, 1536, 512).rowGroups, 1);
  assert.deepEqual(chooseSkinnyTiling(9, 1536, 512).rowGroups, 2);
  // Its tiling chosen automatically as a GPU plans it, a split product runs (29M's down projection
  // shape, scaled to llvmpipe); a CPU adapter takes its own tiling, which never splits K.
  const t = chooseSkinnyTiling(64, 128, 1536);
  assert.ok(t.kSplits > 1, JSON.stringify(t));
  const g = gpu as { isFallback: boolean }, was = g.isFallback;
  for (const fallback of [false, true]) {
    g.isFallback = fallback;
    try {
      const results = await run(gpu, [{ M: 64, N: 128, K: 1536, transB: true }], 3);
      assert.equal(results[0].kernels.length, fallback ? 1 : 2);
      assert.equal(results[0].kernels[0], "matmul_skinny");
    } finally {
      g.isFallback = was;
    }
  }
});

Deno.test("skinny matmul: the public matmul op takes it for a decode step's projection (tiled on a CPU adapter)", async () => {
  // As decodeStep calls it: x [B, 1, C] times the transpose of a weight [N, C] that lives at an
  // offset inside the parameter arena (bound as a slice, transB, no copy).
  const rt = await initTensors();
  const rng = new Rng(4);
  const [B, C, N] = [7, 36, 45];
  const xs = Float32Array.from({ length: B * C }, () => rng.normal());
  const ws = Float32Array.from({ length: N * C }, () => rng.normal());
  const [, w] = packTensors([tensor(new Float32Array(5), [5]), tensor(ws, [N, C])]);
  assert.ok(w.offset > 0, "the weight sits at an offset in its arena");
  const x = tensor(xs, [B, 1, C]);
  const spy = new SpyBatch(rt.gpu);
  const y = noGrad(() => rt.recordInto(spy, () => ops.matmul(x, ops.transpose(w))));
  spy.submit();
  // every adapter takes the skinny kernel for up to 64 rows (skinny.ts)
  assert.deepEqual(spy.kernels, skinnyMaxM(rt.gpu) >= B ? ["matmul_skinny"] : ["matmul_tiled"]);
  assert.deepEqual(y.shape, [B, 1, N]);
  const [got] = await readAll([y]);
  const r = checkMatmul(got as Float32Array, xs, ws, new Float32Array(B * N), {
    M: B,
    N,
    K: C,
    transB: true,
  });
  assert.ok(r.ok, `max error ${r.maxError}`);
  // The same product read as if B were stored K×N must fail the check: the check can fail.
  const wrong = checkMatmul(got as Float32Array, xs, ws, new Float32Array(B * N), {
    M: B,
    N,
    K: C,
  });
  assert.ok(!wrong.ok);
});

Deno.test("skinny matmul: results are bit-identical run to run, split or not", async () => {
  const gpu = await getGpu();
  const cs: Case = { M: 64, N: 40, K: 260, transB: true };
  // The same inputs (same seed) three times, with and without a split of K.
  const once = async (force?: SkinnyOverride) =>
    (await run(gpu, [{ ...cs, force }], 5, "skinny"))[0];
  const first = await once();
  assert.deepEqual((await once()).got, first.got);
  const split = await once({ kSplits: 2 });
  assert.deepEqual((await once({ kSplits: 2 })).got, split.got);
  assert.notDeepEqual(split.got, first.got, "a split sums in another order (both are checked)");
});

Deno.test("skinny matmul: shapes it cannot run and bad tilings throw clear errors", async () => {
  const gpu = await getGpu();
  const buf = createStorageBuffer(gpu, 1 << 16);
  const p: MatmulParams = {
    a: { buffer: buf },
    b: { buffer: buf },
    c: { buffer: createStorageBuffer(gpu, 1 << 16) },
    M: 8,
    N: 8,
    K: 8,
    variant: "skinny",
  };
  const cases: Array<[Partial<MatmulParams>, RegExp]> = [
    [{ M: 65 }, /skinny kernel cannot run this shape: M = 65 is over 64 rows/],
    [{ batchCount: 2 }, /cannot run this shape: it is not batched/],
    [{ transA: true }, /cannot run this shape: A must be stored M×K/],
    [{ skinnyTiling: { colGroups: 3 } }, /skinny colGroups must be 1, 2, 4 or 8, got 3/],
    [{ splitK: 0.5 }, /skinny kSplits must be a positive integer, got 0.5/],
  ];
  for (const [patch, pattern] of cases) {
    const batch = new ComputeBatch(gpu);
    assert.throws(() => encodeMatmul(batch, gpu, { ...p, ...patch }), pattern);
    assert.equal(batch.length, 0);
  }
});
