/**
 * Matmul benchmark: TFLOP/s of each numbered kernel version (versions.ts) over a set of shapes,
 * timed on the GPU with timestamp queries, each result checked on sampled rows against the float64
 * reference.
 *
 * The versions of a shape are timed *interleaved*: round r runs one pass of every version (in an
 * order rotated by r), all rounds submitted back to back with no wait between them, and each
 * version's figure is the median of its passes. The first H100 sweep timed the versions one after
 * another with a readback and a CPU check between them, and the same dispatch (v5, v9 and auto
 * are one and the same on most shapes) measured 39 TFLOP/s early in a block and 10 late in it: the
 * order, not the kernel, set the figure. Interleaving gives every version the same GPU state, the
 * busy stream keeps the GPU from idling, the checks run after the timing, and each shape reports
 * what is needed to trust it: how much of the wall time the timed passes cover, how the rounds
 * drifted, and (with nvidia-smi) the SM clock while they ran.
 *
 * ```sh
 * deno run -A bench/matmul/main.ts                  # the GPU shapes, default versions (~60–90 s)
 * deno run -A bench/matmul/main.ts --all            # + the history versions v1 (naive) and v3
 * deno run -A bench/matmul/main.ts --small          # 128³ .. 512³ (CPU fallback adapter)
 * deno run -A bench/matmul/main.ts --decode         # the anchors' decode-step products (M = 64)
 * deno run -A bench/matmul/main.ts --decode --small # the 0.8M anchor's only (CPU fallback)
 * deno run -A bench/matmul/main.ts --versions=v5,v10 --repeats=20 --json=matmul.json \
 *   --torch=torch_matmul.json                        # with bench/torch/matmul.py's output beside
 * ```
 *
 * @module
 */
import { ComputeBatch } from "../../src/gpu/batch.ts";
import { createStorageBuffer, readBuffers, writeBuffer } from "../../src/gpu/buffers.ts";
import { getGpu, type GpuContext } from "../../src/gpu/device.ts";
import { timeBatches } from "../../src/gpu/timing.ts";
import {
  chooseSkinnyTiling,
  matmulFlops,
  type MatmulParams,
  prepareMatmulCheck,
} from "../../src/tensor/matmul/mod.ts";
import { median } from "../../src/util/stats.ts";
import { Rng } from "../../src/util/rng.ts";
import { type ClockSummary, startClockSampler, summariseClocks } from "./clocks.ts";
import { DECODE_VERSIONS, decodeShapes, decodeStepLines } from "./decode.ts";
import { ANCHORS } from "../../src/nn/anchors.ts";
import { MATMUL_VERSIONS, type MatmulVersion } from "./versions.ts";
import { benchArgs, benchInt, benchUsageError } from "../args.ts";

/** One product to time: C[M×N] = op(A)·op(B) with the contraction K, `batchCount` times. */
export interface MatmulBenchShape {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** Independent dense products (attention heads); default 1. */
  batchCount?: number;
}

/** The timer {@link benchMatmul} uses: `timeBatches` (src/gpu/timing.ts) or a stand-in (tests). */
export type MatmulBenchTimer = typeof timeBatches;

/** Options of {@link benchMatmul}. */
export interface MatmulBenchOptions {
  /** Shapes; default by `small`. */
  sizes?: MatmulBenchShape[];
  /** Timed passes per (version, shape), one per interleaved round; default 8 (3 when small). */
  repeats?: number;
  /** Untimed rounds of every version before the timed ones; default 2 (1 when small). */
  warmupRounds?: number;
  /** The CPU-fallback set (128³ .. 512³) instead of the GPU set. */
  small?: boolean;
  /** Version ids to run; default every version not marked `history` (see `all`). */
  versions?: string[];
  /** With no `versions`: run the history versions (v1 naive, v3) too. */
  all?: boolean;
  /** Check sampled rows of each result against the float64 reference; default true. */
  validate?: boolean;
  /** The timer; default `timeBatches`. */
  timer?: MatmulBenchTimer;
}

/** One measured (version, shape). */
export interface MatmulBenchRow {
  version: string;
  M: number;
  N: number;
  K: number;
  /** "NN", "NT", "TN" or "TT": whether A, B are stored transposed. */
  layout: string;
  /** Batch items. */
  batch: number;
  /** Median milliseconds per product over the version's passes (each may hold several). */
  ms: number;
  /** Fastest pass, milliseconds per product. */
  minMs: number;
  /** 2·M·N·K / time. */
  tflops: number;
  /** Products recorded in each timed pass (to amortise the pass's own cost on fast GPUs). */
  perPass: number;
  /** Largest error/bound ratio on the sampled rows (≤ 1 passes); null when not validated. */
  maxRatio: number | null;
  /** Why the version was skipped, when it was. */
  skipped?: string;
  /** The shape's run (shared by its rows): see {@link MatmulShapeRun}. */
  run?: MatmulShapeRun;
}

/** What a shape's interleaved timing says about its own trustworthiness. */
export interface MatmulShapeRun {
  /**
   * Sum of the timed passes over the wall time from the first timed submit to the last result:
   * near 1 when the GPU was kept busy; well under 1 when it idled (submission-bound: the clocks
   * may drop); over ~1.05 means the timestamps are not in nanoseconds.
   */
  busy: number;
  /**
   * Per round, the geometric mean over versions of (that round's pass / the version's median): a
   * trend (1.0 … 0.3) means the GPU changed speed during the shape, whatever the kernel.
   */
  roundFactors: number[];
  /** Wall-clock window of the timed rounds (ms since the epoch), to match clock readings to. */
  window: [number, number];
  /**
   * SM clock while the timed rounds ran (nvidia-smi), filled in after the run: nvidia-smi's
   * piped output arrives in blocks, so readings are matched to windows only at the end.
   */
  clocks?: ClockSummary;
}

/**
 * The GPU shapes: squares (and non-power-of-two twins whose row strides are not 8 or 16 KiB), the
 * 4096³ work split into a short K over many tiles and a long K over few, a transformer projection
 * (8192 tokens × 512 → 1536) three ways, a weight gradient of it, and attention.
 */
export const GPU_SHAPES: MatmulBenchShape[] = [
  { M: 1024, N: 1024, K: 1024 },
  { M: 2048, N: 2048, K: 2048 },
  // 2048³ with 8,000-byte rows: a power-of-two stride effect (partition camping) shows as a gap.
  { M: 2000, N: 2000, K: 2000 },
  { M: 4096, N: 4096, K: 4096 },
  { M: 4000, N: 4000, K: 4000 },
  // 1,024 tiles with K = 1,024 against 64 tiles (auto: 4 splits of 1,024) with K = 4,096: does a
  // workgroup's K length or the product's size set the speed?
  { M: 4096, N: 4096, K: 1024 },
  { M: 1024, N: 1024, K: 4096 },
  { M: 8192, N: 1536, K: 512 },
  { M: 8192, N: 1536, K: 512, transB: true },
  { M: 8192, N: 1536, K: 512, transA: true },
  // A weight gradient, dW = xᵀ·dy over 8,192 tokens: 48 tiles of 128², so split-K.
  { M: 512, N: 1536, K: 8192, transA: true },
  // Attention over T = 256 with 64-wide heads, 128 (batch × head) items: Q·Kᵀ, then P·V.
  { M: 256, N: 256, K: 64, transB: true, batchCount: 128 },
  { M: 256, N: 64, K: 256, batchCount: 128 },
];

/** The CPU-fallback shapes (llvmpipe runs ~1 GFLOP/s). */
export const SMALL_SHAPES: MatmulBenchShape[] = [
  { M: 128, N: 128, K: 128 },
  { M: 256, N: 256, K: 256 },
  { M: 512, N: 512, K: 512 },
  { M: 512, N: 384, K: 128 },
  { M: 512, N: 384, K: 128, transB: true },
  { M: 64, N: 96, K: 2048, transA: true },
  { M: 64, N: 64, K: 32, transB: true, batchCount: 16 },
];

function layoutOf(s: MatmulBenchShape): string {
  return `${s.transA ? "T" : "N"}${s.transB ? "T" : "N"}`;
}

// Sampled rows of C checked against the reference: the first and last (tile edges) and a few
// between, so a wrong tile or edge shows without a float64 product of the whole matrix.
function sampleRows(M: number): number[] {
  const rows = new Set([0, M - 1, Math.floor(M / 2), 127 % M, 128 % M, Math.floor(M / 3)]);
  return [...rows].sort((a, b) => a - b);
}

// A checker of C's sampled rows, prepared once per shape (the float64 reference of 6 rows of a
// 4096³ product takes ~1 s) and applied to every version's result.
function rowChecker(
  a: Float32Array,
  b: Float32Array,
  s: MatmulBenchShape,
): (got: Float32Array) => number {
  const { M, N, K } = s;
  const rows = sampleRows(M);
  const aRows = new Float32Array(rows.length * K);
  rows.forEach((m, i) => {
    for (let k = 0; k < K; k++) aRows[i * K + k] = s.transA ? a[k * M + m] : a[m * K + k];
  });
  const shape = { M: rows.length, N, K, transB: s.transB };
  const check = prepareMatmulCheck(aRows, b, new Float32Array(rows.length * N), shape);
  return (got) => {
    const cRows = new Float32Array(rows.length * N);
    rows.forEach((m, i) => cRows.set(got.subarray(m * N, (m + 1) * N), i * N));
    return check(cRows).maxRatio;
  };
}

/**
 * The interleaved order of passes: `warmupRounds` then `rounds` rounds of every one of `count`
 * versions, round r starting at version r mod count, so that no version always runs first or
 * always follows the same one. Returns version indices, one per pass.
 */
export function interleavedSchedule(count: number, warmupRounds: number, rounds: number): number[] {
  const order: number[] = [];
  for (let r = 0; r < warmupRounds + rounds; r++) {
    for (let j = 0; j < count; j++) order.push((j + r) % count);
  }
  return order;
}

/**
 * Selects the versions to run: the named ones (in their list order), or the default set (neither
 * history nor decode-only versions; `all`: every one).
 */
export function selectVersions(ids?: string[], all = false): MatmulVersion[] {
  if (ids) {
    const unknown = ids.filter((id) => !MATMUL_VERSIONS.some((v) => v.id === id));
    if (unknown.length) throw new RangeError(`unknown matmul version(s): ${unknown.join(", ")}`);
    return MATMUL_VERSIONS.filter((v) => ids.includes(v.id));
  }
  return MATMUL_VERSIONS.filter((v) => all || !(v.history || v.decode));
}

// Uniform values in [-1, 1) (a plain loop: Float32Array.from with a map function is ~5× slower).
function uniforms(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform() * 2 - 1;
  return out;
}

function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
}

/**
 * Times the selected versions on every shape, interleaved per shape, and returns one row per
 * (version, shape).
 *
 * @example
 * ```ts
 * const rows = await benchMatmul({ small: true, versions: ["v2", "v5"] });
 * console.table(rows);
 * ```
 */
export async function benchMatmul(opts: MatmulBenchOptions = {}): Promise<MatmulBenchRow[]> {
  const gpu = await getGpu();
  const small = opts.small ?? false;
  const shapes = opts.sizes ?? (small ? SMALL_SHAPES : GPU_SHAPES);
  const rounds = opts.repeats ?? (small ? 3 : 8);
  const warmupRounds = opts.warmupRounds ?? (small ? 1 : 2);
  const timer = opts.timer ?? timeBatches;
  const versions = selectVersions(opts.versions, opts.all);
  const rows: MatmulBenchRow[] = [];
  const rng = new Rng(2026);
  for (const s of shapes) {
    const { M, N, K } = s;
    const count = s.batchCount ?? 1;
    const a = uniforms(rng, count * M * K);
    const b = uniforms(rng, count * K * N);
    const bufA = createStorageBuffer(gpu, a.byteLength, "bench A");
    const bufB = createStorageBuffer(gpu, b.byteLength, "bench B");
    const bufC = createStorageBuffer(gpu, count * M * N * 4, "bench C");
    writeBuffer(gpu, bufA, a);
    writeBuffer(gpu, bufB, b);
    const p: MatmulParams = { ...s, a: { buffer: bufA }, b: { buffer: bufB }, c: { buffer: bufC } };
    const flops = matmulFlops(M, N, K, count);
    // Several products per pass keep the pass's fixed cost out of the figure and make each pass
    // ~2.5 ms or more on an H100 (1e11 flops at 40 TFLOP/s), so that submitting passes outpaces
    // the GPU and it never idles, and the final wait is small against the stream (each product
    // still waits for the previous one, as they share C).
    const perPass = gpu.isFallback ? 1 : Math.min(64, Math.max(1, Math.ceil(1e11 / flops)));
    const base = (v: MatmulVersion) => ({
      version: v.id,
      M,
      N,
      K,
      layout: layoutOf(s),
      batch: count,
      perPass,
    });
    const runnable: MatmulVersion[] = [];
    const shapeRows: MatmulBenchRow[] = [];
    for (const v of versions) {
      const skipped = v.obstacle(gpu, p);
      if (skipped) {
        shapeRows.push({ ...base(v), ms: NaN, minMs: NaN, tflops: NaN, maxRatio: null, skipped });
      } else {
        runnable.push(v);
      }
    }
    if (runnable.length > 0) {
      const order = interleavedSchedule(runnable.length, warmupRounds, rounds);
      const warmupPasses = warmupRounds * runnable.length;
      let next = 0, timedFrom = 0, wallFrom = 0;
      const record = (batch: ComputeBatch) => {
        if (next === warmupPasses) [timedFrom, wallFrom] = [performance.now(), Date.now()];
        const v = runnable[order[next++]];
        for (let i = 0; i < perPass; i++) v.encode(batch, gpu, p);
      };
      const t = await timer(gpu, record, {
        warmup: warmupPasses,
        repeats: order.length - warmupPasses,
      });
      if (next !== order.length || t.samplesMs.length !== order.length - warmupPasses) {
        throw new Error(
          `matmul bench: the timer recorded ${next} passes and returned ${t.samplesMs.length} ` +
            `samples; expected ${order.length} and ${order.length - warmupPasses}`,
        );
      }
      const wallMs = performance.now() - timedFrom;
      const perVersion = runnable.map(() => [] as number[]);
      t.samplesMs.forEach((ms, i) => perVersion[order[warmupPasses + i]].push(ms / perPass));
      const medians = perVersion.map((xs) => median(xs));
      const roundFactors = Array.from({ length: rounds }, (_, r) =>
        geomean(runnable.map((_, j) => {
          const i = r * runnable.length + j;
          return t.samplesMs[i] / perPass / medians[order[warmupPasses + i]];
        })));
      const run: MatmulShapeRun = {
        busy: t.samplesMs.reduce((x, y) => x + y, 0) / wallMs,
        roundFactors,
        window: [wallFrom, Date.now()],
      };
      const check = (opts.validate ?? true)
        ? rowChecker(a.subarray(0, M * K), b.subarray(0, K * N), s)
        : undefined;
      for (const [j, v] of runnable.entries()) {
        let maxRatio: number | null = null;
        if (check) {
          // After all the timing, one product per version, each checked before the next
          // overwrites C. Batch items are alike; the first stands for all.
          const batch = new ComputeBatch(gpu);
          v.encode(batch, gpu, p);
          batch.submit();
          const [bytes] = await readBuffers(gpu, [{ buffer: bufC, size: M * N * 4 }]);
          maxRatio = check(new Float32Array(bytes));
        }
        const ms = medians[j];
        const minMs = Math.min(...perVersion[j]);
        const tflops = flops / (ms * 1e-3) / 1e12;
        shapeRows.push({ ...base(v), ms, minMs, tflops, maxRatio, run });
      }
    }
    // Rows in the version list's order, whatever ran.
    const rank = (id: string) => versions.findIndex((v) => v.id === id);
    rows.push(...shapeRows.sort((x, y) => rank(x.version) - rank(y.version)));
    for (const buf of [bufA, bufB, bufC]) buf.destroy();
  }
  return rows;
}

/**
 * Keeps the GPU busy for about `ms` with 2048³ products, so that the first shape is not timed
 * while the clocks climb out of idle.
 */
async function warmGpu(gpu: GpuContext, ms: number): Promise<void> {
  const n = 2048, bytes = n * n * 4;
  const [a, b, c] = ["warm A", "warm B", "warm C"].map((l) => createStorageBuffer(gpu, bytes, l));
  const version = MATMUL_VERSIONS.find((v) => v.id === "auto")!;
  const p: MatmulParams = {
    M: n,
    N: n,
    K: n,
    a: { buffer: a },
    b: { buffer: b },
    c: { buffer: c },
  };
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const batch = new ComputeBatch(gpu);
    for (let i = 0; i < 20; i++) version.encode(batch, gpu, p);
    batch.submit();
    await gpu.device.queue.onSubmittedWorkDone();
  }
  for (const buf of [a, b, c]) buf.destroy();
}

/** A torch row from bench/torch/matmul.py, to print the ratio beside ours. */
interface TorchRow {
  M: number;
  N: number;
  K: number;
  layout: string;
  batch?: number;
  tflops: number;
}

function shapeName(r: MatmulBenchRow): string {
  return `${r.batch > 1 ? `${r.batch}×` : ""}${r.M}×${r.N}×${r.K} ${r.layout}`;
}

function torchOf(torch: TorchRow[], r: MatmulBenchRow): TorchRow | undefined {
  return torch.find((t) =>
    t.M === r.M && t.N === r.N && t.K === r.K && t.layout === r.layout &&
    (t.batch ?? 1) === r.batch
  );
}

function clockText(c: ClockSummary | undefined): string {
  if (!c) return "no readings in the window";
  return `${c.medianMHz} MHz (${c.minMHz}–${c.maxMHz}, ${c.samples} readings, max ` +
    `${c.maxWatts.toFixed(0)} W, reasons 0x${c.reasons.toString(16)})`;
}

/** How far to trust a shape's figures, in one line. */
function runLine(run: MatmulShapeRun): string {
  const f = run.roundFactors;
  const drift = Math.max(...f) / Math.min(...f);
  const clocks = run.clocks ? `; SM clock ${clockText(run.clocks)}` : "";
  const warn = [
    run.busy > 1.05 ? "PASS TIMES EXCEED THE WALL: timestamps not ns, or passes overlap" : "",
    run.busy < 0.8 ? "GPU IDLED between passes" : "",
    drift > 1.15 ? "SPEED DRIFTED during the rounds" : "",
  ].filter(Boolean).join(", ");
  return `      busy ${(run.busy * 100).toFixed(0)}% of wall; round factors ` +
    `${f.map((x) => x.toFixed(2)).join(" ")}${clocks}${warn ? `  <-- ${warn}` : ""}`;
}

/** Prints one shape's rows (as soon as they are measured). */
function printShape(gpu: GpuContext, rows: MatmulBenchRow[], torch: TorchRow[]) {
  const unit = gpu.isFallback ? "GFLOP/s" : "TFLOP/s";
  const scale = gpu.isFallback ? 1e3 : 1;
  for (const r of rows) {
    const shape = shapeName(r).padEnd(24);
    if (r.skipped) {
      console.log(`${r.version.padEnd(4)}  ${shape} skipped: ${r.skipped}`);
      continue;
    }
    const ref = torchOf(torch, r);
    const vs = ref
      ? `  ${((r.tflops / ref.tflops) * 100).toFixed(0)}% of torch ${ref.tflops.toFixed(1)}`
      : "";
    const check = r.maxRatio === null
      ? ""
      : `  err/bound ${r.maxRatio.toFixed(3)}${r.maxRatio <= 1 ? "" : " FAIL"}`;
    console.log(
      `${r.version.padEnd(4)}  ${shape} ${r.ms.toFixed(3).padStart(9)} ms (min ` +
        `${r.minMs.toFixed(3)}) ${(r.tflops * scale).toFixed(2).padStart(8)} ${unit}${check}${vs}`,
    );
  }
  const run = rows.find((r) => r.run)?.run;
  if (run) console.log(runLine(run));
}

/** The shape × version grid of TFLOP/s (GFLOP/s on the fallback), torch last. */
function printGrid(gpu: GpuContext, rows: MatmulBenchRow[], torch: TorchRow[]) {
  const scale = gpu.isFallback ? 1e3 : 1;
  const ids = [...new Set(rows.map((r) => r.version))];
  const shapes = [...new Set(rows.map(shapeName))];
  const w = 7;
  console.log(
    `\n${"shape".padEnd(24)}${ids.map((id) => id.padStart(w)).join("")}${"torch".padStart(w)}`,
  );
  for (const shape of shapes) {
    const mine = rows.filter((r) => shapeName(r) === shape);
    const cells = ids.map((id) => {
      const r = mine.find((x) => x.version === id);
      return (r && !r.skipped ? (r.tflops * scale).toFixed(1) : "-").padStart(w);
    });
    const ref = torchOf(torch, mine[0]);
    console.log(
      `${shape.padEnd(24)}${cells.join("")}${(ref ? ref.tflops.toFixed(1) : "").padStart(w)}`,
    );
  }
}

if (import.meta.main) {
  const script = "bench/matmul/main.ts";
  const values = benchArgs(
    script,
    "Times the matmul versions (versions.ts) at square, transformer or decode shapes.",
    {
      small: { type: "boolean", help: "small shapes (a CPU fallback adapter)" },
      decode: {
        type: "boolean",
        help: "the anchors' decode-step products (M = 64), with the skinny variants",
      },
      all: { type: "boolean", help: "every version, not only the history and the defaults" },
      repeats: { type: "string", help: "timed rounds per shape" },
      versions: { type: "string", help: "comma-separated version ids (versions.ts)" },
      json: { type: "string", help: "write the rows as JSON to this file" },
      torch: { type: "string", help: "bench/torch/matmul.py's JSON, for the PyTorch column" },
      "warm-ms": { type: "string", help: "ms of warm-up load before timing (default 2000)" },
      "no-clocks": { type: "boolean", help: "do not sample SM clocks with nvidia-smi" },
      "no-validate": { type: "boolean", help: "skip the check against the float64 reference" },
    },
  );
  const repeats = benchInt(script, values, "repeats", undefined, { min: 1 });
  const warmMs = benchInt(script, values, "warm-ms", 2000, { min: 0 });
  const versionIds = values.versions?.split(",") ??
    (values.decode && !values.all ? DECODE_VERSIONS : undefined);
  try {
    selectVersions(versionIds); // unknown ids fail before any work, the GPU's opening included
  } catch (e) {
    benchUsageError(script, `--versions: ${(e as Error).message}`);
  }
  const gpu = await getGpu();
  const torch: TorchRow[] = values.torch
    ? JSON.parse(Deno.readTextFileSync(values.torch)).rows
    : [];
  console.log(
    `device: ${gpu.adapter.description || gpu.adapter.device}` +
      (gpu.isFallback ? " (CPU fallback adapter: not a GPU figure)" : ""),
  );
  const clocks = gpu.isFallback || values["no-clocks"] ? undefined : await startClockSampler(100);
  if (!gpu.isFallback) {
    console.log(
      clocks ? "sampling SM clocks with nvidia-smi" : "no nvidia-smi: clocks not sampled",
    );
    await warmGpu(gpu, warmMs);
  }
  const decode = values.decode ? decodeShapes(values.small ? ANCHORS.slice(0, 1) : ANCHORS) : [];
  const shapes = values.decode ? decode : values.small ? SMALL_SHAPES : GPU_SHAPES;
  const rows: MatmulBenchRow[] = [];
  const t0 = performance.now();
  try {
    for (const s of shapes) {
      const d = decode.find((x) => x === s);
      if (d) {
        // The tiling encodeSkinny resolves for v14 (nothing forced), kept for the JSON.
        const t = chooseSkinnyTiling(
          d.M,
          d.N,
          d.K,
          gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535,
        );
        d.v14Tiling = t;
        const wg = Math.ceil(d.N / (4 * t.colGroups)) * t.kSplits;
        console.log(
          `-- ${d.anchor} ${d.role} (${d.perStep} per decode step; v14: ${4 * t.colGroups} ` +
            `columns × ${t.kSplits} K slices per workgroup, ${wg} workgroups)`,
        );
      }
      const shapeRows = await benchMatmul({
        small: values.small,
        sizes: [s],
        repeats,
        versions: versionIds,
        all: values.all,
        validate: !values["no-validate"],
      });
      printShape(gpu, shapeRows, torch);
      rows.push(...shapeRows);
    }
  } finally {
    await clocks?.stop();
  }
  if (clocks) {
    console.log("\nSM clock while each shape's timed rounds ran (nvidia-smi):");
    const runs = new Map<MatmulShapeRun, string>();
    for (const r of rows) if (r.run) runs.set(r.run, shapeName(r));
    for (const [run, name] of runs) {
      run.clocks = summariseClocks(clocks.samples, run.window[0], run.window[1]);
      console.log(`${name.padEnd(24)}${clockText(run.clocks)}`);
    }
  }
  printGrid(gpu, rows, torch);
  if (values.decode) { for (const line of decodeStepLines(rows, decode)) console.log(line); }
  console.log(`\n${((performance.now() - t0) / 1e3).toFixed(1)} s`);
  if (values.json) {
    const out = {
      device: gpu.adapter.description,
      isFallback: gpu.isFallback,
      method: gpu.hasTimestamps ? "gpu-timestamps" : "wall-clock",
      command: `deno run -A bench/matmul/main.ts ${Deno.args.join(" ")}`,
      rows,
      ...(values.decode ? { decodeShapes: decode } : {}),
      clockSamples: clocks?.samples ?? [],
    };
    Deno.writeTextFileSync(values.json, JSON.stringify(out, null, 2) + "\n");
  }
  if (rows.some((r) => r.maxRatio !== null && !(r.maxRatio <= 1))) {
    console.error("matmul bench: some results were wrong (err/bound > 1)");
    Deno.exit(1);
  }
}
