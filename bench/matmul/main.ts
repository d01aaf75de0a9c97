/**
 * Matmul benchmark: TFLOP/s of each numbered kernel version (versions.ts) over a set of shapes,
 * timed on the GPU with timestamp queries (median of `repeats` passes), each result checked on
 * sampled rows against the float64 reference.
 *
 * ```sh
 * deno run -A bench/matmul/main.ts                  # 1024³ .. 4096³, 8192×1536×512 (GPU)
 * deno run -A bench/matmul/main.ts --small          # 128³ .. 512³ (CPU fallback adapter)
 * deno run -A bench/matmul/main.ts --versions=v4,v5 --repeats=20 --json=matmul.json \
 *   --torch=torch_matmul.json                        # with bench/torch/matmul.py's output beside
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ComputeBatch } from "../../src/gpu/batch.ts";
import { createStorageBuffer, readBuffers, writeBuffer } from "../../src/gpu/buffers.ts";
import { getGpu, type GpuContext } from "../../src/gpu/device.ts";
import { timeBatches } from "../../src/gpu/timing.ts";
import { checkMatmul, matmulFlops, type MatmulParams } from "../../src/tensor/matmul/mod.ts";
import { Rng } from "../../src/util/rng.ts";
import { MATMUL_VERSIONS } from "./versions.ts";

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

/** Options of {@link benchMatmul}. */
export interface MatmulBenchOptions {
  /** Shapes; default by `small`. */
  sizes?: MatmulBenchShape[];
  /** Timed passes per (version, shape); default 10 (3 when small). */
  repeats?: number;
  /** The CPU-fallback set (128³ .. 512³) instead of the GPU set. */
  small?: boolean;
  /** Version ids to run; default all. */
  versions?: string[];
  /** Check sampled rows of each result against the float64 reference; default true. */
  validate?: boolean;
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
  /** Median milliseconds per product (a pass may hold several products; see `perPass`). */
  ms: number;
  /** 2·M·N·K / time. */
  tflops: number;
  /** Products recorded in each timed pass (to amortise the pass's own cost on fast GPUs). */
  perPass: number;
  /** Largest error/bound ratio on the sampled rows (≤ 1 passes); null when not validated. */
  maxRatio: number | null;
  /** Why the version was skipped, when it was. */
  skipped?: string;
}

/**
 * The GPU shapes: squares, a transformer projection (8192 tokens × 512 → 1536) three ways, and a
 * weight gradient of it.
 */
export const GPU_SHAPES: MatmulBenchShape[] = [
  { M: 1024, N: 1024, K: 1024 },
  { M: 2048, N: 2048, K: 2048 },
  { M: 4096, N: 4096, K: 4096 },
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

function validate(
  got: Float32Array,
  a: Float32Array,
  b: Float32Array,
  s: MatmulBenchShape,
): number {
  const { M, N, K } = s;
  const rows = sampleRows(M);
  const aRows = new Float32Array(rows.length * K);
  const cRows = new Float32Array(rows.length * N);
  rows.forEach((m, i) => {
    for (let k = 0; k < K; k++) aRows[i * K + k] = s.transA ? a[k * M + m] : a[m * K + k];
    cRows.set(got.subarray(m * N, (m + 1) * N), i * N);
  });
  const shape = { M: rows.length, N, K, transB: s.transB };
  return checkMatmul(cRows, aRows, b, new Float32Array(cRows.length), shape).maxRatio;
}

/**
 * Times every selected version on every shape and returns one row per (version, shape).
 *
 * @example
 * ```ts
 * const rows = await benchMatmul({ small: true, versions: ["v2", "v4"] });
 * console.table(rows);
 * ```
 */
export async function benchMatmul(opts: MatmulBenchOptions = {}): Promise<MatmulBenchRow[]> {
  const gpu = await getGpu();
  const small = opts.small ?? false;
  const shapes = opts.sizes ?? (small ? SMALL_SHAPES : GPU_SHAPES);
  const repeats = opts.repeats ?? (small ? 3 : 10);
  const versions = MATMUL_VERSIONS.filter((v) => !opts.versions || opts.versions.includes(v.id));
  if (opts.versions) {
    const unknown = opts.versions.filter((id) => !MATMUL_VERSIONS.some((v) => v.id === id));
    if (unknown.length) throw new RangeError(`unknown matmul version(s): ${unknown.join(", ")}`);
  }
  const rows: MatmulBenchRow[] = [];
  const rng = new Rng(2026);
  for (const s of shapes) {
    const { M, N, K } = s;
    const count = s.batchCount ?? 1;
    const a = Float32Array.from({ length: count * M * K }, () => rng.uniform() * 2 - 1);
    const b = Float32Array.from({ length: count * K * N }, () => rng.uniform() * 2 - 1);
    const bufA = createStorageBuffer(gpu, a.byteLength, "bench A");
    const bufB = createStorageBuffer(gpu, b.byteLength, "bench B");
    const bufC = createStorageBuffer(gpu, count * M * N * 4, "bench C");
    writeBuffer(gpu, bufA, a);
    writeBuffer(gpu, bufB, b);
    const p: MatmulParams = { ...s, a: { buffer: bufA }, b: { buffer: bufB }, c: { buffer: bufC } };
    const flops = matmulFlops(M, N, K, count);
    // On a real GPU a 1024³ product takes ~0.1 ms: several per pass keep the pass's fixed cost
    // out of the figure (each still waits for the previous one, as they share C).
    const perPass = gpu.isFallback ? 1 : Math.min(50, Math.max(1, Math.ceil(2e10 / flops)));
    for (const v of versions) {
      const base = { version: v.id, M, N, K, layout: layoutOf(s), batch: count, perPass };
      const skipped = v.obstacle(gpu, p);
      if (skipped) {
        rows.push({ ...base, ms: NaN, tflops: NaN, maxRatio: null, skipped });
        continue;
      }
      const record = (batch: ComputeBatch) => {
        for (let i = 0; i < perPass; i++) v.encode(batch, gpu, p);
      };
      const t = await timeBatches(gpu, record, { warmup: small ? 1 : 2, repeats });
      let maxRatio: number | null = null;
      if (opts.validate ?? true) {
        // Batch items are alike; the first stands for all.
        const [bytes] = await readBuffers(gpu, [{ buffer: bufC, size: M * N * 4 }]);
        maxRatio = validate(new Float32Array(bytes), a.subarray(0, M * K), b.subarray(0, K * N), s);
      }
      const ms = t.medianMs / perPass;
      rows.push({ ...base, ms, tflops: flops / (ms * 1e-3) / 1e12, maxRatio });
    }
    for (const buf of [bufA, bufB, bufC]) buf.destroy();
  }
  return rows;
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

function printTable(gpu: GpuContext, rows: MatmulBenchRow[], torch: TorchRow[]) {
  const unit = gpu.isFallback ? "GFLOP/s" : "TFLOP/s";
  const scale = gpu.isFallback ? 1e3 : 1;
  console.log(
    `device: ${gpu.adapter.description || gpu.adapter.device}` +
      (gpu.isFallback ? " (CPU fallback adapter: not a GPU figure)" : ""),
  );
  for (const r of rows) {
    const shape = `${r.batch > 1 ? `${r.batch}×` : ""}${r.M}×${r.N}×${r.K} ${r.layout}`.padEnd(24);
    if (r.skipped) {
      console.log(`${r.version.padEnd(4)}  ${shape} skipped: ${r.skipped}`);
      continue;
    }
    const ref = torch.find((t) =>
      t.M === r.M && t.N === r.N && t.K === r.K && t.layout === r.layout &&
      (t.batch ?? 1) === r.batch
    );
    const vs = ref
      ? `  ${((r.tflops / ref.tflops) * 100).toFixed(0)}% of torch ${ref.tflops.toFixed(1)}`
      : "";
    const check = r.maxRatio === null
      ? ""
      : `  err/bound ${r.maxRatio.toFixed(3)}${r.maxRatio <= 1 ? "" : " FAIL"}`;
    console.log(
      `${r.version.padEnd(4)}  ${shape} ${r.ms.toFixed(3).padStart(9)} ms ` +
        `${(r.tflops * scale).toFixed(2).padStart(8)} ${unit}${check}${vs}`,
    );
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      small: { type: "boolean", default: false },
      repeats: { type: "string" },
      versions: { type: "string" },
      json: { type: "string" },
      torch: { type: "string" },
      "no-validate": { type: "boolean", default: false },
    },
  });
  const repeats = values.repeats === undefined ? undefined : Number(values.repeats);
  if (repeats !== undefined && !(Number.isInteger(repeats) && repeats > 0)) {
    throw new RangeError(`--repeats must be a positive integer, got ${values.repeats}`);
  }
  const rows = await benchMatmul({
    small: values.small,
    repeats,
    versions: values.versions?.split(","),
    validate: !values["no-validate"],
  });
  const gpu = await getGpu();
  const torch: TorchRow[] = values.torch
    ? JSON.parse(Deno.readTextFileSync(values.torch)).rows
    : [];
  printTable(gpu, rows, torch);
  if (values.json) {
    const out = {
      device: gpu.adapter.description,
      isFallback: gpu.isFallback,
      method: gpu.hasTimestamps ? "gpu-timestamps" : "wall-clock",
      command: `deno run -A bench/matmul/main.ts ${Deno.args.join(" ")}`,
      rows,
    };
    Deno.writeTextFileSync(values.json, JSON.stringify(out, null, 2) + "\n");
  }
  if (rows.some((r) => r.maxRatio !== null && !(r.maxRatio <= 1))) {
    console.error("matmul bench: some results were wrong (err/bound > 1)");
    Deno.exit(1);
  }
}
