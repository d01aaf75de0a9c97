/**
 * Where a training step and a sampling batch spend their GPU time, kernel by kernel, at the anchor
 * sizes of src/nn/anchors.ts (the shapes bench/nn/main.ts times whole). Each dispatch runs in a
 * pass of its own with GPU timestamps (src/gpu/profile.ts); the one-pass time of the same step is
 * printed beside the profile's sum, whose difference is what separate passes add.
 *
 * ```sh
 * deno run -A bench/nn/profile.ts                    # every anchor (an H100)
 * deno run -A bench/nn/profile.ts --small            # 0.8M at CPU-fallback shapes
 * deno run -A bench/nn/profile.ts --anchors 5M --top 30 --json profile.json
 * deno run -A bench/nn/profile.ts --attention fused  # with the fused attention kernel
 * ```
 *
 * @module
 */
import {
  ComputeBatch,
  type DispatchTiming,
  formatProfile,
  type ProfileRow,
  startProfiling,
  summariseProfile,
  timeBatches,
} from "../../src/gpu/mod.ts";
import { initTensors } from "../../src/tensor/mod.ts";
import { ANCHORS, GENERATE_BENCH } from "../../src/nn/anchors.ts";
import { RolloutEngine } from "../../src/nn/rollout.ts";
import { applyNnFlags, benchPrompts, NN_FLAGS, trainAnchor } from "./setup.ts";
import { benchArgs, benchInt } from "../args.ts";

/** The profile of one anchor. */
export interface AnchorProfile {
  /** Anchor name. */
  anchor: string;
  /** Training batch rows and length. */
  B: number;
  T: number;
  /** Median GPU ms of the step recorded into one pass (as bench/nn/main.ts reports it). */
  stepOnePassMs: number;
  /** Sum of the step's per-dispatch times, ms. */
  stepProfiledMs: number;
  /** Dispatches per step. */
  stepDispatches: number;
  /** The step, grouped by kernel and by dispatch shape. */
  stepByKernel: ProfileRow[];
  stepByDispatch: ProfileRow[];
  /** Sampling batch and new tokens. */
  genBatch: number;
  genTokens: number;
  /** Sum of one `generate` call's per-dispatch times, ms. */
  genProfiledMs: number;
  /** Dispatches of that call. */
  genDispatches: number;
  /** The sampling call, grouped by kernel and by dispatch shape. */
  genByKernel: ProfileRow[];
  genByDispatch: ProfileRow[];
}

function sumMs(t: readonly DispatchTiming[]): number {
  return t.reduce((s, x) => s + x.ms, 0);
}

/**
 * Profiles one training step (after a warm-up) and one sampling batch of each anchor.
 *
 * @example
 * ```ts
 * const [p] = await profileAnchors({ small: true });
 * console.log(formatProfile(p.stepByKernel));
 * ```
 */
export async function profileAnchors(
  { small = false, anchors }: { small?: boolean; anchors?: string[] } = {},
): Promise<AnchorProfile[]> {
  const rt = await initTensors();
  if (!rt.gpu.hasTimestamps) throw new Error("profile: this adapter has no timestamp-query");
  const names = anchors ?? (small ? ["0.8M"] : ANCHORS.map((a) => a.name));
  const out: AnchorProfile[] = [];
  for (const name of names) {
    const a = ANCHORS.find((x) => x.name === name);
    if (!a) throw new RangeError(`profile: unknown anchor '${name}'`);
    const B = small ? 4 : a.B, T = small ? 32 : a.T;
    const genBatch = small ? 8 : GENERATE_BENCH.batch;
    const genTokens = small ? 8 : GENERATE_BENCH.newTokens;
    const c = a.config;
    const { model, rng, step, disposeTraining } = await trainAnchor(
      rt,
      a,
      B,
      T,
      small ? 3 : 16,
    );
    const onePass = await timeBatches(rt.gpu, (b) => rt.recordInto(b, step), {
      warmup: 1,
      repeats: small ? 2 : 5,
    });
    const batch = new ComputeBatch(rt.gpu);
    rt.recordInto(batch, step);
    let profiler = startProfiling(rt.gpu);
    batch.submit();
    const stepTimings = await profiler.finish();

    const prompts = benchPrompts(rng, c.vocabSize, genBatch);
    const engine = new RolloutEngine(model, {
      maxBatch: genBatch,
      maxPromptLength: GENERATE_BENCH.promptLength,
      maxNewTokens: genTokens,
    });
    for (let i = 0; i < 2; i++) await engine.generate(prompts, { seed: 100 + i });
    profiler = startProfiling(rt.gpu);
    try {
      await engine.generate(prompts, { seed: 1 });
    } catch (e) {
      await profiler.finish(); // leave no profiler running behind an error
      throw e;
    }
    // generate reads back once, after its last submit: the profile holds the whole call
    const genTimings = await profiler.finish();
    engine.dispose();
    disposeTraining();
    model.dispose();
    out.push({
      anchor: name,
      B,
      T,
      stepOnePassMs: onePass.medianMs,
      stepProfiledMs: sumMs(stepTimings),
      stepDispatches: stepTimings.length,
      stepByKernel: summariseProfile(stepTimings),
      stepByDispatch: summariseProfile(stepTimings, { groupBy: "dispatch" }),
      genBatch,
      genTokens,
      genProfiledMs: sumMs(genTimings),
      genDispatches: genTimings.length,
      genByKernel: summariseProfile(genTimings),
      genByDispatch: summariseProfile(genTimings, { groupBy: "dispatch" }),
    });
  }
  return out;
}

/** The report of one anchor's profile, `top` rows per table. */
export function formatAnchorProfile(p: AnchorProfile, top = 20): string {
  return [
    `== ${p.anchor}: training step B=${p.B} T=${p.T}: ${p.stepDispatches} dispatches, ` +
    `${p.stepProfiledMs.toFixed(2)} ms profiled (a pass each), ${
      p.stepOnePassMs.toFixed(2)
    } ms in one pass`,
    "-- by kernel",
    formatProfile(p.stepByKernel, { top }),
    "-- by dispatch shape",
    formatProfile(p.stepByDispatch, { top }),
    `== ${p.anchor}: sampling ${p.genBatch}×${p.genTokens}: ${p.genDispatches} dispatches, ` +
    `${p.genProfiledMs.toFixed(2)} ms profiled, ${
      (p.genProfiledMs / p.genTokens).toFixed(3)
    } ms per decode step`,
    "-- by kernel",
    formatProfile(p.genByKernel, { top }),
    "-- by dispatch shape",
    formatProfile(p.genByDispatch, { top }),
  ].join("\n");
}

if (import.meta.main) {
  const script = "bench/nn/profile.ts";
  const values = benchArgs(
    script,
    "Profiles the training step and a sampling batch of each anchor, dispatch by dispatch.",
    {
      small: { type: "boolean", help: "small shapes (a CPU fallback adapter)" },
      top: { type: "string", default: "20", help: "kernels listed per profile" },
      json: { type: "string", help: "write the profiles as JSON to this file" },
      ...NN_FLAGS,
    },
  );
  const anchors = applyNnFlags(script, values);
  const top = benchInt(script, values, "top", 20, { min: 1 });
  const rt = await initTensors();
  console.log(
    `adapter: ${rt.gpu.adapter.description}${rt.gpu.isFallback ? " (CPU fallback)" : ""}`,
  );
  const profiles = await profileAnchors({
    small: values.small,
    anchors,
  });
  for (const p of profiles) console.log(formatAnchorProfile(p, top));
  if (values.json) {
    await Deno.writeTextFile(
      values.json,
      JSON.stringify({ adapter: rt.gpu.adapter.description, profiles }, null, 2) + "\n",
    );
  }
}
