/**
 * The training step and sampling prompts of an anchor, as bench/nn/main.ts times them and
 * bench/nn/profile.ts profiles them (one definition, so both measure the same work).
 *
 * @module
 */
import {
  AdamW,
  type AttentionImpl,
  setAttentionImpl,
  setDeferredGradSums,
} from "../../src/autograd/mod.ts";
import { readAll, type Tensor, tensor, tidy } from "../../src/tensor/mod.ts";
import { type Anchor, ANCHORS, GENERATE_BENCH } from "../../src/nn/anchors.ts";
import { type BenchOption, benchUsageError } from "../args.ts";
import { Transformer } from "../../src/nn/transformer.ts";
import type { TensorRuntime } from "../../src/tensor/runtime.ts";
import { Rng } from "../../src/util/rng.ts";

/** A model, its optimizer and one batch of random tokens, ready to step. */
export interface AnchorTraining {
  model: Transformer;
  opt: AdamW;
  /** The seeded stream the batch was drawn from (prompts continue it). */
  rng: Rng;
  /** One training step (forward, backward, AdamW, zeroGrad) recorded into the open batch. */
  step: () => void;
  /** Releases the optimizer and the batch (the model stays: sampling uses it next). */
  disposeTraining: () => void;
}

/**
 * Builds anchor `a`'s model (seed 1) and AdamW, draws a [B, T] batch and runs `warmup` steps (each
 * submitted; then one readback), which compiles every pipeline, fills the pool and lets the bind
 * group cache settle (tests/gpu_bind_groups_test.ts: ~13 steps).
 */
export async function trainAnchor(
  rt: TensorRuntime,
  a: Anchor,
  B: number,
  T: number,
  warmup: number,
): Promise<AnchorTraining> {
  const c = a.config;
  const model = Transformer.init(c, { seed: 1 });
  const opt = new AdamW(model.parameters(), { lr: 1e-3, maxGradNorm: 1 });
  const rng = new Rng(7);
  const ids = () => Int32Array.from({ length: B * T }, () => rng.int(c.vocabSize));
  const tokens: Tensor = tensor(ids(), [B, T]);
  const targets: Tensor = tensor(ids(), [B, T]);
  const step = () =>
    tidy(() => {
      model.loss(tokens, targets).backward();
      opt.step();
      opt.zeroGrad();
    });
  for (let i = 0; i < warmup; i++) {
    step();
    rt.flush();
  }
  await readAll([opt.gradNorm]);
  const disposeTraining = () => {
    opt.dispose();
    tokens.dispose();
    targets.dispose();
  };
  return { model, opt, rng, step, disposeTraining };
}

/** `batch` random prompts of the sampling benchmark's length (token ids ≥ 3: no specials). */
export function benchPrompts(rng: Rng, vocabSize: number, batch: number): Int32Array[] {
  return Array.from(
    { length: batch },
    () =>
      Int32Array.from({ length: GENERATE_BENCH.promptLength }, () => 3 + rng.int(vocabSize - 3)),
  );
}

/**
 * Applies a bench's `--attention` flag (fused, composed or auto; absent keeps the library default);
 * any other value is a usage error and exit code 2.
 */
function applyAttentionFlag(script: string, value: string | undefined): void {
  if (value === undefined) return;
  const impls: readonly string[] = ["fused", "composed", "auto"];
  if (!impls.includes(value)) {
    benchUsageError(script, `--attention must be fused, composed or auto, got '${value}'`);
  }
  setAttentionImpl(value as AttentionImpl);
}

/**
 * Applies a bench's `--defer-split-mb` flag: the largest split-K weight-gradient partials (MiB)
 * summed with the backward pass's other deferred gradient sums instead of by a reduction dispatch
 * of their own (src/autograd/grad_sums.ts; absent keeps the library default, 0 defers none,
 * `off` turns deferred sums off altogether). A bad value is a usage error and exit code 2.
 */
function applySplitDeferFlag(script: string, value: string | undefined): void {
  if (value === undefined) return;
  if (value === "off") return setDeferredGradSums(false);
  const mb = Number(value);
  if (value.trim() === "" || !(mb >= 0) || !Number.isFinite(mb)) {
    benchUsageError(
      script,
      `--defer-split-mb must be a number of MiB >= 0 or 'off', got '${value}'`,
    );
  }
  setDeferredGradSums(true, { splitMaxBytes: mb * 2 ** 20 });
}

/** The flags bench/nn/main.ts, profile.ts and dispatches.ts share (see {@link applyNnFlags}). */
export const NN_FLAGS = {
  anchors: {
    type: "string",
    help: `comma-separated anchors (default: ${
      ANCHORS.map((a) => a.name).join(",")
    }; 0.8M with --small)`,
  },
  attention: { type: "string", help: "attention implementation: fused, composed or auto" },
  "defer-split-mb": {
    type: "string",
    help: "largest split-K gradient partials (MiB) summed with the deferred sums, or 'off'",
  },
} as const satisfies Record<string, BenchOption>;

/**
 * Applies the {@link NN_FLAGS} of a parsed command line and returns the anchors it names, or
 * undefined without `--anchors` (the script's own default: all, or 0.8M alone with `--small`); an
 * unknown anchor or a bad value is a usage error and exit code 2.
 */
export function applyNnFlags(
  script: string,
  values: { anchors?: string; attention?: string; "defer-split-mb"?: string },
): string[] | undefined {
  applyAttentionFlag(script, values.attention);
  applySplitDeferFlag(script, values["defer-split-mb"]);
  if (values.anchors === undefined) return undefined;
  const known = ANCHORS.map((a) => a.name);
  const names = values.anchors.split(",").map((s) => s.trim());
  const unknown = names.find((n) => !known.includes(n));
  if (unknown !== undefined) {
    benchUsageError(
      script,
      `--anchors: unknown anchor '${unknown}'; the anchors are ${known.join(", ")}`,
    );
  }
  return names;
}
