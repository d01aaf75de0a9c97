// The GPU matmul against the float64 reference: every kernel variant, all four transpose
// combinations, odd and tile-straddling sizes, K = 1 and large K, batches with padded and zero
// strides, accumulation, buffer offsets, C sharing a buffer with A; and argument validation.
import assert from "node:assert/strict";
import {
  ComputeBatch,
  createStorageBuffer,
  getGpu,
  type GpuContext,
  readBuffers,
} from "../src/gpu/mod.ts";
import { writeBuffer } from "../src/gpu/buffers.ts";
import { Rng } from "../src/util/rng.ts";
import {
  checkMatmul,
  chooseMatmulVariant,
  chooseSplits,
  encodeMatmul,
  matmulReference,
  type MatmulShape,
  type MatmulVariant,
  planMatmul,
  prepareMatmulCheck,
  SPLITK_SLAB,
  type Vec4Tuning,
} from "../src/tensor/matmul/mod.ts";

interface Case extends MatmulShape {
  /** Byte offsets of A, B, C in their buffers (multiples of 256). */
  offsets?: [number, number, number];
  /** Put C in A's buffer, after A. */
  shareAC?: boolean;
  /** Slices of K (vec4 only). */
  splitK?: number;
}

const SENTINEL = 12345.5;

function extent(s: MatmulShape, stride: number | undefined, size: number) {
  return ((s.batchCount ?? 1) - 1) * (stride ?? size) + size;
}

function roundUp(n: number, m: number) {
  return Math.ceil(n / m) * m;
}

/** Runs every case in one batch, reads every C back at once, and checks each. */
interface RunOptions {
  variant?: MatmulVariant;
  seed?: number;
  vec4Tuning?: Partial<Vec4Tuning>;
  /** Limits that encodeMatmul sees (smaller than the device's, to exercise grid splitting). */
  limits?: Record<string, number>;
  /** Called with the number of dispatches recorded. */
  onRecorded?: (dispatches: number) => void;
}

async function runCases(gpu: GpuContext, cases: Case[], opts: RunOptions = {}) {
  const { variant, vec4Tuning } = opts;
  const rng = new Rng(opts.seed ?? 1);
  const batch = new ComputeBatch(gpu);
  const encodeGpu = opts.limits ? { ...gpu, limits: { ...gpu.limits, ...opts.limits } } : gpu;
  const pending = cases.map((cs) => {
    const { M, N, K } = cs;
    const [oa, ob, oc] = cs.offsets ?? [0, 0, 0];
    const nA = extent(cs, cs.strideA, M * K);
    const nB = extent(cs, cs.strideB, K * N);
    const nC = extent(cs, cs.strideC, M * N);
    const a = Float32Array.from({ length: nA }, () => rng.normal());
    const b = Float32Array.from({ length: nB }, () => rng.normal());
    // C starts as random values (the addend when accumulating, garbage otherwise); elements
    // between batch items (strideC > M·N) and past the end hold a sentinel that must survive.
    const cBefore = new Float32Array(nC + 16).fill(SENTINEL);
    const strideC = cs.strideC ?? M * N;
    for (let bi = 0; bi < (cs.batchCount ?? 1); bi++) {
      for (let e = 0; e < M * N; e++) cBefore[bi * strideC + e] = rng.normal();
    }
    const aBytes = oa + roundUp(nA * 4, 256);
    const aBuf = createStorageBuffer(gpu, aBytes + (cs.shareAC ? oc + cBefore.byteLength : 0));
    const bBuf = createStorageBuffer(gpu, ob + nB * 4 + 64);
    const cBuf = cs.shareAC ? aBuf : createStorageBuffer(gpu, oc + cBefore.byteLength);
    const cOff = cs.shareAC ? aBytes + oc : oc;
    writeBuffer(gpu, aBuf, a, oa);
    writeBuffer(gpu, bBuf, b, ob);
    writeBuffer(gpu, cBuf, cBefore, cOff);
    encodeMatmul(batch, encodeGpu, {
      ...cs,
      a: { buffer: aBuf, offset: oa },
      b: { buffer: bBuf, offset: ob },
      c: { buffer: cBuf, offset: cOff },
      variant,
      vec4Tuning,
    });
    return { cs, a, b, cBefore, cBuf, cOff, strideC, nC };
  });
  opts.onRecorded?.(batch.length);
  batch.submit();
  const outs = await readBuffers(
    gpu,
    pending.map((p) => ({ buffer: p.cBuf, offset: p.cOff, size: p.cBefore.byteLength })),
  );
  const results = pending.map((p, i) => {
    const got = new Float32Array(outs[i]);
    const r = checkMatmul(got, p.a, p.b, p.cBefore, p.cs);
    let clobbered = 0;
    for (let j = 0; j < got.length; j++) {
      const inItem = j < p.nC && j % p.strideC < p.cs.M * p.cs.N;
      if (!inItem && got[j] !== SENTINEL) clobbered++;
    }
    return { ...r, clobbered, name: describe(p.cs) };
  });
  for (const p of pending) {
    p.cBuf.destroy();
  }
  return results;
}

function describe(c: Case): string {
  const t = `${c.transA ? "T" : "N"}${c.transB ? "T" : "N"}`;
  const extra = [
    c.batchCount ? `batch=${c.batchCount}` : "",
    c.strideA !== undefined ? `sA=${c.strideA}` : "",
    c.strideB !== undefined ? `sB=${c.strideB}` : "",
    c.strideC !== undefined ? `sC=${c.strideC}` : "",
    c.accumulate ? "acc" : "",
    c.offsets ? `off=${c.offsets.join("/")}` : "",
    c.shareAC ? "shareAC" : "",
    c.splitK ? `splitK=${c.splitK}` : "",
  ].filter(Boolean).join(" ");
  return `${c.M}×${c.N}×${c.K} ${t} ${extra}`.trim();
}

function report(label: string, results: Awaited<ReturnType<typeof runCases>>) {
  const worst = Math.max(...results.map((r) => r.maxRatio));
  const maxErr = Math.max(...results.map((r) => r.maxError));
  console.log(
    `${label}: ${results.length} cases, max error ${maxErr.toExponential(2)}, ` +
      `worst error/bound ${worst.toFixed(3)}`,
  );
  for (const r of results) {
    assert.ok(
      r.ok,
      `${label} ${r.name}: max error ${r.maxError} (ratio ${r.maxRatio} at ${r.worstIndex})`,
    );
    assert.equal(r.clobbered, 0, `${label} ${r.name}: wrote ${r.clobbered} elements outside C`);
  }
}

const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 7, 3],
  [5, 1, 9],
  [3, 5, 1],
  [17, 13, 29],
  [33, 65, 70],
  [64, 64, 64],
  [70, 68, 12],
  [2, 3, 1000],
];

function transposeCases(shapes: Array<[number, number, number]>): Case[] {
  const out: Case[] = [];
  for (const [M, N, K] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) out.push({ M, N, K, transA, transB });
    }
  }
  return out;
}

const LAYOUT_CASES: Case[] = [
  { M: 9, N: 11, K: 7, batchCount: 3, accumulate: true },
  { M: 9, N: 11, K: 7, batchCount: 3, strideA: 70, strideB: 80, strideC: 101, transA: true },
  { M: 6, N: 10, K: 5, batchCount: 4, strideB: 0, transB: true },
  { M: 12, N: 8, K: 20, accumulate: true, transA: true, transB: true, offsets: [256, 512, 768] },
  { M: 8, N: 12, K: 16, batchCount: 2, offsets: [256, 0, 256], shareAC: true },
];

Deno.test("matmul: every variant matches the float64 reference", async () => {
  const gpu = await getGpu();
  const variants: Array<MatmulVariant | undefined> = [undefined, "naive", "tiled"];
  for (const v of variants) {
    report(
      `variant ${v ?? "auto"}`,
      await runCases(gpu, [...transposeCases(SHAPES), ...LAYOUT_CASES], { variant: v }),
    );
  }
});

// Shapes whose stored rows are whole vec4 but that straddle the 128×128×8 tile on every side.
const ALIGNED_SHAPES: Array<[number, number, number]> = [
  [4, 4, 4],
  [132, 136, 20],
  [128, 128, 8],
  [4, 260, 12],
  [260, 4, 4],
  [12, 8, 1000],
];

const ALIGNED_LAYOUT_CASES: Case[] = [
  // A stored K×M and B K×N: K is no row length, so any K is aligned.
  { M: 12, N: 8, K: 37, transA: true },
  { M: 12, N: 8, K: 16, batchCount: 3, accumulate: true, transB: true },
  { M: 8, N: 12, K: 20, batchCount: 3, strideA: 176, strideB: 260, strideC: 100, transA: true },
  { M: 16, N: 136, K: 12, batchCount: 2, strideB: 0 },
  { M: 20, N: 8, K: 24, accumulate: true, transA: true, transB: true, offsets: [256, 512, 768] },
  { M: 8, N: 12, K: 16, batchCount: 2, offsets: [256, 0, 256], shareAC: true },
];

Deno.test("matmul: the vec4 kernel matches the reference on aligned shapes", async () => {
  const gpu = await getGpu();
  const cases = [...transposeCases(ALIGNED_SHAPES), ...ALIGNED_LAYOUT_CASES];
  report("variant vec4", await runCases(gpu, cases, { variant: "vec4", seed: 3 }));
});

Deno.test("matmul: the vec4 kernel's tunings all give the same products", async () => {
  const gpu = await getGpu();
  // 260×260 is 3×3 tiles: with GROUP_M = 2 the last group of tile rows is partial.
  const shapes = [...ALIGNED_SHAPES.slice(1, 4), [260, 260, 8] as [number, number, number]];
  const cases = [...transposeCases(shapes), ...ALIGNED_LAYOUT_CASES];
  // Every tuning the benchmark's versions use (bench/matmul/versions.ts), and then some.
  const tunings: Array<Partial<Vec4Tuning>> = [
    { BK: 16, PAD: 0 },
    { PAD: 0, GROUP_M: 2 },
    { GROUP_M: 16 },
    { unrolled: false },
    { unrolled: false, BK: 16, PAD: 0 },
    { STAGGER: 8 },
    { STAGGER: 3, BK: 16, PAD: 0 },
    { STAGGER: 5, GROUP_M: 2 },
  ];
  // The looped vec4 kernel cannot split K; with BK = 16 the slices are whole steps too.
  const split: Case[] = [
    { M: 36, N: 40, K: 100, splitK: 3, accumulate: true, transA: true },
    // Six tiles, so that a stagger gives the workgroups different start steps; K = 100 leaves a
    // partial last step that a rotated loop meets in the middle of its range; with split-K each
    // slice is rotated within itself.
    { M: 260, N: 132, K: 100 },
    { M: 260, N: 132, K: 100, transA: true, transB: true, accumulate: true },
    { M: 260, N: 132, K: 200, splitK: 3, transB: true },
  ];
  for (const t of tunings) {
    const all = t.unrolled === false ? cases : [...cases, ...split];
    report(
      `vec4 ${JSON.stringify(t)}`,
      await runCases(gpu, all, { variant: "vec4", seed: 5, vec4Tuning: t }),
    );
  }
  const batch = new ComputeBatch(gpu);
  const buf = { buffer: createStorageBuffer(gpu, 4096) };
  const p = { a: buf, b: buf, c: { buffer: createStorageBuffer(gpu, 4096) }, M: 4, N: 4, K: 4 };
  assert.throws(
    () => encodeMatmul(batch, gpu, { ...p, variant: "vec4", vec4Tuning: { BK: 12 } }),
    /BK must be 8 or 16, got 12/,
  );
  for (const STAGGER of [-1, 1.5, 65]) {
    assert.throws(
      () => encodeMatmul(batch, gpu, { ...p, variant: "vec4", vec4Tuning: { STAGGER } }),
      /STAGGER must be an integer in 0\.\.64/,
    );
  }
  assert.throws(
    () =>
      encodeMatmul(batch, gpu, {
        ...p,
        variant: "vec4",
        vec4Tuning: { STAGGER: 4, unrolled: false },
      }),
    /STAGGER > 1 needs the unrolled kernel/,
  );
  const small = gpu.limits.maxComputeWorkgroupStorageSize < 33792;
  if (small) {
    assert.throws(
      () => encodeMatmul(batch, gpu, { ...p, variant: "vec4", vec4Tuning: { BK: 16, PAD: 1 } }),
      /needs 33792 bytes of workgroup memory/,
    );
  }
});

Deno.test("matmul: the kernel is chosen by alignment and size", async () => {
  const gpu = await getGpu();
  const buf = createStorageBuffer(gpu, 4 << 20);
  const out = createStorageBuffer(gpu, 8 << 20);
  const choose = (s: MatmulShape) =>
    chooseMatmulVariant(
      planMatmul(gpu, { ...s, a: { buffer: buf }, b: { buffer: buf }, c: { buffer: out } }),
    );
  assert.equal(choose({ M: 512, N: 512, K: 64 }), "tiled", "16 tiles of 128² are too few");
  assert.equal(choose({ M: 1024, N: 1536, K: 64 }), "vec4");
  assert.equal(choose({ M: 1024, N: 1536, K: 63 }), "tiled", "K rows are not whole vec4");
  assert.equal(choose({ M: 1024, N: 1536, K: 63, transA: true }), "vec4");
  assert.equal(choose({ M: 128, N: 128, K: 4, batchCount: 96 }), "vec4");
  assert.equal(choose({ M: 128, N: 128, K: 4, batchCount: 96, strideA: 514 }), "tiled");
  assert.equal(choose({ M: 256, N: 256, K: 4096 }), "vec4", "4 tiles, but K splits 16 ways");
  assert.equal(choose({ M: 256, N: 256, K: 1020 }), "tiled", "K too short to split");
  // Attention-sized items: 64×64 would fill a quarter of each 128×128 tile.
  assert.equal(choose({ M: 64, N: 64, K: 32, batchCount: 256 }), "tiled");
  assert.equal(choose({ M: 192, N: 192, K: 32, batchCount: 48 }), "vec4");
  // The automatic choice at vec4 size runs and is right.
  report(
    "auto (vec4) batch of 96",
    await runCases(gpu, [{ M: 128, N: 128, K: 4, batchCount: 96 }]),
  );
  assert.throws(
    () =>
      encodeMatmul(new ComputeBatch(gpu), gpu, {
        a: { buffer: buf },
        b: { buffer: buf },
        c: { buffer: out },
        M: 8,
        N: 6,
        K: 4,
        variant: "vec4",
      }),
    /vec4 kernel cannot run this shape: not a multiple of 4: N \(B is K×N\) = 6, N \(C is M×N\) = 6/,
  );
});

Deno.test("matmul: grids beyond the per-dimension limit are split", async () => {
  // With a limit of 4 workgroups per dimension: a batch of 9 takes three dispatches (batchBase
  // 0, 4, 8), and the vec4 kernel's 2×5 = 10 tiles go on a 4×3 grid whose last two workgroups
  // must do nothing.
  const gpu = await getGpu();
  const limits = { maxComputeWorkgroupsPerDimension: 4 };
  for (const variant of ["naive", "tiled", "vec4"] as const) {
    let dispatches = 0;
    const results = await runCases(gpu, [{ M: 4, N: 8, K: 12, batchCount: 9, transA: true }], {
      variant,
      limits,
      onRecorded: (n) => dispatches = n,
    });
    report(`${variant}, batch of 9 in chunks of 4`, results);
    assert.equal(dispatches, 3);
  }
  const results = await runCases(gpu, [{ M: 256, N: 640, K: 8 }], { variant: "vec4", limits });
  report("vec4, 10 tiles on a 4×3 grid", results);
});

Deno.test("matmul: split-K sums its partial products correctly", async () => {
  const gpu = await getGpu();
  // K = 100 in 3 slices of 48, 48, 4; K = 1000 in 7; every layout, accumulate, offsets, C
  // sharing A's buffer.
  const cases: Case[] = [
    ...transposeCases([[36, 40, 100]]).map((c) => ({ ...c, splitK: 3 })),
    { M: 132, N: 8, K: 1000, splitK: 7, accumulate: true, transB: true },
    { M: 20, N: 24, K: 64, splitK: 2, accumulate: true, offsets: [256, 512, 768] },
    { M: 8, N: 12, K: 48, splitK: 3, offsets: [256, 0, 256], shareAC: true },
    { M: 8, N: 8, K: 1001, splitK: 3, transA: true },
  ];
  report("vec4 split-K", await runCases(gpu, cases, { variant: "vec4", seed: 11 }));
  // Chosen automatically: one 72×8 tile with K = 1024 becomes 8 slices of 128 (product + sum).
  // (72 rows: at most SKINNY_MAX_M rows go to the skinny kernel, tested in matmul_skinny_test.ts.)
  let dispatches = 0;
  const auto = await runCases(gpu, [{ M: 72, N: 8, K: 1024, accumulate: true }], {
    onRecorded: (n) => dispatches = n,
  });
  report("auto split-K", auto);
  assert.equal(chooseSplits(1, 1024), 8);
  assert.equal(chooseSplits(3, 4096), 32, "dW of a 128×384 layer over 4,096 tokens");
  assert.equal(chooseSplits(300, 8192), 1, "enough tiles already");
  // Slabs (off by default): any long K is cut, however many tiles.
  assert.equal(SPLITK_SLAB, 0, "slabs are off until an H100 sweep says otherwise");
  assert.equal(chooseSplits(1024, 4096, 512), 8, "4096³ in slabs of 512");
  assert.equal(chooseSplits(1024, 4000, 512), 8, "slices of 512, 512, ..., 416");
  assert.equal(chooseSplits(1024, 1024, 512), 2);
  assert.equal(chooseSplits(1024, 1000, 512), 1, "under two slabs");
  assert.equal(chooseSplits(3, 4096, 512), 32, "few tiles still split as many ways as before");
  assert.equal(chooseSplits(1024, 1 << 16, 512), 64, "at most SPLITK_MAX");
  assert.equal(dispatches, 2);
  // The any-shape kernel splits too: forced on odd shapes, and chosen for an unaligned weight
  // gradient (67 rows of a char vocabulary over 2,048 tokens: 2 tiles of 64², 16 slices).
  const odd: Case[] = [
    ...transposeCases([[33, 17, 101]]).map((c) => ({ ...c, splitK: 4 })),
    { M: 5, N: 70, K: 300, splitK: 2, accumulate: true, offsets: [256, 512, 768] },
    { M: 9, N: 7, K: 40, splitK: 3, offsets: [256, 0, 256], shareAC: true },
  ];
  report("tiled split-K", await runCases(gpu, odd, { variant: "tiled", seed: 13 }));
  const unaligned = await runCases(
    gpu,
    [{ M: 67, N: 8, K: 2048, transA: true, accumulate: true }],
    {
      onRecorded: (n) => dispatches = n,
    },
  );
  report("auto split-K, tiled", unaligned);
  assert.equal(dispatches, 2);
  const buf = { buffer: createStorageBuffer(gpu, 4096) };
  const p = { a: buf, b: buf, c: { buffer: createStorageBuffer(gpu, 4096) }, M: 4, N: 4, K: 8 };
  const batch = new ComputeBatch(gpu);
  assert.throws(
    () => encodeMatmul(batch, gpu, { ...p, splitK: 2, variant: "naive" }),
    /splitK > 1 needs batchCount 1 and the tiled or unrolled vec4 kernel/,
  );
  assert.throws(
    () => encodeMatmul(batch, gpu, { ...p, splitK: 0.5, variant: "vec4" }),
    /splitK must be a positive integer/,
  );
  assert.throws(
    () => encodeMatmul(batch, gpu, { ...p, M: 2, K: 4, batchCount: 2, splitK: 2, variant: "vec4" }),
    /splitK > 1 needs batchCount 1/,
  );
});

Deno.test("matmul: the reference is the textbook sum, bit for bit, in every layout", () => {
  // The reference walks B along its rows for speed; each element must still be the float64 sum
  // of its K terms in order k = 0, 1, ..., as the definition's triple loop computes it.
  const rng = new Rng(17);
  const cases: MatmulShape[] = [
    ...transposeCases([[5, 7, 9], [1, 3, 1], [4, 1, 6]]),
    { M: 3, N: 4, K: 5, batchCount: 3, strideA: 17, strideB: 0, strideC: 13, accumulate: true },
    { M: 3, N: 4, K: 5, batchCount: 2, transA: true, transB: true, accumulate: true },
  ];
  for (const s of cases) {
    const nA = extent(s, s.strideA, s.M * s.K), nB = extent(s, s.strideB, s.K * s.N);
    const nC = extent(s, s.strideC, s.M * s.N);
    const a = Float32Array.from({ length: nA }, () => rng.normal());
    const b = Float32Array.from({ length: nB }, () => rng.normal());
    const c0 = Float64Array.from({ length: nC }, () => rng.normal());
    const got = Float64Array.from(c0), want = Float64Array.from(c0);
    matmulReference(a, b, got, s);
    const [sA, sB, sC] = [s.strideA ?? s.M * s.K, s.strideB ?? s.K * s.N, s.strideC ?? s.M * s.N];
    for (let bi = 0; bi < (s.batchCount ?? 1); bi++) {
      for (let m = 0; m < s.M; m++) {
        for (let n = 0; n < s.N; n++) {
          let sum = 0;
          for (let k = 0; k < s.K; k++) {
            sum += a[bi * sA + (s.transA ? k * s.M + m : m * s.K + k)] *
              b[bi * sB + (s.transB ? n * s.K + k : k * s.N + n)];
          }
          const i = bi * sC + m * s.N + n;
          want[i] = s.accumulate ? want[i] + sum : sum;
        }
      }
    }
    assert.deepEqual(got, want, describe(s));
  }
});

Deno.test("matmul: a prepared check gives checkMatmul's verdicts", () => {
  const rng = new Rng(19);
  const s: MatmulShape = { M: 6, N: 5, K: 40, transB: true, accumulate: true };
  const a = Float32Array.from({ length: 240 }, () => rng.normal());
  const b = Float32Array.from({ length: 200 }, () => rng.normal());
  const c0 = Float32Array.from({ length: 30 }, () => rng.normal());
  const want = Float64Array.from(c0);
  matmulReference(a, b, want, s);
  const check = prepareMatmulCheck(a, b, c0, s);
  const good = Float32Array.from(want), bad = Float32Array.from(want);
  bad[11] += 1e-3;
  for (const got of [good, bad]) assert.deepEqual(check(got), checkMatmul(got, a, b, c0, s));
  assert.ok(check(good).ok && !check(bad).ok && check(bad).worstIndex === 11);
});

Deno.test("matmul: the check fails on a wrong product", async () => {
  // The same inputs checked as if B were transposed: the comparison must reject it, or every
  // passing test above would prove nothing.
  const gpu = await getGpu();
  const rng = new Rng(7);
  const [M, N, K] = [5, 5, 6];
  const a = Float32Array.from({ length: M * K }, () => rng.normal());
  const b = Float32Array.from({ length: K * N }, () => rng.normal());
  const aBuf = createStorageBuffer(gpu, a.byteLength),
    bBuf = createStorageBuffer(gpu, b.byteLength);
  const cBuf = createStorageBuffer(gpu, M * N * 4);
  writeBuffer(gpu, aBuf, a);
  writeBuffer(gpu, bBuf, b);
  const batch = new ComputeBatch(gpu);
  encodeMatmul(batch, gpu, {
    a: { buffer: aBuf },
    b: { buffer: bBuf },
    c: { buffer: cBuf },
    M,
    N,
    K,
  });
  batch.submit();
  const [bytes] = await readBuffers(gpu, [{ buffer: cBuf }]);
  const got = new Float32Array(bytes);
  const zero = new Float32Array(M * N);
  assert.ok(checkMatmul(got, a, b, zero, { M, N, K }).ok);
  assert.ok(!checkMatmul(got, a, b, zero, { M, N, K, transB: true }).ok);
  const off = Float32Array.from(got);
  off[7] += 1e-3;
  assert.ok(!checkMatmul(off, a, b, zero, { M, N, K }).ok, "a 1e-3 error must fail");
  off[7] = NaN;
  assert.ok(!checkMatmul(off, a, b, zero, { M, N, K }).ok, "NaN must fail");
});

Deno.test("matmul: bad arguments throw clear errors and record nothing", async () => {
  const gpu = await getGpu();
  const buf = (n: number) => ({ buffer: createStorageBuffer(gpu, n * 4) });
  const ok = { a: buf(12), b: buf(20), c: buf(15), M: 3, N: 5, K: 4 };
  const shared = buf(64);
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ M: 2.5 }, /M must be a positive integer, got 2.5/],
    [{ N: 0 }, /N must be a positive integer, got 0/],
    [{ K: NaN }, /K must be a positive integer/],
    [{ batchCount: -1 }, /batchCount must be a positive integer/],
    [{ K: 5 }, /a needs 15 f32 elements .* but its slice has 48 bytes/],
    [{ c: { buffer: ok.c.buffer, size: 56 } }, /c needs 15 f32 elements/],
    [{ a: { buffer: createStorageBuffer(gpu, 512), offset: 100 } }, /a.offset 100 must be/],
    [{ strideA: 1.5 }, /strideA must be a non-negative integer/],
    [{ batchCount: 2, strideC: 10, strideA: 0, strideB: 0, c: buf(40) }, /strideC 10 < M·N = 15/],
    [{ a: shared, c: { buffer: shared.buffer, offset: 0, size: 60 } }, /c .* overlaps a/],
    [{ variant: "bogus" }, /unknown variant bogus/],
  ];
  for (const [patch, pattern] of cases) {
    const batch = new ComputeBatch(gpu);
    assert.throws(
      () => encodeMatmul(batch, gpu, { ...ok, ...patch } as Parameters<typeof encodeMatmul>[2]),
      pattern,
    );
    assert.equal(batch.length, 0);
  }
});
