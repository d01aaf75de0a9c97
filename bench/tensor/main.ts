/**
 * Tensor op benchmark: GPU time of the memory-bound kernels (elementwise, softmax, norms,
 * cross-entropy, AdamW) against the copy kernel's bandwidth, the limit they are measured against.
 * Each row reports the minimum bytes the op must move, the achieved GB/s and the fraction of copy
 * bandwidth. Timed with `timeBatches` (GPU timestamps; wall-clock on adapters without them, which
 * then includes a ~10 ms wait per repeat and says so in `method`).
 *
 * ```sh
 * deno run -A bench/tensor/main.ts           # GPU shapes (16M elements)
 * deno run -A bench/tensor/main.ts --small   # CPU fallback shapes (256K elements)
 * deno run -A bench/tensor/main.ts --rows 8192 --cols 768 --json out.json
 * ```
 *
 * @module
 */
import { benchArgs, benchInt } from "../args.ts";
import { AdamW, ops } from "../../src/autograd/mod.ts";
import { copyKernel, type GpuContext, grid, timeBatches } from "../../src/gpu/mod.ts";
import { initTensors, keep, ones, randn, type Tensor, tensor, tidy } from "../../src/tensor/mod.ts";

/** Options of {@link benchTensorOps}. */
export interface TensorBenchOptions {
  /** CPU-fallback shapes (rows × C = 256 × 1024) instead of GPU shapes (4096 × 4096). */
  small?: boolean;
  /** Timed repeats per op; default 10 (3 when small). */
  repeats?: number;
  /** Rows and columns of the [rows, C] operands; default by `small`. */
  rows?: number;
  /** Columns (also the vocabulary of the cross-entropy row). */
  cols?: number;
}

/** One measured op. */
export interface TensorBenchRow {
  /** Op and direction. */
  op: string;
  /** Operand shape. */
  shape: number[];
  /** Median milliseconds. */
  ms: number;
  /** Minimum bytes the op must read and write. */
  bytes: number;
  /** bytes / time, GB/s (1e9). */
  gbPerSecond: number;
  /** gbPerSecond / the copy kernel's GB/s at the same size. */
  ofCopy: number;
  /** "gpu-timestamps" or "wall-clock". */
  method: string;
}

/**
 * Times each kernel at one shape and compares it with a copy of the same size.
 *
 * @example
 * ```ts
 * const rows = await benchTensorOps({ small: true });
 * console.table(rows);
 * ```
 */
export async function benchTensorOps(
  opts: TensorBenchOptions = {},
  gpu?: GpuContext,
): Promise<TensorBenchRow[]> {
  const rt = await initTensors(gpu);
  const R = opts.rows ?? (opts.small ? 256 : 4096);
  const C = opts.cols ?? (opts.small ? 1024 : 4096);
  const repeats = opts.repeats ?? (opts.small ? 3 : 10);
  const n = R * C;
  const x = keep(randn([R, C], { seed: 1 }));
  const y = keep(randn([R, C], { seed: 2 }));
  const w = keep(ones([C]));
  const b = keep(randn([C], { seed: 3 }));
  const ids = keep(tensor(new Int32Array(R).map((_, i) => (i * 7919) % C)));
  const p = keep(randn([R, C], { seed: 4 }));
  p.requiresGrad = true;
  p.grad = keep(randn([R, C], { seed: 5 }));
  const opt = new AdamW([p], { lr: 1e-3, maxGradNorm: 1 });
  // saved activations for the backward rows
  const wg = keep(w.detach());
  wg.requiresGrad = true;
  const normOut = keep(ops.rmsNorm(x, wg));
  const bg = keep(b.detach());
  bg.requiresGrad = true;
  const lnOut = keep(ops.layerNorm(x, wg, bg));
  const xg = keep(x.detach());
  xg.requiresGrad = true;
  const smOut = keep(ops.softmax(xg));
  const ceOut = keep(ops.crossEntropy(xg, ids));
  const one = keep(tensor(new Float32Array([1]), []));
  rt.flush();
  const time = async (record: () => void) =>
    await timeBatches(rt.gpu, (batch) => rt.recordInto(batch, () => tidy(record)), { repeats });
  const copyVec4 = Math.ceil(n / 4);
  const copyT = await timeBatches(rt.gpu, (batch) =>
    batch.dispatch({
      kernel: copyKernel,
      bindings: [x.buffer, y.buffer, new Uint32Array([copyVec4])],
      workgroups: grid(Math.ceil(copyVec4 / 256)),
    }), { repeats });
  const copyGbs = (8 * n) / (copyT.medianMs * 1e6);
  const rows: TensorBenchRow[] = [{
    op: "copy (yardstick)",
    shape: [R, C],
    ms: copyT.medianMs,
    bytes: 8 * n,
    gbPerSecond: copyGbs,
    ofCopy: 1,
    method: copyT.method,
  }];
  const cases: Array<[string, number, () => void]> = [
    ["silu forward (vec4)", 8 * n, () => void ops.silu(x)],
    ["add same shape (vec4)", 12 * n, () => void ops.add(x, y)],
    ["add row bias (broadcast)", 8 * n, () => void ops.add(x, b)],
    ["mul by scalar (affine)", 8 * n, () => void ops.mul(x, 0.5)],
    ["sum over last axis", 4 * n, () => void ops.sum(x, -1)],
    ["sum over rows (bias grad)", 4 * n, () => void ops.sum(x, 0)],
    ["softmax forward", 8 * n, () => void ops.softmax(x)],
    ["rmsNorm forward", 8 * n, () => void ops.rmsNorm(x, w)],
    ["rmsNorm backward (dx, dw)", 12 * n, () => void normOut.node!.backward(y)],
    ["layerNorm forward", 8 * n, () => void ops.layerNorm(x, w, b)],
    ["crossEntropy forward", 4 * n, () => void ops.crossEntropy(x, ids)],
    ["AdamW step (+ grad norm)", 32 * n, () => opt.step()],
    // rows added after the 2026-11-23 H100 run (the rows above keep their names and shapes)
    ["max over last axis", 4 * n, () => void ops.max(x, -1)],
    ["logSoftmax forward", 8 * n, () => void ops.logSoftmax(x)],
    ["softmax backward", 12 * n, () => void smOut.node!.backward(y)],
    ["layerNorm backward (dx, dw, db)", 12 * n, () => void lnOut.node!.backward(y)],
    ["crossEntropy backward", 8 * n, () => void ceOut.node!.backward(one)],
  ];
  for (const [op, bytes, record] of cases) {
    const t = await time(record);
    const gbs = bytes / (t.medianMs * 1e6);
    rows.push({
      op,
      shape: [R, C],
      ms: t.medianMs,
      bytes,
      gbPerSecond: gbs,
      ofCopy: gbs / copyGbs,
      method: t.method,
    });
  }
  for (const t of [x, y, w, wg, b, bg, xg, ids, p, normOut, lnOut, smOut, ceOut, one]) t.dispose();
  opt.dispose();
  return rows;
}

/** Prints rows as an aligned table. */
export function formatTensorBench(rows: TensorBenchRow[]): string {
  return rows.map((r) =>
    `${r.op.padEnd(32)} [${r.shape.join("×")}] ${r.ms.toFixed(3).padStart(9)} ms ` +
    `${r.gbPerSecond.toFixed(1).padStart(8)} GB/s ${
      (100 * r.ofCopy).toFixed(0).padStart(4)
    }% of copy (${r.method})`
  ).join("\n");
}

if (import.meta.main) {
  const script = "bench/tensor/main.ts";
  const values = benchArgs(
    script,
    "Times the elementwise, row and optimizer kernels against the copy bandwidth.",
    {
      small: { type: "boolean", help: "small shapes (a CPU fallback adapter)" },
      json: { type: "string", help: "write the rows as JSON to this file" },
      rows: { type: "string", help: "rows of the matrices (default 4096)" },
      cols: { type: "string", help: "columns of the matrices (default 4096)" },
      repeats: { type: "string", help: "timed repeats per kernel" },
    },
  );
  // the values are checked before the GPU is opened
  const sizes = {
    rows: benchInt(script, values, "rows", undefined, { min: 1 }),
    cols: benchInt(script, values, "cols", undefined, { min: 1 }),
    repeats: benchInt(script, values, "repeats", undefined, { min: 1 }),
  };
  const rt = await initTensors();
  console.log(
    `adapter: ${rt.gpu.adapter.description}${rt.gpu.isFallback ? " (CPU fallback)" : ""}`,
  );
  const rows = await benchTensorOps({ small: values.small, ...sizes });
  console.log(formatTensorBench(rows));
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(rows, null, 2) + "\n");
}

export type { Tensor };
