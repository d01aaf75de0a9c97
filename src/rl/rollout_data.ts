/**
 * A finished rollout batch laid out for the trainer (SPEC §7): prompts of any length, each row's
 * completion right after its own prompt, rewards and GRPO advantages on the host, and the tensors
 * of one mini-batch of rows uploaded on demand.
 *
 * Rows are right-padded (`prompt_b ‖ completion_b ‖ pad`), the layout the rollout engine sampled
 * with, so every row keeps its own positions and a causal forward over the padded row gives the
 * same logits the engine saw. The logits that predict completion token t of row b sit at column
 * `len(prompt_b) − 1 + t`; {@link RolloutData.minibatch} gives those flat row indices so the
 * trainer gathers `[B, T]` hidden states (one differentiable row gather) before the classifier,
 * and never computes a vocabulary row the loss does not read.
 *
 * @module
 */
import { type Tensor, tensor } from "../tensor/mod.ts";
import { completion, type RolloutBatch } from "../nn/rollout.ts";
import { advantagesTensor, grpoAdvantages, type GrpoOptions } from "./advantages.ts";

/** Host arrays of one rollout batch, `[B, T]` row-major with T = the engine's `maxNew`. */
export interface RolloutData {
  /** The engine's output (captured top-k, settings, lengths). */
  rollout: RolloutBatch;
  /** Rows. */
  B: number;
  /** Completion columns (the engine's `maxNew`). */
  T: number;
  /** Columns of the trainer's input: longest prompt + T − 1 (the last token is only a target). */
  L: number;
  /** i32 `[B, L]`: prompt, completion, pad. */
  input: Int32Array;
  /** i32 `[B, T]`: within-row column of the logits predicting each completion token. */
  column: Int32Array;
  /** i32 `[B, T]` generated ids (pad past each row's length). */
  targets: Int32Array;
  /** u32 `[B, T]`: 1 on generated tokens (the stop token included). */
  valid: Uint32Array;
  /** f32 `[B, T]` log p_inf of each generated token as sampled (0 on padding). */
  behaviour: Float32Array;
  /** `[B]` rewards. */
  rewards: Float64Array;
  /** `[B]` GRPO advantages. */
  advantages: Float64Array;
  /** Groups (prompts) whose rewards were all equal: their advantages are 0. */
  flatGroups: number;
  /** Generated tokens (Σ lengths). */
  tokens: number;
  /** The mini-batch of rows `[r0, r1)`, uploaded (free it with `dispose`). */
  minibatch(r0: number, r1: number): RolloutMinibatch;
}

/** The tensors of rows `[r0, r1)` of a {@link RolloutData}, `b = r1 − r0`. */
export interface RolloutMinibatch {
  /** First row. */
  r0: number;
  /** One past the last row. */
  r1: number;
  /** i32 `[b, L]` the forward's input. */
  input: Tensor;
  /** i32 `[b, T]` flat indices into the `[b·L, C]` hidden states (row·L + column). */
  gather: Tensor;
  /** i32 `[b, T]` generated ids. */
  targets: Tensor;
  /** u32 `[b, T]` 1 on generated tokens. */
  valid: Tensor;
  /** f32 `[b, T]` Â of each row on its generated tokens, 0 on padding. */
  advantages: Tensor;
  /** f32 `[b, T]` log p_inf as sampled (0 on padding). */
  behaviour: Tensor;
  /** The rollout's rows `[r0, r1)` (captured top-k included), for `actorFromRollout`. */
  rollout: RolloutBatch;
  /** Frees the tensors. */
  dispose(): void;
}

/**
 * Lays out `r` for training: `reward(b)` scores row b's completion, `groupSize` rows in a row
 * share a prompt (GRPO groups), `padId` fills the input past each row's tokens.
 *
 * @example
 * ```ts
 * const r = await engine.generate(prompts, { seed, stopId: tok.eosId, padId: tok.padId });
 * const data = rolloutData(r, (b) => task.reward(r.prompts[b], completion(r, b)), 8, tok.padId);
 * const mb = data.minibatch(0, 16); // ... train ...; mb.dispose();
 * ```
 */
export function rolloutData(
  r: RolloutBatch,
  reward: (row: number) => number,
  groupSize: number,
  padId: number,
  grpo: GrpoOptions = {},
): RolloutData {
  const B = r.B, T = r.maxNew;
  if (r.prompts.length !== B) {
    throw new RangeError(`rolloutData: ${r.prompts.length} prompts for ${B} rows`);
  }
  const flagged = r.flags.findIndex((f) => f !== 0);
  if (flagged >= 0) {
    throw new RangeError(
      `rolloutData: row ${flagged} of the rollout met non-finite or all -inf logits ` +
        `(flags ${
          r.flags[flagged]
        }); the rollout model's weights are broken (lower the learning rate)`,
    );
  }
  const P = Math.max(...r.prompts.map((p) => p.length));
  const L = P + T - 1;
  const input = new Int32Array(B * L).fill(padId);
  const column = new Int32Array(B * T);
  const valid = new Uint32Array(B * T);
  const behaviour = new Float32Array(B * T);
  const rewards = new Float64Array(B);
  let tokens = 0;
  for (let b = 0; b < B; b++) {
    const p = r.prompts[b], c = completion(r, b);
    input.set(p, b * L);
    // the last generated token is only a target: at most L − p columns of the completion fit
    input.set(c.subarray(0, L - p.length), b * L + p.length);
    for (let t = 0; t < T; t++) {
      column[b * T + t] = p.length - 1 + t; // ≤ P − 1 + T − 1 = L − 1
      if (t < c.length) {
        valid[b * T + t] = 1;
        behaviour[b * T + t] = r.logProbs[b * T + t];
      }
    }
    tokens += c.length;
    const x = reward(b);
    if (!Number.isFinite(x)) throw new RangeError(`rolloutData: reward ${x} of row ${b}`);
    rewards[b] = x;
  }
  const g = grpoAdvantages(rewards, groupSize, grpo);
  const targets = Int32Array.from(r.tokens);
  return {
    rollout: r,
    B,
    T,
    L,
    input,
    column,
    targets,
    valid,
    behaviour,
    rewards,
    advantages: g.advantages,
    flatGroups: g.flatGroups,
    tokens,
    minibatch(r0, r1) {
      if (!(Number.isInteger(r0) && Number.isInteger(r1) && 0 <= r0 && r0 < r1 && r1 <= B)) {
        throw new RangeError(`rolloutData: rows [${r0}, ${r1}) outside [0, ${B})`);
      }
      const b = r1 - r0;
      const gather = new Int32Array(b * T);
      for (let i = 0; i < b * T; i++) gather[i] = Math.floor(i / T) * L + column[r0 * T + i];
      const t = {
        input: tensor(input.subarray(r0 * L, r1 * L), [b, L], "i32"),
        gather: tensor(gather, [b, T], "i32"),
        targets: tensor(targets.subarray(r0 * T, r1 * T), [b, T], "i32"),
        valid: tensor(valid.subarray(r0 * T, r1 * T), [b, T], "u32"),
        advantages: advantagesTensor(g.advantages.subarray(r0, r1), T, {
          end: r.lengths.subarray(r0, r1),
        }),
        behaviour: tensor(behaviour.subarray(r0 * T, r1 * T), [b, T], "f32"),
      };
      return {
        r0,
        r1,
        ...t,
        rollout: sliceRollout(r, r0, r1),
        dispose: () => Object.values(t).forEach((x) => x.dispose()),
      };
    },
  };
}

/** Rows `[r0, r1)` of a rollout batch (every per-row array sliced; settings shared). */
export function sliceRollout(r: RolloutBatch, r0: number, r1: number): RolloutBatch {
  const T = r.maxNew, K = r.captureK;
  return {
    ...r,
    B: r1 - r0,
    prompts: r.prompts.slice(r0, r1),
    tokens: r.tokens.slice(r0 * T, r1 * T),
    logProbs: r.logProbs.slice(r0 * T, r1 * T),
    rawLogProbs: r.rawLogProbs.slice(r0 * T, r1 * T),
    topIds: r.topIds.slice(r0 * T * K, r1 * T * K),
    topLogProbs: r.topLogProbs.slice(r0 * T * K, r1 * T * K),
    lengths: r.lengths.slice(r0, r1),
    stopped: r.stopped.slice(r0, r1),
    flags: r.flags.slice(r0, r1),
  };
}
