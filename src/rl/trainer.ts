/**
 * The joint RL trainer (SPEC §6–8, Algorithm 1): each iteration the rollout model samples a batch
 * of GRPO groups with its top-k captured, the task scores them, and the batch is consumed in
 * mini-batches; each mini-batch step trains the policy with the chosen correction (Jackpot's OBRS
 * mask and weights by default) and, beside it on the same rollouts, the rollout model with PPO
 * plus distillation toward the policy, each with its own AdamW. The next iteration samples with
 * the updated rollout model.
 *
 * Per step the GPU records the forward of both models, the Jackpot kernels, the losses, the
 * backward and both optimizer steps with no readback; every statistic of an iteration (SPEC §8:
 * acceptance, κ, Z, the weights, k1/k3 and full-vocabulary KL, entropies, clip fractions, gradient
 * norms) is read back once, after its last step.
 *
 * @module
 */
import { AdamW, backward, noGrad, ops } from "../autograd/mod.ts";
import { readAll, runtime, type Tensor, tidy } from "../tensor/mod.ts";
import { gpuMemory, resetGpuMemoryPeak } from "../gpu/mod.ts";
import type { Transformer } from "../nn/transformer.ts";
import { completion, RolloutEngine } from "../nn/rollout.ts";
import { taskModelMismatch } from "../nn/pretrain.ts";
import { stopIdsOf, type Task } from "../tasks/mod.ts";
import { hash3, Rng } from "../util/rng.ts";
import type { JackpotStats } from "../obrs/gpu/mod.ts";
import { decodeDistillStats, distillKL, type DistillStats } from "./distill.ts";
import { decodePolicyLossStats, policyLoss } from "./policy_loss.ts";
import type { PolicyLossStats } from "./policy_loss_reference.ts";
import { decodeMismatch, mismatchStats } from "./mismatch.ts";
import type { MismatchStats } from "./mismatch_reference.ts";
import { actorFromRollout, type JackpotTensors, jackpotTensors } from "./jackpot_tensors.ts";
import { modeWeights, RL_MODES } from "./modes.ts";
import { type RolloutData, rolloutData, type RolloutMinibatch } from "./rollout_data.ts";
import { resolveRlConfig, type RlConfig, RlConfigError } from "./trainer_config.ts";
import { AdaptiveKLCoefficient, lambdaForTokenBudget } from "./controllers.ts";

// RNG streams of the run's seed: prompts, sampling and OBRS masks never share draws.
const PROMPT_STREAM = 0x726c0001, SAMPLE_STREAM = 0x726c0002, MASK_STREAM = 0x726c0003;

/** What one training step (one mini-batch) measured. */
export interface RlStepLog {
  /** Iteration (rollout batch), 0-based. */
  iteration: number;
  /** Mini-batch within the iteration: 0 is the freshest, later ones are staler. */
  minibatch: number;
  /** Optimizer steps taken before this one. */
  step: number;
  /** The joint loss L (Eq. 6). */
  loss: number;
  /** The policy's PPO term. */
  policy: PolicyLossStats;
  /** The rollout model's PPO term (null when it is not trained). */
  actor: PolicyLossStats | null;
  /** The distillation term before λ_distill (null when the rollout model is not trained). */
  distill: DistillStats | null;
  /** λ_distill used in this step. */
  distillCoef: number;
  /** OBRS / Jackpot statistics (null on-policy). */
  jackpot: JackpotStats | null;
  /** Actor–policy mismatch on the sampled tokens and over the vocabulary (SPEC §8, §10). */
  mismatch: MismatchStats;
  /** Global gradient norm of the policy before clipping. */
  gradNormPolicy: number;
  /** Same for the rollout model (null when it is not trained). */
  gradNormActor: number | null;
  /** Learning rates used. */
  lrPolicy: number;
  /** See `lrPolicy`. */
  lrActor: number | null;
}

/** What one iteration (rollout batch and its mini-batch steps) measured. */
export interface RlIterationLog {
  /** 0-based. */
  iteration: number;
  /** λ of the OBRS mask this iteration (chosen for the budget when one is set). */
  lambda: number;
  /** Mean reward of the batch. */
  rewardMean: number;
  /** Fraction of rows with reward 1. */
  solved: number;
  /** Mean generated tokens per row (the stop included). */
  meanLength: number;
  /** Fraction of rows that ended with the stop token. */
  stopped: number;
  /** Groups whose rewards were all equal (zero advantage). */
  flatGroups: number;
  /** Generated tokens. */
  tokens: number;
  /** Wall-clock seconds of the rollout and of the training steps. */
  rolloutSeconds: number;
  /** See `rolloutSeconds`. */
  trainSeconds: number;
  /** GPU bytes this program holds after the iteration (tensors, pooled buffers, scratch). */
  gpuBytes: number;
  /** The most GPU bytes it held during the iteration (see `src/gpu/memory.ts`). */
  gpuPeakBytes: number;
  /** One log per mini-batch step. */
  steps: RlStepLog[];
}

/** The models and the task of a run. */
export interface RlTrainerOptions {
  /** Supplies prompts and verifiable rewards. */
  task: Task;
  /** θ, the model being optimised. */
  policy: Transformer;
  /** ω, the rollout model (omit for "on-policy"). Same vocabulary as the policy. */
  actor?: Transformer | null;
  /** Hyper-parameters (defaults: `RL_DEFAULTS`). */
  config?: Partial<RlConfig>;
}

/** Progress of {@link RlTrainer.iterate}: rollout decode steps, then training steps. */
export type RlProgress = (phase: "rollout" | "train", done: number, total: number) => void;

/**
 * The joint trainer. Owns the optimizers and the rollout engine (not the models: dispose them
 * after the trainer).
 *
 * @example
 * ```ts
 * const trainer = new RlTrainer({ task, policy, actor, config: { mode: "jackpot", prompts: 8 } });
 * for (let i = 0; i < 50; i++) console.log((await trainer.iterate()).rewardMean);
 * trainer.dispose();
 * ```
 */
export class RlTrainer {
  /** The resolved configuration. */
  readonly config: RlConfig;
  /** The task. */
  readonly task: Task;
  /** θ. */
  readonly policy: Transformer;
  /** ω, or null on-policy. */
  readonly actor: Transformer | null;
  /** AdamW of θ. */
  readonly optPolicy: AdamW;
  /** AdamW of ω (null when it is not trained). */
  readonly optActor: AdamW | null;
  #engine: RolloutEngine;
  #iteration = 0;
  #distill: AdaptiveKLCoefficient | null;
  #distillCoef: number;

  /** Checks the models against the task and each other, then builds the optimizers and engine. */
  constructor(o: RlTrainerOptions) {
    const c = resolveRlConfig(o.config);
    const info = RL_MODES[c.mode];
    const actor = o.actor ?? null;
    if (info.onPolicy && actor) {
      throw new RlConfigError(
        `mode "on-policy" samples with the policy itself: leave the rollout model out`,
      );
    }
    if (!info.onPolicy && !actor) {
      throw new RlConfigError(`mode "${c.mode}" needs a rollout model (actor)`);
    }
    const T = c.maxNew;
    for (const [name, m] of [["policy", o.policy], ["actor", actor]] as const) {
      if (!m) continue;
      const problem = taskModelMismatch(o.task, m.config);
      if (problem) throw new RlConfigError(`${name}: ${problem}`);
      const positions = o.task.maxPromptLength + T - 1;
      if (positions > m.config.maxSeqLen) {
        throw new RlConfigError(
          `${name}: prompts of up to ${o.task.maxPromptLength} tokens plus maxNew ${T} need ` +
            `${positions} positions, the model has maxSeqLen ${m.config.maxSeqLen}`,
        );
      }
      if (c.captureK > m.config.vocabSize) {
        throw new RlConfigError(
          `captureK ${c.captureK} exceeds the ${name}'s vocabulary ${m.config.vocabSize}`,
        );
      }
    }
    if (actor && actor.config.vocabSize !== o.policy.config.vocabSize) {
      throw new RlConfigError(
        `the policy's vocabulary (${o.policy.config.vocabSize}) and the rollout model's ` +
          `(${actor.config.vocabSize}) differ: OBRS compares the two distributions token by token`,
      );
    }
    if (actor === o.policy) {
      throw new RlConfigError(
        'the rollout model is the policy object itself; use mode "on-policy" or load two models',
      );
    }
    this.config = c;
    this.task = o.task;
    this.policy = o.policy;
    this.actor = actor;
    const adam = (lr: number) => ({ lr, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm });
    this.optPolicy = new AdamW(o.policy.parameters(), adam(c.lrPolicy));
    this.optActor = actor && c.trainActor ? new AdamW(actor.parameters(), adam(c.lrActor)) : null;
    this.#engine = new RolloutEngine(actor ?? o.policy, {
      maxBatch: c.prompts * c.groupSize,
      maxPromptLength: o.task.maxPromptLength,
      maxNewTokens: T,
      captureK: c.captureK,
    });
    this.#distillCoef = c.distill;
    this.#distill = c.distillTargetKL !== null && this.optActor
      ? new AdaptiveKLCoefficient({
        initial: c.distill,
        target: c.distillTargetKL,
        horizon: 10,
        min: c.distill / 100,
        max: c.distill * 100,
      })
      : null;
  }

  /** Iterations done. */
  get iteration(): number {
    return this.#iteration;
  }

  /** λ_distill of the next step. */
  get distillCoef(): number {
    return this.#distillCoef;
  }

  /** The prompts of iteration `it` (prompt-major, each repeated groupSize times). */
  prompts(it: number): Int32Array[] {
    const c = this.config;
    const rng = new Rng(hash3(c.seed, PROMPT_STREAM, it));
    const out: Int32Array[] = [];
    for (const ex of this.task.sample(rng, c.prompts)) {
      for (let i = 0; i < c.groupSize; i++) out.push(ex.prompt);
    }
    return out;
  }

  /** Samples iteration `it`'s batch with the rollout model and lays it out for training. */
  async rollout(it: number, onProgress?: RlProgress): Promise<RolloutData> {
    const c = this.config, tok = this.task.tokenizer;
    const prompts = this.prompts(it);
    const r = await this.#engine.generate(prompts, {
      seed: hash3(c.seed, SAMPLE_STREAM, it),
      temperature: c.temperature,
      stopId: stopIdsOf(tok),
      padId: tok.padId,
      modelVersion: it,
      onProgress: onProgress && ((d, t) => onProgress("rollout", d, t)),
    });
    return rolloutData(
      r,
      (b) => this.task.reward(prompts[b], completion(r, b)),
      c.groupSize,
      tok.padId,
      { normalizeStd: c.normalizeStd },
    );
  }

  /**
   * One iteration: a rollout batch, then its mini-batch steps; one readback of the statistics.
   * Its log carries the GPU memory held at its end and at its peak.
   */
  async iterate(onProgress?: RlProgress): Promise<RlIterationLog> {
    const { device } = runtime().gpu;
    resetGpuMemoryPeak(device);
    const log = await this.#iterate(onProgress);
    const memory = gpuMemory(device);
    return { ...log, gpuBytes: memory.liveBytes, gpuPeakBytes: memory.peakBytes };
  }

  async #iterate(
    onProgress?: RlProgress,
  ): Promise<Omit<RlIterationLog, "gpuBytes" | "gpuPeakBytes">> {
    const c = this.config, it = this.#iteration;
    const t0 = performance.now();
    const data = await this.rollout(it, onProgress);
    const t1 = performance.now();
    const rows = data.B, nMb = rows / c.minibatch;
    const mbs: RolloutMinibatch[] = [];
    const refs: Tensor[] = [];
    const pending: Pending[] = [];
    try {
      for (let m = 0; m < nMb; m++) {
        mbs.push(data.minibatch(m * c.minibatch, (m + 1) * c.minibatch));
      }
      // p_ref: the policy at batch time, before any step of this batch (SPEC §1)
      for (const mb of mbs) refs.push(noGrad(() => tidy(() => this.#logp(this.policy, mb).logp)));
      const lambda = c.budget === null ? c.lambda : await this.#budgetLambda(data, refs);
      for (let m = 0; m < nMb; m++) {
        pending.push(this.#recordStep(mbs[m], refs[m], lambda, it, m));
        onProgress?.("train", m + 1, nMb);
      }
      const values = await readAll(pending.flatMap((p) => p.tensors));
      const steps: RlStepLog[] = [];
      let at = 0;
      for (const p of pending) {
        steps.push(p.decode(values.slice(at, at + p.tensors.length)));
        at += p.tensors.length;
      }
      this.#updateDistill(steps);
      this.#iteration++;
      let solved = 0, stopped = 0;
      for (let b = 0; b < rows; b++) {
        if (data.rewards[b] === 1) solved++;
        stopped += data.rollout.stopped[b];
      }
      return {
        iteration: it,
        lambda,
        rewardMean: data.rewards.reduce((a, x) => a + x, 0) / rows,
        solved: solved / rows,
        meanLength: data.tokens / rows,
        stopped: stopped / rows,
        flatGroups: data.flatGroups,
        tokens: data.tokens,
        rolloutSeconds: (t1 - t0) / 1000,
        trainSeconds: (performance.now() - t1) / 1000,
        steps,
      };
    } finally {
      for (const p of pending) p.release();
      for (const t of refs) t.dispose();
      for (const mb of mbs) mb.dispose();
    }
  }

  // λ for the acceptance budget: from ℓ_ref (the policy at batch time, which p_new starts at) and
  // the sampled ℓ_inf of every valid token (Theorem 3.4; one readback per rollout batch).
  async #budgetLambda(data: RolloutData, refs: Tensor[]): Promise<number> {
    const c = this.config;
    const host = await readAll(refs);
    const ratios: number[] = [];
    host.forEach((ref, m) => {
      for (let i = 0; i < ref.length; i++) {
        const o = m * c.minibatch * data.T + i;
        if (data.valid[o]) ratios.push(ref[i] - data.behaviour[o]);
      }
    });
    return lambdaForTokenBudget(ratios, c.budget!).lambda;
  }

  // The closed loop of λ_distill on the iteration's mean full-vocabulary KL(policy ‖ actor).
  #updateDistill(steps: RlStepLog[]): void {
    if (!this.#distill) return;
    const kl = steps.map((s) => s.mismatch.klPolicyActor).filter((x): x is number => x !== null);
    if (kl.length === 0) return;
    this.#distillCoef = this.#distill.update(kl.reduce((a, x) => a + x, 0) / kl.length);
  }

  // Logits [b, T, V] predicting the completion tokens, and their (tempered) log-probs [b, T].
  #logp(
    model: Transformer,
    mb: RolloutMinibatch,
  ): { logits: Tensor; scaled: Tensor; logp: Tensor } {
    const h = model.hidden(mb.input);
    const [b, L, C] = h.shape;
    const rows = ops.embedding(ops.reshape(h, [b * L, C]), mb.gather);
    const logits = model.head(rows);
    const tau = this.config.temperature;
    const scaled = tau === 1 ? logits : ops.mul(logits, 1 / tau);
    const logp = ops.neg(ops.crossEntropy(scaled, mb.targets, { reduction: "none" }));
    return { logits, scaled, logp };
  }

  // Records one mini-batch step (no readback) and returns what to read and how to decode it.
  #recordStep(
    mb: RolloutMinibatch,
    logpRef: Tensor,
    lambda: number,
    it: number,
    m: number,
  ): Pending {
    const c = this.config;
    const step = this.optPolicy.stepCount;
    const distillCoef = this.#distillCoef;
    const lrPolicy = this.optPolicy.lrAt(step);
    const lrActor = this.optActor ? this.optActor.lrAt(this.optActor.stepCount) : null;
    let jt: JackpotTensors | null = null;
    const tensors = tidy(() => {
      this.optPolicy.zeroGrad();
      this.optActor?.zeroGrad();
      const pol = this.#logp(this.policy, mb);
      const act = this.actor
        ? (this.optActor ? this.#logp(this.actor, mb) : noGrad(() => this.#logp(this.actor!, mb)))
        : null;
      if (act) {
        const { actor } = actorFromRollout(mb.rollout);
        jt = jackpotTensors({
          policyLogits: ops.detach(pol.scaled),
          // p_inf on the policy's top-k ids the capture missed: the actor's trainer-side logits,
          // tempered as the sampler tempered them (the batch is untruncated; see trainer_config)
          actor: { ...actor, logits: ops.detach(act.scaled) },
          tokens: mb.targets,
          valid: mb.valid,
          logpRef,
        }, {
          lambda,
          k: c.k,
          c1: c.c1,
          c2: c.c2,
          target: c.target,
          seed: hash3(c.seed, MASK_STREAM, step),
          exactZ: c.exactZ,
          baseline: { tisCap: c.tisCap, icepopLow: c.icepopLow, icepopHigh: c.icepopHigh },
        });
      }
      const w = modeWeights(c.mode, {
        valid: mb.valid,
        logpNew: pol.logp,
        logpInf: mb.behaviour,
        jackpot: jt,
      });
      const eps = { epsLow: c.epsLow, epsHigh: c.epsHigh, aggregation: c.aggregation };
      const policyTerm = policyLoss({
        logpNew: pol.logp,
        logpRef,
        advantages: mb.advantages,
        weight: w.weight,
        mask: w.mask,
      }, { ...eps, ratio: w.ratio });
      let loss = policyTerm.loss;
      const stats: Tensor[] = [policyTerm.stats];
      if (act && this.optActor) {
        // ω: plain PPO on its own samples (its batch-time policy is the behaviour), plus the
        // distillation toward SG(p_new) at every sampled position (Eq. 7–8)
        const actorTerm = policyLoss({
          logpNew: act.logp,
          logpRef: mb.behaviour,
          advantages: mb.advantages,
          mask: mb.valid,
        }, eps);
        const distillTerm = distillKL(act.logits, ops.detach(pol.logits), {
          mask: mb.valid,
          direction: c.distillDirection,
        });
        loss = ops.add(ops.add(loss, actorTerm.loss), ops.mul(distillTerm.loss, distillCoef));
        stats.push(actorTerm.stats, distillTerm.stats);
      }
      const mismatch = mismatchStats({
        logpInf: mb.behaviour,
        logpNew: ops.detach(pol.logp),
        mask: mb.valid,
        policyLogits: ops.detach(pol.scaled),
        actorLogits: act ? ops.detach(act.scaled) : undefined,
      });
      backward(loss);
      this.optPolicy.step();
      this.optActor?.step();
      // the optimizers overwrite gradNorm each step: copy this step's
      const norms = [ops.mul(this.optPolicy.gradNorm, 1)];
      if (this.optActor) norms.push(ops.mul(this.optActor.gradNorm, 1));
      const out = [ops.detach(loss), mismatch, ...stats, ...norms];
      // the Jackpot statistics last (returned from the scope, so they outlive it)
      return jt ? [...out, (jt as JackpotTensors).stats] : out;
    });
    const jackpot = jt as JackpotTensors | null;
    const trained = this.optActor !== null;
    return {
      tensors,
      decode: (v) => {
        const where = `iteration ${it}, mini-batch ${m}`;
        const guard = <T>(what: string, f: () => T): T => {
          try {
            return f();
          } catch (e) {
            throw new Error(`rl: ${where}: ${what}: ${(e as Error).message}`);
          }
        };
        const loss = v[0][0];
        if (!Number.isFinite(loss)) {
          throw new Error(`rl: ${where}: the loss is ${loss}; lower the learning rates`);
        }
        return {
          iteration: it,
          minibatch: m,
          step,
          loss,
          mismatch: decodeMismatch(v[1]),
          policy: guard("policy loss", () => decodePolicyLossStats(v[2])),
          actor: trained ? guard("actor loss", () => decodePolicyLossStats(v[3])) : null,
          distill: trained ? decodeDistillStats(v[4]) : null,
          distillCoef,
          gradNormPolicy: v[trained ? 5 : 3][0],
          gradNormActor: trained ? v[6][0] : null,
          jackpot: jackpot ? guard("Jackpot", () => jackpot.decode(v[v.length - 1])) : null,
          lrPolicy,
          lrActor,
        };
      },
      release: () => tensors.forEach((t) => t.dispose()),
    };
  }

  /** Frees the optimizers and the engine (the models stay). */
  dispose(): void {
    this.#engine.dispose();
    this.optPolicy.dispose();
    this.optActor?.dispose();
  }
}

// A recorded step: the tensors to read, how to decode them, and how to free them.
interface Pending {
  tensors: Tensor[];
  decode(values: ArrayLike<number>[]): RlStepLog;
  release(): void;
}
