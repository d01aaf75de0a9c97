/**
 * Attention benchmark: the fused kernels (v1 kernels/attention_fused.wgsl, one score per thread;
 * v2 kernels/attention_flash.wgsl, register-tiled) against the composed ops
 * (matmul, scale, mask, softmax, matmul and the head transposes) at the three anchors' attention
 * shapes (src/nn/anchors.ts), forward and forward + backward. Each row reports GPU milliseconds
 * (median of `timeBatches` repeats, GPU timestamps), dispatches per call and TFLOP/s counted over
 * the causal pairs only (i sees j <= i): 4·D FLOPs per pair and head forward (q·k, p·v), 8·D
 * backward (dP, dQ, dK, dV); the fused backward's recomputed scores are not counted. Before timing,
 * each fused version's outputs and gradients are compared with the composed ops' (a mismatch
 * aborts).
 *
 * ```sh
 * deno run -A bench/attention/main.ts                  # the anchors' B (a GPU)
 * deno run -A bench/attention/main.ts --small          # B = 2 (llvmpipe)
 * deno run -A bench/attention/main.ts --small --json out.json --repeats 5
 * ```
 *
 * @module
 */
import { benchArgs, benchInt } from "../args.ts";
import { type AttentionImpl, backward, ops } from "../../src/autograd/mod.ts";
import {
  type FusedAttentionVersion,
  setFusedAttentionVersion,
} from "../../src/autograd/attention_fused.ts";
import { timeBatches } from "../../src/gpu/mod.ts";
import {
  initTensors,
  keep,
  randn,
  readAll,
  type Tensor,
  type TensorRuntime,
  tidy,
} from "../../src/tensor/mod.ts";
import { ANCHORS } from "../../src/nn/anchors.ts";

/** One attention shape to time. */
export interface AttentionShapeCase {
  /** Anchor name. */
  name: string;
  /** Batch. */
  B: number;
  /** Sequence length (Tq = Tk). */
  T: number;
  /** Query heads. */
  Hq: number;
  /** Key/value heads. */
  Hkv: number;
  /** Head dimension. */
  D: number;
}

/** One measured row. */
export interface AttentionBenchRow {
  /** Anchor. */
  anchor: string;
  /** [B, T, Hq, Hkv, D]. */
  shape: number[];
  /** "composed", "fused v1" or "fused v2". */
  impl: string;
  /** "forward" or "forward+backward". */
  pass: string;
  /** Median GPU milliseconds. */
  ms: number;
  /** Dispatches per call. */
  dispatches: number;
  /** Causal FLOPs / time, TFLOP/s. */
  tflops: number;
  /** Worst |fused − composed| / (1e-5 + 1e-3·|composed|) over output and gradients (0: composed). */
  mismatch: number;
  /** "gpu-timestamps" or "wall-clock". */
  method: string;
}

/** Options of {@link benchAttention}. */
export interface AttentionBenchOptions {
  /** B = 2 instead of the anchors' batch (llvmpipe). */
  small?: boolean;
  /** Timed repeats; default 10 (3 when small). */
  repeats?: number;
}

/** The anchors' attention shapes (B = 2 when `small`). */
export function attentionShapes(small = false): AttentionShapeCase[] {
  return ANCHORS.map((a) => ({
    name: a.name,
    B: small ? 2 : a.B,
    T: a.T,
    Hq: a.config.heads,
    Hkv: a.config.kvHeads,
    D: a.config.headDim,
  }));
}

// Worst |a − b| / (atol + rtol·|b|): the two implementations differ only by rounding.
function mismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / (1e-5 + 1e-3 * Math.abs(b[i]));
    worst = Math.max(worst, Number.isNaN(e) ? Infinity : e);
  }
  return worst;
}

// Runs `fn` with the fused kernel's version set to `version` (when given).
function withVersion<T>(version: FusedAttentionVersion | undefined, fn: () => T): T {
  if (version === undefined) return fn();
  const prev = setFusedAttentionVersion(version);
  try {
    return fn();
  } finally {
    setFusedAttentionVersion(prev);
  }
}

/** The implementations timed: the composed ops and the two fused kernel versions. */
const VARIANTS: ReadonlyArray<
  { label: string; impl: AttentionImpl; version?: FusedAttentionVersion }
> = [
  { label: "composed", impl: "composed" },
  { label: "fused v1", impl: "fused", version: 1 },
  { label: "fused v2", impl: "fused", version: 2 },
];

// Worst mismatch of fused `version` against the composed ops (output and the three gradients).
async function compare(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  dO: Tensor,
  version: FusedAttentionVersion,
): Promise<number> {
  const run = (impl: AttentionImpl) =>
    withVersion(version, () => {
      for (const t of [q, k, v]) t.grad?.dispose(), (t.grad = null);
      const o = tidy(() => {
        const o = ops.causalSelfAttention(q, k, v, { impl });
        backward(o, dO);
        return o;
      });
      const grads = [q, k, v].map((t) => keep(t.grad!));
      for (const t of [q, k, v]) t.grad = null;
      return [o, ...grads];
    });
  const fused = run("fused"), composed = run("composed");
  const vals = await readAll([...fused, ...composed]);
  [...fused, ...composed].forEach((t) => t.dispose());
  let worst = 0;
  for (let i = 0; i < 4; i++) worst = Math.max(worst, mismatch(vals[i], vals[i + 4]));
  return worst;
}

/**
 * Times both implementations at each shape, after checking they agree.
 *
 * @example
 * ```ts
 * console.log(formatAttentionBench(await benchAttention({ small: true })));
 * ```
 */
export async function benchAttention(
  opts: AttentionBenchOptions = {},
  rt?: TensorRuntime,
): Promise<AttentionBenchRow[]> {
  rt ??= await initTensors();
  const runtime = rt;
  const repeats = opts.repeats ?? (opts.small ? 3 : 10);
  const rows: AttentionBenchRow[] = [];
  for (const s of attentionShapes(opts.small)) {
    const { B, T, Hq, Hkv, D } = s;
    const q = keep(randn([B, T, Hq, D], { seed: 1 }));
    const k = keep(randn([B, T, Hkv, D], { seed: 2 }));
    const v = keep(randn([B, T, Hkv, D], { seed: 3 }));
    const dO = keep(randn([B, T, Hq, D], { seed: 4 }));
    for (const t of [q, k, v]) t.requiresGrad = true;
    const bad = new Map<string, number>([["composed", 0]]);
    for (const version of [1, 2] as const) {
      const worst = await compare(q, k, v, dO, version);
      if (!(worst <= 1)) {
        throw new Error(
          `attention ${s.name}: fused v${version} and composed differ (${
            worst.toFixed(2)
          }× tolerance)`,
        );
      }
      bad.set(`fused v${version}`, worst);
    }
    const pairs = B * Hq * (T * (T + 1)) / 2;
    for (const pass of ["forward", "forward+backward"]) {
      for (const { label, impl, version } of VARIANTS) {
        const record = () =>
          withVersion(version, () =>
            tidy(() => {
              const o = ops.causalSelfAttention(q, k, v, { impl });
              if (pass !== "forward") backward(o, dO);
            }));
        const before = runtime.counters.dispatches;
        record(); // also creates the leaves' .grad, so every timed call accumulates the same way
        runtime.flush();
        const dispatches = runtime.counters.dispatches - before;
        const t = await timeBatches(
          runtime.gpu,
          (batch) => runtime.recordInto(batch, record),
          { repeats },
        );
        const flops = (pass === "forward" ? 4 : 12) * D * pairs;
        rows.push({
          anchor: s.name,
          shape: [B, T, Hq, Hkv, D],
          impl: label,
          pass,
          ms: t.medianMs,
          dispatches,
          tflops: flops / (t.medianMs * 1e9),
          mismatch: bad.get(label)!,
          method: t.method,
        });
      }
    }
    for (const t of [q, k, v, dO]) {
      t.grad?.dispose();
      t.dispose();
    }
  }
  return rows;
}

/** Rows as an aligned table, with the fused speed-up over composed per pass. */
export function formatAttentionBench(rows: AttentionBenchRow[]): string {
  return rows.map((r) => {
    const base = rows.find((c) =>
      c.anchor === r.anchor && c.pass === r.pass && c.impl === "composed"
    );
    const speedup = r.impl !== "composed" && base
      ? ` ${(base.ms / r.ms).toFixed(2)}× composed`
      : "";
    return `${r.anchor.padEnd(5)} [${r.shape.join(",")}] ${r.pass.padEnd(16)} ${r.impl.padEnd(9)} ${
      r.ms.toFixed(3).padStart(9)
    } ms ${String(r.dispatches).padStart(3)} dispatches ${
      r.tflops.toFixed(4).padStart(8)
    } TFLOP/s (${r.method})${speedup}`;
  }).join("\n");
}

if (import.meta.main) {
  const script = "bench/attention/main.ts";
  const values = benchArgs(
    script,
    "Times composed, fused v1 and fused v2 attention at the anchors' shapes.",
    {
      small: { type: "boolean", help: "B = 2 (a CPU fallback adapter)" },
      json: { type: "string", help: "write the rows as JSON to this file" },
      repeats: { type: "string", help: "timed repeats per case" },
    },
  );
  const repeats = benchInt(script, values, "repeats", undefined, { min: 1 });
  const rt = await initTensors();
  console.log(
    `adapter: ${rt.gpu.adapter.description}${rt.gpu.isFallback ? " (CPU fallback)" : ""}`,
  );
  const rows = await benchAttention({ small: values.small, repeats }, rt);
  console.log(formatAttentionBench(rows));
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(rows, null, 2) + "\n");
}
