/**
 * Helpers of tests/rl_trainer_test.ts: a toy task with a graded reward (so GRPO groups are rarely
 * flat and a few iterations show learning), two tiny models of its vocabulary, and the float64
 * reference of one trainer step's losses.
 *
 * @module
 */
import type { Example, Task } from "../src/tasks/mod.ts";
import type { Tokenizer } from "../src/tasks/tokenizer.ts";
import { type ModelConfig, validateModelConfig } from "../src/nn/config.ts";
import { referenceLogits, type RefParams } from "../src/nn/reference.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { readAll } from "../src/tensor/mod.ts";
import type { Rng } from "../src/util/rng.ts";
import { logSoftmax } from "../src/obrs/reference/mod.ts";
import { type BaselineSpec, baselineWeights } from "../src/obrs/reference/baselines.ts";
import { policyLossRef, resolvePolicyLossOptions } from "../src/rl/policy_loss_reference.ts";
import { distillKLRef } from "../src/rl/distill_reference.ts";
import { broadcastAdvantages } from "../src/rl/advantages.ts";
import type { RolloutData } from "../src/rl/rollout_data.ts";
import type { RlConfig } from "../src/rl/trainer_config.ts";
import type { RlMode } from "../src/rl/modes.ts";
import type { RlTrainer } from "../src/rl/trainer.ts";
import { noGrad } from "../src/autograd/mod.ts";

/** Vocabulary of the toy task: pad 0, bos 1, eos 2, digits 3..12 (ids 3 + d). */
export const TOY_VOCAB = 13;

const toyTokenizer: Tokenizer = {
  vocabSize: TOY_VOCAB,
  padId: 0,
  bosId: 1,
  eosId: 2,
  encode(text) {
    return Int32Array.from(text, (ch) => {
      const d = ch.charCodeAt(0) - 48;
      if (!(d >= 0 && d <= 9)) throw new Error(`toy tokenizer: cannot spell "${ch}"`);
      return 3 + d;
    });
  },
  decode(ids) {
    return Array.from(ids, (id) => this.tokenString(id)).join("");
  },
  tokenString(id) {
    return id === 0 ? "<pad>" : id === 1 ? "<bos>" : id === 2 ? "<eos>" : String(id - 3);
  },
};

/**
 * "Odd digits": the prompt is bos and one or two digits; the reward is the fraction of the
 * completion's tokens before the stop that are odd digits (0 without a stop or with no digit).
 * The correct answer is "1" (one odd digit, then stop).
 */
export const toyTask: Task = {
  name: "toy-odd",
  description: "continue with odd digits, then stop",
  tokenizer: toyTokenizer,
  options: {},
  maxPromptLength: 3,
  maxAnswerLength: 3,
  sample(rng: Rng, n: number): Example[] {
    return Array.from({ length: n }, () => {
      const len = 1 + rng.int(2);
      const prompt = Int32Array.from(
        { length: len + 1 },
        (_, i) => (i === 0 ? 1 : 3 + rng.int(10)),
      );
      return { prompt, answer: Int32Array.of(4) };
    });
  },
  referenceAnswer: () => Int32Array.of(4),
  reward(_prompt, completion) {
    let n = 0, odd = 0;
    for (let i = 0; i < completion.length; i++) {
      const id = completion[i];
      if (id === 2) return n === 0 ? 0 : odd / n;
      n++;
      if (id >= 3 && (id - 3) % 2 === 1) odd++;
    }
    return 0;
  },
  isCorrect(prompt, completion) {
    return this.reward(prompt, completion) === 1;
  },
};

const shared = { vocabSize: TOY_VOCAB, maxSeqLen: 16, ropeTheta: 10000, normEps: 1e-6 };

/** The rollout model: one block, width 16, tied embeddings, QK-norm. */
export const TOY_ACTOR: ModelConfig = validateModelConfig({
  ...shared,
  hidden: 16,
  layers: 1,
  heads: 2,
  kvHeads: 1,
  headDim: 8,
  intermediate: 32,
  tiedEmbeddings: true,
  qkNorm: true,
});

/** The policy: two blocks, width 24, its own classifier. */
export const TOY_POLICY: ModelConfig = validateModelConfig({
  ...shared,
  hidden: 24,
  layers: 2,
  heads: 3,
  kvHeads: 1,
  headDim: 8,
  intermediate: 48,
  tiedEmbeddings: false,
  qkNorm: false,
});

/** Both toy models (independent draws). */
export function toyModels(seed: number, std = 0.2): { policy: Transformer; actor: Transformer } {
  return {
    policy: Transformer.init(TOY_POLICY, { seed: seed + 1, std }),
    actor: Transformer.init(TOY_ACTOR, { seed, std }),
  };
}

/** The model's parameters in float64, for `referenceLogits`. */
export async function hostParams(model: Transformer): Promise<RefParams> {
  const named = model.namedParameters();
  const host = await readAll([...named.values()]);
  return new Map([...named.keys()].map((n, i) => [n, Float64Array.from(host[i])]));
}

/** Float64 logits `[b·T·V]` predicting the completion tokens of rows `[r0, r1)`. */
export function completionLogitsRef(
  model: Transformer,
  p: RefParams,
  data: RolloutData,
  r0: number,
  r1: number,
): Float64Array {
  const V = model.config.vocabSize, { T, L } = data;
  const out = new Float64Array((r1 - r0) * T * V);
  for (let b = r0; b < r1; b++) {
    const rows = referenceLogits(model.config, p, data.input.subarray(b * L, (b + 1) * L));
    for (let t = 0; t < T; t++) out.set(rows[data.column[b * T + t]], ((b - r0) * T + t) * V);
  }
  return out;
}

/** The float64 reference of a mode's weights (null for the modes that draw an OBRS mask). */
export function baselineSpec(
  mode: RlMode,
  c: Pick<RlConfig, "tisCap" | "icepopLow" | "icepopHigh">,
): BaselineSpec | null {
  switch (mode) {
    case "tis":
      return { kind: "tis", cap: c.tisCap };
    case "icepop":
      return { kind: "icepop", alpha: c.icepopLow, beta: c.icepopHigh };
    case "is":
    case "no-clip":
    case "on-policy":
    case "no-correction":
      return { kind: mode };
    default:
      return null;
  }
}

/** Frees a trainer, then its models (parameters are freed outside the tape). */
export function disposeRun(trainer: RlTrainer, ...models: Transformer[]): void {
  trainer.dispose();
  noGrad(() => models.forEach((m) => m.dispose()));
}

/** The float64 losses of one mini-batch of a non-OBRS mode (the OBRS modes' masks are drawn). */
export function stepLossRef(
  c: RlConfig,
  data: RolloutData,
  r0: number,
  r1: number,
  logitsP: Float64Array,
  logitsA: Float64Array | null,
): { policy: number; actor: number | null; distill: number | null; joint: number } {
  const { T } = data, N = (r1 - r0) * T, V = logitsP.length / N;
  const tempered = (x: Float64Array) => x.map((v) => v / c.temperature);
  const targets = data.targets.subarray(r0 * T, r1 * T);
  const logp = (x: Float64Array) => {
    const ls = logSoftmax(tempered(x), V);
    return Float64Array.from(targets, (id, i) => ls[i * V + id]);
  };
  const valid = Uint8Array.from(data.valid.subarray(r0 * T, r1 * T));
  const logpInf = Float64Array.from(data.behaviour.subarray(r0 * T, r1 * T));
  const logpNew = logp(logitsP);
  const spec = baselineSpec(c.mode, c);
  if (!spec) throw new Error(`stepLossRef: mode ${c.mode} draws an OBRS mask`);
  // lr 0: p_ref is p_new
  const bw = baselineWeights({ logpInf, logpRef: logpNew, logpNew, valid }, spec);
  const lengths = data.rollout.lengths.subarray(r0, r1);
  const advantages = broadcastAdvantages(data.advantages.subarray(r0, r1), T, { end: lengths });
  const o = {
    epsLow: c.epsLow,
    epsHigh: c.epsHigh,
    aggregation: c.aggregation,
  };
  const policy = policyLossRef({
    B: r1 - r0,
    T,
    logpNew,
    logpRef: logpNew,
    advantages,
    weight: bw.weight,
    mask: bw.mask,
  }, resolvePolicyLossOptions({ ...o, ratio: c.mode === "no-clip" ? "no-clip" : "clip" })).loss;
  if (!logitsA) return { policy, actor: null, distill: null, joint: policy };
  const actor = policyLossRef({
    B: r1 - r0,
    T,
    logpNew: logp(logitsA),
    logpRef: logpInf,
    advantages,
    mask: valid,
  }, resolvePolicyLossOptions(o)).loss;
  const distill = distillKLRef(logitsA, logitsP, N, V, {
    mask: valid,
    direction: c.distillDirection,
  }).loss;
  return { policy, actor, distill, joint: policy + actor + c.distill * distill };
}
