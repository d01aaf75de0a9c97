/**
 * Transformer benchmark: the training step (forward, backward, clipping, AdamW) and sampling
 * throughput of the rollout engine at the anchor sizes of src/nn/anchors.ts, the same shapes that
 * bench/torch/train_step.py and bench/torch/generate.py time in PyTorch (the yardstick).
 *
 * Training is reported three ways: GPU time of one recorded step (`timeBatches`: GPU timestamps
 * where the adapter has them, else wall clock including one ~10 ms wait); wall-clock time per step
 * over several steps, each submitted once recorded, with one readback at the end (what a training
 * loop sees); and the host part of that, recording + encoding + submit, which bounds the wall time
 * from below when the GPU is faster than JavaScript. Sampling is wall clock of `RolloutEngine.generate` (one readback per batch), as
 * generate.py measures Hugging Face's `generate`.
 *
 * ```sh
 * deno run -A bench/nn/main.ts            # the anchors at their issue shapes (an H100)
 * deno run -A bench/nn/main.ts --small    # 0.8M anchor at CPU-fallback shapes
 * deno run -A bench/nn/main.ts --torch torch   # ratios to bench/torch/{train_step,generate}.py --out torch/…
 * deno run -A bench/nn/main.ts --host-only     # the host side alone at the issue shapes (any machine)
 * deno run -A bench/nn/main.ts --host-only --as-gpu  # same, recording the ops a GPU adapter runs
 * deno run -A bench/nn/main.ts --attention fused  # fused attention kernel everywhere (default auto: by size)
 * deno run -A bench/nn/main.ts --defer-split-mb 0 # split-K weight gradients reduced at once (default: ≤ 4 MiB deferred)
 * ```
 *
 * @module
 */
import {
  attentionImpl,
  deferredGradSumsEnabled,
  GRAD_SUMS_SPLIT_MAX_BYTES,
} from "../../src/autograd/mod.ts";
import { timeBatches } from "../../src/gpu/mod.ts";
import { initTensors, readAll } from "../../src/tensor/mod.ts";
import { ANCHORS, GENERATE_BENCH } from "../../src/nn/anchors.ts";
import { forwardFlopsPerToken, parameterCount } from "../../src/nn/config.ts";
import { RolloutEngine } from "../../src/nn/rollout.ts";
import { median } from "../../src/util/stats.ts";
import { applyNnFlags, benchPrompts, NN_FLAGS, trainAnchor } from "./setup.ts";
import { benchArgs, benchUsageError } from "../args.ts";

// Steps run before timing (see the warm-up comment in benchTransformer).
const WARMUP_STEPS = 16;

/** Options of {@link benchTransformer}. */
export interface TransformerBenchOptions {
  /** CPU-fallback shapes: the 0.8M anchor at B=4, T=32; sampling 8 rows × 16 new tokens. */
  small?: boolean;
  /** Anchors to run (names of src/nn/anchors.ts); default all (only 0.8M when small). */
  anchors?: string[];
  /** Timed repeats; default 5 (2 when small). */
  repeats?: number;
  /**
   * Measure the host side alone at the full shapes: every compute pass is encoded and submitted
   * with its dispatches emptied (see {@link skipGpuWork}), so a machine without a fast GPU shows
   * the JavaScript + WebGPU cost per step and per sampled token. Results are meaningless.
   */
  hostOnly?: boolean;
}

/**
 * Turns every `dispatchWorkgroups` of this process into a no-op: passes, pipelines, bind groups
 * and submits stay as they are, the GPU does nothing. Only for measuring the host side.
 */
export function skipGpuWork(): void {
  GPUComputePassEncoder.prototype.dispatchWorkgroups = function () {};
}

/** One measured anchor. */
export interface TransformerBenchRow {
  /** Anchor name. */
  anchor: string;
  /** Parameters. */
  params: number;
  /** Training batch rows and length. */
  B: number;
  T: number;
  /** Median GPU milliseconds of one recorded training step. */
  stepGpuMs: number;
  /** How stepGpuMs was measured. */
  method: string;
  /** Wall-clock milliseconds per training step (recording included). */
  stepWallMs: number;
  /** Median host milliseconds per step: recording the ops, encoding the pass and submitting. */
  stepHostMs: number;
  /** Training tokens per second (wall clock). */
  trainTokensPerS: number;
  /** Achieved training GFLOP/s (≈ 3 × forward FLOPs, wall clock). */
  trainGflops: number;
  /** Sampling batch and new tokens per row. */
  genBatch: number;
  genTokens: number;
  /** Generated tokens per second (wall clock of `generate`, one readback). */
  genTokensPerS: number;
}

/**
 * A run's `--defer-split-mb` as recorded in its JSON: MiB of split-K partials deferred, or "off"
 * (deferred gradient sums off altogether).
 */
export type DeferSplitSetting = number | "off";

/**
 * The setting `--defer-split-mb` gave this process, already applied by `applyNnFlags` (so
 * `flag` is valid): "off" when deferred sums are off, else the flag's MiB or the library default
 * (`GRAD_SUMS_SPLIT_MAX_BYTES`).
 *
 * @example
 * ```ts
 * deferSplitSetting(undefined); // 4: the default, 4 MiB
 * ```
 */
export function deferSplitSetting(flag: string | undefined): DeferSplitSetting {
  if (!deferredGradSumsEnabled()) return "off";
  return flag === undefined ? GRAD_SUMS_SPLIT_MAX_BYTES / 2 ** 20 : Number(flag);
}

/** What `--json` writes. */
export interface TransformerBenchFile {
  adapter: string;
  fallback: boolean;
  small?: boolean;
  /** The attention implementation of the run (`attentionImpl()`). */
  attention: string;
  /** See {@link deferSplitSetting}. */
  deferSplitMb: DeferSplitSetting;
  rows: TransformerBenchRow[];
}

/**
 * Times the training step and sampling of each anchor.
 *
 * @example
 * ```ts
 * const rows = await benchTransformer({ small: true });
 * console.log(formatTransformerBench(rows));
 * ```
 */
export async function benchTransformer(
  opts: TransformerBenchOptions = {},
): Promise<TransformerBenchRow[]> {
  const rt = await initTensors();
  if (opts.hostOnly) skipGpuWork();
  const small = opts.small ?? false;
  // host-only steps cost milliseconds: more repeats steady the median on a busy machine
  const repeats = opts.repeats ?? (opts.hostOnly ? 30 : small ? 2 : 5);
  const names = opts.anchors ?? (small ? ["0.8M"] : ANCHORS.map((a) => a.name));
  const rows: TransformerBenchRow[] = [];
  for (const name of names) {
    const a = ANCHORS.find((x) => x.name === name);
    if (!a) throw new RangeError(`bench: unknown anchor '${name}'`);
    const B = small ? 4 : a.B, T = small ? 32 : a.T;
    const genBatch = small ? 8 : GENERATE_BENCH.batch;
    const genTokens = small ? 16 : GENERATE_BENCH.newTokens;
    const c = a.config;
    // Warm-up: compiles every pipeline, fills the pool and lets the pool's buffer order settle so
    // that every bind group is found in the cache (tests/gpu_bind_groups_test.ts: ~13 steps).
    const { model, opt, rng, step, disposeTraining } = await trainAnchor(rt, a, B, T, WARMUP_STEPS);
    const gpu = opts.hostOnly
      ? { medianMs: NaN, method: "skipped: host only" }
      : await timeBatches(rt.gpu, (batch) => rt.recordInto(batch, step), {
        warmup: 1,
        repeats,
      });
    // Each step is submitted as soon as it is recorded, so the GPU runs step i while JavaScript
    // records step i + 1; the host time (recording + encoding + submit) is the floor of the wall
    // time when the GPU is faster than the host.
    const hostMs: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < repeats; i++) {
      const h0 = performance.now();
      step();
      rt.flush();
      hostMs.push(performance.now() - h0);
    }
    await readAll([opt.gradNorm]);
    const stepWallMs = (performance.now() - t0) / repeats;
    disposeTraining();

    const prompts = benchPrompts(rng, c.vocabSize, genBatch);
    const engine = new RolloutEngine(model, {
      maxBatch: genBatch,
      maxPromptLength: GENERATE_BENCH.promptLength,
      maxNewTokens: genTokens,
    });
    // warm-up: pipelines, pool and bind groups (the cache settles over two batches)
    for (let i = 0; i < 2; i++) await engine.generate(prompts, { seed: 100 + i });
    const genMs: number[] = [];
    for (let i = 0; i < Math.max(1, Math.min(repeats, opts.hostOnly ? 5 : 3)); i++) {
      const g0 = performance.now();
      await engine.generate(prompts, { seed: i + 1 });
      genMs.push(performance.now() - g0);
    }
    engine.dispose();
    model.dispose();
    const genMedian = genMs.sort((x, y) => x - y)[Math.floor(genMs.length / 2)];
    rows.push({
      anchor: name,
      params: parameterCount(c),
      B,
      T,
      stepGpuMs: gpu.medianMs,
      method: gpu.method,
      stepWallMs,
      stepHostMs: median(hostMs),
      trainTokensPerS: (B * T) / (stepWallMs / 1000),
      trainGflops: (3 * forwardFlopsPerToken(c, T) * B * T) / (stepWallMs * 1e6),
      genBatch,
      genTokens,
      genTokensPerS: (genBatch * genTokens) / (genMedian / 1000),
    });
  }
  return rows;
}

/** Aligned text table of the rows. */
export function formatTransformerBench(rows: TransformerBenchRow[]): string {
  return rows.map((r) =>
    `${r.anchor.padStart(5)} ${(r.params / 1e6).toFixed(2)}M  train B=${r.B} T=${r.T}: ` +
    `${Number.isNaN(r.stepGpuMs) ? "—" : r.stepGpuMs.toFixed(1)} ms GPU (${r.method}), ` +
    `${r.stepWallMs.toFixed(1)} ms wall ` +
    `(host ${r.stepHostMs.toFixed(1)} ms), ` +
    `${r.trainTokensPerS.toFixed(0)} tok/s, ${r.trainGflops.toFixed(2)} GFLOP/s | ` +
    `sample ${r.genBatch}×${r.genTokens}: ${r.genTokensPerS.toFixed(1)} tok/s`
  ).join("\n");
}

interface TorchRow {
  anchor: string;
  tokens_per_s: number;
}

async function readTorch(path: string): Promise<TorchRow[] | null> {
  try {
    return (JSON.parse(await Deno.readTextFile(path)) as { rows: TorchRow[] }).rows;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Lines comparing `rows` with `DIR/train_step.json` and `DIR/generate.json` written by
 * bench/torch/train_step.py and generate.py (`--out`): our tokens/s over PyTorch's, per anchor.
 */
export async function compareWithTorch(
  rows: TransformerBenchRow[],
  dir: string,
): Promise<string[]> {
  const train = await readTorch(`${dir}/train_step.json`);
  const gen = await readTorch(`${dir}/generate.json`);
  const lines: string[] = [];
  for (const r of rows) {
    const t = train?.find((x) => x.anchor === r.anchor);
    const g = gen?.find((x) => x.anchor === r.anchor);
    if (t) {
      lines.push(
        `${r.anchor} train: ${
          (r.trainTokensPerS / t.tokens_per_s).toFixed(3)
        }× PyTorch eager fp32 tokens/s`,
      );
    }
    if (g) {
      lines.push(
        `${r.anchor} sample: ${
          (r.genTokensPerS / g.tokens_per_s).toFixed(3)
        }× HF generate tokens/s`,
      );
    }
  }
  if (lines.length === 0) lines.push(`no PyTorch results for these anchors in ${dir}`);
  return lines;
}

if (import.meta.main) {
  const script = "bench/nn/main.ts";
  const values = benchArgs(
    script,
    "Times a training step and a sampling batch of each anchor (GPU timestamps and wall clock).",
    {
      small: { type: "boolean", help: "small shapes (a CPU fallback adapter)" },
      "host-only": { type: "boolean", help: "empty every dispatch: the host's cost alone" },
      "as-gpu": {
        type: "boolean",
        help:
          "with --host-only: record the ops a GPU adapter runs (skinny decode matmuls, fusions)",
      },
      json: { type: "string", help: "write the rows as JSON to this file" },
      torch: { type: "string", help: "folder of the PyTorch scripts' JSON, for ratios" },
      ...NN_FLAGS,
    },
  );
  const anchors = applyNnFlags(script, values);
  if (values["as-gpu"] && !values["host-only"]) {
    benchUsageError(
      script,
      "--as-gpu needs --host-only (a CPU adapter cannot time a GPU's kernels)",
    );
  }
  const rt = await initTensors();
  const fallback = rt.gpu.isFallback;
  // The ops are chosen by adapter (skinny matmuls and their fused prologues only on a GPU): with
  // the work emptied, this measures the host side of the GPU's decode path on any machine.
  if (values["as-gpu"]) rt.gpu.isFallback = false;
  console.log(
    `adapter: ${rt.gpu.adapter.description}${fallback ? " (CPU fallback)" : ""}, ` +
      `attention: ${attentionImpl()}`,
  );
  const rows = await benchTransformer({
    small: values.small,
    anchors,
    hostOnly: values["host-only"],
  });
  if (values["host-only"]) {
    console.log(
      `host only${
        values["as-gpu"] ? " (ops as a GPU adapter records them)" : ""
      }: the GPU ran nothing; wall and tok/s are the host's ceiling`,
    );
  }
  console.log(formatTransformerBench(rows));
  if (values.torch) {
    for (const line of await compareWithTorch(rows, values.torch)) console.log(line);
  }
  if (values.json) {
    const file: TransformerBenchFile = {
      adapter: rt.gpu.adapter.description,
      fallback,
      small: values.small,
      attention: attentionImpl(),
      deferSplitMb: deferSplitSetting(values["defer-split-mb"]),
      rows,
    };
    await Deno.writeTextFile(values.json, JSON.stringify(file, null, 2) + "\n");
  }
}
