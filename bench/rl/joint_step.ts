/**
 * One joint Jackpot step (SPEC §6, Algorithm 1) on two tiny models of one vocabulary, timed on
 * this adapter with its dispatches broken down by phase and by kernel:
 *
 * rollout by the actor (RolloutEngine, top-k captured, temperature 1) → rewards → GRPO
 * advantages → training-mode forward of both models over the finished sequences → Jackpot mask
 * and weights (`jackpotTensors`) → L = policyLoss(policy; ρ, M) + policyLoss(actor; plain PPO) +
 * λ_d·distillKL(actor ← SG(policy)) → backward → one AdamW step per model.
 *
 * The pieces are exported for tests/rl_joint_step_test.ts, which checks every intermediate of the
 * same step against the float64 references.
 *
 * ```sh
 * deno run -A bench/rl/joint_step.ts                 # 10 timed steps
 * deno run -A bench/rl/joint_step.ts --steps 20 --by-kernel
 * ```
 *
 * @module
 */
import { benchArgs, benchInt } from "../args.ts";
import { AdamW, backward, noGrad, ops } from "../../src/autograd/mod.ts";
import { recordedDispatches } from "../../src/gpu/dispatch_tally.ts";
import { initTensors, readAll, runtime, type Tensor, tensor, tidy } from "../../src/tensor/mod.ts";
import { type ModelConfig, validateModelConfig } from "../../src/nn/config.ts";
import { completion, type RolloutBatch, RolloutEngine } from "../../src/nn/rollout.ts";
import { Transformer } from "../../src/nn/transformer.ts";
import { advantagesTensor, grpoAdvantages } from "../../src/rl/advantages.ts";
import { distillKL, type DistillResult } from "../../src/rl/distill.ts";
import { policyLoss, type PolicyLossResult } from "../../src/rl/policy_loss.ts";
import {
  actorFromRollout,
  type JackpotTensorOptions,
  type JackpotTensors,
  jackpotTensors,
} from "../../src/rl/jackpot_tensors.ts";
import type { JackpotParams } from "../../src/obrs/gpu/mod.ts";
import { Rng } from "../../src/util/rng.ts";
import { median } from "../../src/util/stats.ts";

const shared = {
  vocabSize: 37,
  maxSeqLen: 16,
  ropeTheta: 10000,
  normEps: 1e-6,
  qkNorm: true,
};

/** The rollout model ("actor", ω): one block, width 16, tied embeddings. */
export const ACTOR_CONFIG: ModelConfig = validateModelConfig({
  ...shared,
  hidden: 16,
  layers: 1,
  heads: 2,
  kvHeads: 1,
  headDim: 8,
  intermediate: 32,
  tiedEmbeddings: true,
});

/** The policy (θ): two blocks, width 32, its own classifier. */
export const POLICY_CONFIG: ModelConfig = validateModelConfig({
  ...shared,
  hidden: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  intermediate: 64,
  tiedEmbeddings: false,
});

/** Sizes and hyper-parameters of the joint step. */
export interface JointOptions {
  /** Prompts per batch (GRPO groups). */
  groups: number;
  /** Samples per prompt. */
  groupSize: number;
  /** Tokens per prompt (all equal: the completions start at one position). */
  promptLength: number;
  /** Tokens generated per row at most (T). */
  maxNew: number;
  /** Top-k captured at generation. */
  captureK: number;
  /** Jackpot: λ, k, c1, c2, target, seed of the mask. */
  jackpot: JackpotParams;
  /** PPO clips of both policy terms. */
  epsLow: number;
  /** See `epsLow`. */
  epsHigh: number;
  /** λ_distill. */
  distill: number;
  /** Learning rates of the policy and the actor. */
  lrPolicy: number;
  /** See `lrPolicy`. */
  lrActor: number;
  /** Seed of the weights, prompts and sampling. */
  seed: number;
  /** Std of both models' initial weight matrices (0.2: ᾱ ≈ 0.4 at λ = 1 between the two). */
  std: number;
}

/** Defaults: 3 prompts × 4 samples, 3-token prompts, 6 new tokens, top-8 captured, λ = 1. */
export const JOINT_DEFAULTS: JointOptions = {
  groups: 3,
  groupSize: 4,
  promptLength: 3,
  maxNew: 6,
  captureK: 8,
  jackpot: { lambda: 1, k: 8, c1: 3, c2: 3, target: "new", seed: 11 },
  epsLow: 0.2,
  epsHigh: 0.28,
  distill: 0.1,
  lrPolicy: 1e-2,
  lrActor: 1e-2,
  seed: 1,
  std: 0.2,
};

/** Stop token of the rollouts, and the pad fed after it. */
export const STOP_ID = 2, PAD_ID = 0;

/** The two models, their optimizers, the rollout engine and the prompts. */
export interface JointSetup {
  /** The options. */
  o: JointOptions;
  /** ω. */
  actor: Transformer;
  /** θ. */
  policy: Transformer;
  /** AdamW of θ. */
  optPolicy: AdamW;
  /** AdamW of ω. */
  optActor: AdamW;
  /** Samples with ω. */
  engine: RolloutEngine;
  /** `[groups·groupSize]` prompts, prompt-major. */
  prompts: Int32Array[];
  /** Frees everything. */
  dispose(): void;
}

/** Builds the models (independent draws: they disagree as two unrelated models do), optimizers, engine. */
export function jointSetup(o: JointOptions = JOINT_DEFAULTS): JointSetup {
  const actor = Transformer.init(ACTOR_CONFIG, { seed: o.seed, std: o.std });
  const policy = Transformer.init(POLICY_CONFIG, { seed: o.seed + 1, std: o.std });
  const optPolicy = new AdamW(policy.parameters(), { lr: o.lrPolicy });
  const optActor = new AdamW(actor.parameters(), { lr: o.lrActor });
  const engine = new RolloutEngine(actor, {
    maxBatch: o.groups * o.groupSize,
    maxPromptLength: o.promptLength,
    maxNewTokens: o.maxNew,
    captureK: o.captureK,
  });
  const rng = new Rng(o.seed);
  const prompts: Int32Array[] = [];
  for (let g = 0; g < o.groups; g++) {
    const p = Int32Array.from({ length: o.promptLength }, () => 3 + rng.int(34));
    for (let i = 0; i < o.groupSize; i++) prompts.push(p);
  }
  return {
    o,
    actor,
    policy,
    optPolicy,
    optActor,
    engine,
    prompts,
    dispose() {
      engine.dispose();
      optPolicy.dispose();
      optActor.dispose();
      noGrad(() => {
        actor.dispose();
        policy.dispose();
      });
    },
  };
}

/** A deterministic reward of a completion: the fraction of its tokens that are odd. */
export function reward(tokens: ArrayLike<number>): number {
  let odd = 0;
  for (let i = 0; i < tokens.length; i++) odd += tokens[i] % 2;
  return tokens.length ? odd / tokens.length : 0;
}

/** One rollout batch with everything the trainer needs uploaded ([B, T] = [rows, maxNew]). */
export interface JointBatch {
  /** The engine's output. */
  rollout: RolloutBatch;
  /** Rewards and GRPO advantages per row. */
  rewards: Float64Array;
  /** See `rewards`. */
  advantages: Float64Array;
  /** i32 `[B, P + T − 1]`: prompt and completion (padded), the trainer's forward input. */
  input: Tensor;
  /** i32 `[B, T]` generated ids. */
  targets: Tensor;
  /** u32 `[B, T]` 1 on generated tokens. */
  valid: Tensor;
  /** f32 `[B, T]` Â broadcast over each row's generated tokens (0 on padding). */
  adv: Tensor;
  /** f32 `[B, T]` the behaviour log-probs recorded at generation (0 on padding). */
  behaviour: Tensor;
  /** Frees the tensors. */
  dispose(): void;
}

/** Generates one batch with the actor at temperature 1 and uploads the trainer's inputs. */
export async function rolloutBatch(s: JointSetup, seed: number): Promise<JointBatch> {
  const o = s.o, B = s.prompts.length, P = o.promptLength, T = o.maxNew;
  const r = await s.engine.generate(s.prompts, {
    seed,
    temperature: 1,
    stopId: STOP_ID,
    padId: PAD_ID,
  });
  const rewards = Float64Array.from({ length: B }, (_, b) => reward(completion(r, b)));
  const { advantages } = grpoAdvantages(rewards, o.groupSize);
  const seq = new Int32Array(B * (P + T - 1)).fill(PAD_ID);
  for (let b = 0; b < B; b++) {
    seq.set(s.prompts[b], b * (P + T - 1));
    seq.set(completion(r, b).subarray(0, T - 1), b * (P + T - 1) + P);
  }
  const valid = Uint32Array.from(
    { length: B * T },
    (_, i) => (i % T < r.lengths[(i / T) | 0] ? 1 : 0),
  );
  const behaviour = Float32Array.from(r.logProbs, (x, i) => (valid[i] ? x : 0));
  const t = {
    input: tensor(seq, [B, P + T - 1]),
    targets: tensor(Int32Array.from(r.tokens), [B, T]),
    valid: tensor(valid, [B, T]),
    adv: advantagesTensor(advantages, T, { end: r.lengths }),
    behaviour: tensor(behaviour, [B, T]),
  };
  return {
    rollout: r,
    rewards,
    advantages,
    ...t,
    dispose: () => Object.values(t).forEach((x) => x.dispose()),
  };
}

/**
 * Logits `[B, T, V]` at the positions that predict the generated tokens: the residual stream of
 * the whole input, sliced to those positions before the final norm and classifier, so no row of
 * logits is computed that the loss does not read.
 */
export function completionLogits(model: Transformer, input: Tensor, P: number, T: number): Tensor {
  return model.head(ops.slice(model.hidden(input), 1, P - 1, P - 1 + T));
}

/** ℓ of `targets` under `logits`, fused (no `[B, T, V]` log-softmax is stored). */
export function sampledLogp(logits: Tensor, targets: Tensor): Tensor {
  return ops.neg(ops.crossEntropy(logits, targets, { reduction: "none" }));
}

/** ℓ_ref of the policy at batch time (SPEC §1 p_ref): a no-grad forward before any update. */
export function policyRefLogp(s: JointSetup, b: JointBatch): Tensor {
  return noGrad(() =>
    tidy(() =>
      sampledLogp(completionLogits(s.policy, b.input, s.o.promptLength, s.o.maxNew), b.targets)
    )
  );
}

/** Dispatches of one joint step by phase. */
export interface JointDispatches {
  /** Zeroing both models' gradients. */
  zeroGrad: number;
  /** Training-mode forward of both models and the sampled log-probs. */
  forward: number;
  /** jackpotTensors (Jackpot kernels and the copies into tensors). */
  jackpot: number;
  /** The three loss terms and their sum (forward). */
  losses: number;
  /** The backward of the whole loss. */
  backward: number;
}

/** Dispatches of the loss ops' backward kernels among `keys` (`kernel:entry`, as tallied). */
export function lossBackwardDispatches(keys: readonly string[]): number {
  return keys.filter((k) => /^rl_.*:(pl_bwd|distill_bwd)$/.test(k)).length;
}

/** What {@link recordJointLoss} leaves on the GPU. */
export interface JointStepTensors {
  /** `[B, T, V]` logits of θ and ω. */
  logitsPolicy: Tensor;
  /** See `logitsPolicy`. */
  logitsActor: Tensor;
  /** `[B, T]` ℓ_new of θ and ω (with gradients until backward ran). */
  logpPolicy: Tensor;
  /** See `logpPolicy`. */
  logpActor: Tensor;
  /** The Jackpot tensors. */
  jackpot: JackpotTensors;
  /** The policy's PPO-OBRS term. */
  policyTerm: PolicyLossResult;
  /** The actor's plain PPO term. */
  actorTerm: PolicyLossResult;
  /** The distillation term (before λ_d). */
  distillTerm: DistillResult;
  /** The joint loss L. */
  loss: Tensor;
  /** Dispatches by phase. */
  dispatches: JointDispatches;
}

/**
 * Records the forward, Jackpot, the joint loss and its backward (gradients land in both models'
 * parameters, zeroed first); no readback, no optimizer step. Call inside `tidy` and return what
 * is read. `opts` goes to `jackpotTensors` (`rowData` for the tests).
 */
export function recordJointLoss(
  s: JointSetup,
  b: JointBatch,
  refLogp: Tensor,
  opts: JackpotTensorOptions = {},
): JointStepTensors {
  const o = s.o, P = o.promptLength, T = o.maxNew;
  const rt = runtime();
  const count = () => rt.counters.dispatches;
  const z0 = count();
  s.optPolicy.zeroGrad();
  s.optActor.zeroGrad();
  const c0 = count();
  const logitsPolicy = completionLogits(s.policy, b.input, P, T);
  const logitsActor = completionLogits(s.actor, b.input, P, T);
  const logpPolicy = sampledLogp(logitsPolicy, b.targets);
  const logpActor = sampledLogp(logitsActor, b.targets);
  const c1 = count();
  const { actor } = actorFromRollout(b.rollout, logitsActor);
  const jackpot = jackpotTensors(
    {
      policyLogits: logitsPolicy,
      actor,
      tokens: b.targets,
      valid: b.valid,
      logpRef: refLogp,
    },
    o.jackpot,
    opts,
  );
  const c2 = count();
  const eps = { epsLow: o.epsLow, epsHigh: o.epsHigh };
  const policyTerm = policyLoss({
    logpNew: logpPolicy,
    logpRef: refLogp,
    advantages: b.adv,
    weight: jackpot.rho,
    mask: jackpot.mask,
  }, eps);
  const actorTerm = policyLoss({
    logpNew: logpActor,
    logpRef: b.behaviour,
    advantages: b.adv,
    mask: b.valid,
  }, eps);
  const distillTerm = distillKL(logitsActor, logitsPolicy, { mask: b.valid });
  const loss = ops.add(
    ops.add(policyTerm.loss, actorTerm.loss),
    ops.mul(distillTerm.loss, o.distill),
  );
  const c3 = count();
  backward(loss);
  const c4 = count();
  return {
    logitsPolicy,
    logitsActor,
    logpPolicy,
    logpActor,
    jackpot,
    policyTerm,
    actorTerm,
    distillTerm,
    loss,
    dispatches: {
      zeroGrad: c0 - z0,
      forward: c1 - c0,
      jackpot: c2 - c1,
      losses: c3 - c2,
      backward: c4 - c3,
    },
  };
}

/** One AdamW step of each model (records; no readback). */
export function updateBoth(s: JointSetup): void {
  s.optPolicy.step();
  s.optActor.step();
}

/** Timings and dispatches of {@link benchJointStep}. */
export interface JointBenchResult {
  /** Median wall-clock ms of one step (record, submit, one readback of the statistics). */
  stepMs: number;
  /** Median wall-clock ms of one rollout batch. */
  rolloutMs: number;
  /** Dispatches by phase (the last step), with the optimizers' and the loss ops' backward. */
  dispatches: JointDispatches & { optimizer: number; backwardLosses: number };
  /** The last step's dispatches by kernel:entry, most first. */
  byKernel: [string, number][];
  /** Acceptance rate ᾱ of the last step. */
  acceptRate: number;
}

/** Times `steps` joint steps on one rollout batch (after one untimed warm-up step). */
export async function benchJointStep(steps: number): Promise<JointBenchResult> {
  await initTensors();
  const s = jointSetup();
  const rolloutMs: number[] = [];
  let b: JointBatch | null = null;
  for (let i = 0; i < 3; i++) {
    b?.dispose();
    const t0 = performance.now();
    b = await rolloutBatch(s, 100 + i);
    rolloutMs.push(performance.now() - t0);
  }
  const batch = b!;
  const ref = policyRefLogp(s, batch);
  const times: number[] = [];
  let last: JointBenchResult | null = null;
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    let step!: { d: JointDispatches; optimizer: number; stats: Tensor[] };
    const keys = recordedDispatches(() => {
      step = tidy(() => {
        const r = recordJointLoss(s, batch, ref);
        const before = runtime().counters.dispatches;
        updateBoth(s);
        return {
          d: r.dispatches,
          optimizer: runtime().counters.dispatches - before,
          stats: [r.jackpot.stats, r.policyTerm.stats, r.actorTerm.stats, r.distillTerm.stats],
        };
      });
    });
    const raw = await readAll(step.stats);
    times.push(performance.now() - t0);
    step.stats.forEach((t) => t.dispose()); // the Jackpot stats release its raw buffers
    const tally = new Map<string, number>();
    for (const k of keys) tally.set(k, (tally.get(k) ?? 0) + 1);
    last = {
      stepMs: 0,
      rolloutMs: 0,
      dispatches: {
        ...step.d,
        optimizer: step.optimizer,
        backwardLosses: lossBackwardDispatches(keys),
      },
      byKernel: [...tally.entries()].sort((a, c) => c[1] - a[1]),
      acceptRate: raw[0][1] / Math.max(1, raw[0][0]),
    };
  }
  ref.dispose();
  batch.dispose();
  s.dispose();
  return { ...last!, stepMs: median(times.slice(1)), rolloutMs: median(rolloutMs) };
}

if (import.meta.main) {
  const script = "bench/rl/joint_step.ts";
  const values = benchArgs(script, "Times one joint Jackpot step at tiny shapes.", {
    steps: { type: "string", help: "timed steps", default: "10" },
    "by-kernel": { type: "boolean", help: "list the step's dispatches by kernel:entry" },
  });
  const steps = benchInt(script, values, "steps", 10, { min: 1 });
  const rt = await initTensors();
  console.log(
    `adapter: ${rt.gpu.adapter.description}${rt.gpu.isFallback ? " (CPU fallback)" : ""}`,
  );
  const o = JOINT_DEFAULTS;
  console.log(
    `shapes: actor ${ACTOR_CONFIG.hidden}x${ACTOR_CONFIG.layers}, policy ` +
      `${POLICY_CONFIG.hidden}x${POLICY_CONFIG.layers}, V ${ACTOR_CONFIG.vocabSize}, ` +
      `[B, T] = [${
        o.groups * o.groupSize
      }, ${o.maxNew}], prompt ${o.promptLength}, k ${o.jackpot.k}`,
  );
  const r = await benchJointStep(steps);
  const d = r.dispatches;
  const total = d.zeroGrad + d.forward + d.jackpot + d.losses + d.backward + d.optimizer;
  console.log(`rollout batch: ${r.rolloutMs.toFixed(1)} ms (median of 3, wall-clock)`);
  console.log(
    `joint step: ${r.stepMs.toFixed(1)} ms (median of ${steps}, wall-clock, one submit and ` +
      `one readback of the statistics), ᾱ ${r.acceptRate.toFixed(3)}`,
  );
  console.log(
    `dispatches: ${total} = zeroGrad ${d.zeroGrad} + forward ${d.forward} + jackpot ${d.jackpot} + losses ${d.losses} + ` +
      `backward ${d.backward} (loss kernels ${d.backwardLosses}) + AdamW ${d.optimizer}; ` +
      `Jackpot + loss part ${d.jackpot + d.losses + d.backwardLosses}`,
  );
  if (values["by-kernel"]) {
    for (const [k, n] of r.byKernel) console.log(`  ${String(n).padStart(4)} ${k}`);
  }
}
