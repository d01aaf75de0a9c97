/**
 * Supervised pretraining of a transformer on a task: next-token cross-entropy on the answer and
 * stop tokens of `prompt + answer + stop` sequences, AdamW with warm-up and cosine decay, and
 * greedy exact-match evaluation through the rollout engine until a target accuracy is reached.
 * No file I/O here: the `pretrain` command writes the run folder from the callbacks.
 *
 * @module
 */
import { AdamW, noGrad, ops, warmupCosine } from "../autograd/mod.ts";
import {
  buildSupervisedBatch,
  evaluateExactMatch,
  type Example,
  maxSequenceLength,
  stopIdsOf,
  type Task,
} from "../tasks/mod.ts";
import { readAll, type Tensor, tensor, tidy } from "../tensor/mod.ts";
import { Rng } from "../util/rng.ts";
import type { ModelConfig } from "./config.ts";
import { completion, RolloutEngine } from "./rollout.ts";
import { Transformer } from "./transformer.ts";

/** Options of {@link pretrain}. */

/** Training steps between readbacks of the losses (one wait for all of them). */
const READ_EVERY = 16;

/**
 * Streams of the training data and evaluation prompts under the run's seed. Parameter
 * initialisation draws parameter i from stream i (1, 2, …) and rollout rows from stream0 + r, so
 * the data streams sit at the top of the range where neither reaches (below `jackpot sample`'s
 * prompt stream, 0xffffffff).
 */
export const PRETRAIN_DATA_STREAM = 0xfffffff0;
/** See {@link PRETRAIN_DATA_STREAM}. */
export const PRETRAIN_EVAL_STREAM = 0xfffffff1;

export interface PretrainOptions {
  /** The task. */
  task: Task;
  /** The model to train (ignored when `init` is given). */
  model: ModelConfig;
  /** Start from these weights instead of a fresh model. */
  init?: Transformer;
  /** Most optimizer steps. */
  steps: number;
  /** Sequences per step. */
  batchSize: number;
  /** Peak learning rate. */
  lr: number;
  /** Warm-up steps; default 5% of `steps`. */
  warmup?: number;
  /** AdamW weight decay; default 0.01. */
  weightDecay?: number;
  /** Clip the global gradient norm; default 1. */
  maxGradNorm?: number;
  /** Seed of the initialisation, the data order and the evaluation set. */
  seed: number;
  /** Evaluate every this many steps (and at the end). */
  evalEvery: number;
  /** Prompts in the evaluation set (greedy decoding, exact match). */
  evalSize: number;
  /** Stop once the evaluation accuracy reaches this (1.01: never stop early). */
  targetAccuracy: number;
  /** Called after every step. */
  onStep?: (log: StepLog) => void;
  /** Called after every evaluation (the command saves a checkpoint here). */
  onEval?: (log: EvalLog, model: Transformer) => Promise<void> | void;
  /** Aborting stops between two steps. */
  signal?: AbortSignal;
}

/** One optimizer step. */
export interface StepLog {
  /** 1-based step. */
  step: number;
  /** Mean cross-entropy of the batch (nats per answer token). */
  loss: number;
  /** Learning rate used. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Seconds since the start. */
  seconds: number;
}

/** One evaluation. */
export interface EvalLog {
  /** Steps taken. */
  step: number;
  /** Exact-match accuracy of greedy completions. */
  accuracy: number;
  /** Prompts evaluated. */
  n: number;
  /** Seconds since the start. */
  seconds: number;
}

/** What {@link pretrain} returns. */
export interface PretrainResult {
  /** The trained model (the caller disposes it). */
  model: Transformer;
  /** Every step. */
  steps: StepLog[];
  /** Every evaluation. */
  evals: EvalLog[];
  /** Whether the target accuracy was reached. */
  reached: boolean;
  /** Wall-clock seconds. */
  seconds: number;
}

/**
 * Why `config` cannot be trained on `task` (its sequences need more positions, or its tokens more
 * vocabulary, than the model has), or null when it can.
 */
export function taskModelMismatch(task: Task, config: ModelConfig): string | null {
  const T = maxSequenceLength(task);
  if (T > config.maxSeqLen) {
    return `the task needs ${T} positions, the model has maxSeqLen ${config.maxSeqLen}`;
  }
  if (task.tokenizer.vocabSize > config.vocabSize) {
    return `the task's vocabulary (${task.tokenizer.vocabSize}) exceeds the model's (${config.vocabSize})`;
  }
  return null;
}

/** Greedy exact-match accuracy of `model` on `examples` through a rollout engine. */
export async function evaluateGreedy(
  engine: RolloutEngine,
  task: Task,
  examples: readonly Example[],
): Promise<number> {
  const prompts = examples.map((e) => e.prompt);
  const r = await engine.generate(prompts, {
    seed: 0,
    temperature: 0,
    stopId: stopIdsOf(task.tokenizer),
    padId: task.tokenizer.padId,
  });
  const completions = prompts.map((_, b) => completion(r, b));
  return evaluateExactMatch(task, prompts, completions).accuracy;
}

/**
 * Trains until `targetAccuracy` or `steps`, whichever comes first.
 *
 * @example
 * ```ts
 * const task = createTaskFromSpec("arithmetic:maxDigits=1");
 * const r = await pretrain({ task, model: modelConfig("tiny", task.tokenizer.vocabSize), steps: 300,
 *   batchSize: 64, lr: 1e-2, seed: 1, evalEvery: 50, evalSize: 128, targetAccuracy: 0.95 });
 * ```
 */
export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const { task } = o;
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const problem = taskModelMismatch(task, o.init?.config ?? o.model);
  if (problem) throw new RangeError(`pretrain: ${problem}`);
  const model = o.init ?? Transformer.init(o.model, { seed: o.seed });
  const T = maxSequenceLength(task);
  const warmup = o.warmup ?? Math.max(1, Math.round(o.steps * 0.05));
  const opt = new AdamW(model.parameters(), {
    lr: warmupCosine({ lr: o.lr, warmup, total: o.steps, minLr: o.lr / 10 }),
    weightDecay: o.weightDecay ?? 0.01,
    maxGradNorm: o.maxGradNorm ?? 1,
  });
  const dataRng = new Rng(o.seed, PRETRAIN_DATA_STREAM);
  const evalSet = task.sample(new Rng(o.seed, PRETRAIN_EVAL_STREAM), o.evalSize);
  const engine = new RolloutEngine(model, {
    maxBatch: o.evalSize,
    maxPromptLength: task.maxPromptLength,
    maxNewTokens: task.maxAnswerLength + 1,
  });
  const steps: StepLog[] = [];
  const evals: EvalLog[] = [];
  // Losses and gradient norms stay on the GPU and are read READ_EVERY steps with one wait: a
  // readback costs >= ~10 ms in Deno, more than a whole training step on a GPU.
  let pending: { step: number; lr: number; seconds: number; loss: Tensor; gradNorm: Tensor }[] = [];
  const drain = async () => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    const values = await readAll(batch.flatMap((p) => [p.loss, p.gradNorm]));
    for (const p of batch) {
      p.loss.dispose();
      p.gradNorm.dispose();
    }
    batch.forEach((p, i) => {
      const loss = values[2 * i][0];
      if (!Number.isFinite(loss)) {
        throw new Error(`pretrain: the loss is ${loss} at step ${p.step}; lower --lr`);
      }
      const log = {
        step: p.step,
        loss,
        lr: p.lr,
        gradNorm: values[2 * i + 1][0],
        seconds: p.seconds,
      };
      steps.push(log);
      o.onStep?.(log);
    });
  };
  let reached = false;
  try {
    for (let step = 1; step <= o.steps; step++) {
      o.signal?.throwIfAborted();
      const batch = buildSupervisedBatch(task, task.sample(dataRng, o.batchSize), T);
      const targets = Int32Array.from(batch.targets, (y, i) => (batch.targetMask[i] > 0 ? y : -1));
      const lr = opt.lrAt(opt.stepCount);
      const loss = tidy(() => {
        const l = model.loss(tensor(batch.tokens, [batch.B, T]), tensor(targets, [batch.B, T]));
        l.backward();
        opt.step();
        opt.zeroGrad();
        return l;
      });
      // opt.gradNorm is overwritten by the next step: keep this step's value.
      const gradNorm = noGrad(() => ops.affine(opt.gradNorm, 1));
      pending.push({ step, lr, seconds: seconds(), loss, gradNorm });
      const evalNow = step % o.evalEvery === 0 || step === o.steps;
      if (evalNow || pending.length >= READ_EVERY) await drain();
      if (evalNow) {
        const accuracy = await evaluateGreedy(engine, task, evalSet);
        const e = { step, accuracy, n: evalSet.length, seconds: seconds() };
        evals.push(e);
        await o.onEval?.(e, model);
        if (accuracy >= o.targetAccuracy) {
          reached = true;
          break;
        }
      }
    }
    await drain();
  } finally {
    for (const p of pending) {
      p.loss.dispose();
      p.gradNorm.dispose();
    }
    engine.dispose();
    opt.dispose();
  }
  return { model, steps, evals, reached, seconds: seconds() };
}
