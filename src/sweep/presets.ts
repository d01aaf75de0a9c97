/**
 * Built-in sweeps: the paper's training figures and ablation tables (SPEC §9) at a scale a CPU
 * adapter runs in minutes. Each pre-trains a policy and a smaller, weaker rollout model on
 * one-digit addition once, then runs `jackpot rl` from both for every mode and seed.
 *
 * The numbers are small on purpose (16 prompts × 8 samples, tens of iterations); `--set` scales a
 * preset up on a GPU host (e.g. `--set iterations=200,prompts=64`).
 *
 * @module
 */
import type { SweepPlan } from "./plan.ts";
import { parseSweepPlan } from "./plan.ts";

// The starting models of every preset: the policy is the larger preset, the rollout model the
// smallest, each pre-trained until its greedy accuracy passes a target (the weak actor is what
// makes its rollouts off-policy in a way that matters).
const PRETRAIN = {
  policy: { model: "actor", target: 0.5 },
  actor: { model: "tiny", target: 0.3 },
};

// Learning rates that move these small models within tens of iterations.
const LR = { "lr-policy": 1e-3, "lr-actor": 1e-3 };

/** The built-in plans by name. */
export const SWEEP_PRESETS: Readonly<Record<string, SweepPlan>> = {
  fig4: parseSweepPlan({
    name: "fig4",
    description: "Figures 1b/2c/4 of the paper at small scale: with a separate, smaller rollout " +
      "model, no correction loses accuracy while its actor-policy KL grows, TIS degrades, and " +
      "Jackpot stays near on-policy training.",
    pretrain: PRETRAIN,
    rl: {
      iterations: 30,
      prompts: 16,
      "group-size": 8,
      minibatch: 32,
      ...LR,
      "eval-every": 5,
      "allow-uncorrected": true,
    },
    axes: { mode: ["on-policy", "no-correction", "tis", "jackpot"] },
    seeds: [1, 2, 3],
    baseline: "mode=jackpot",
  }),
  staleness: parseSweepPlan({
    name: "staleness",
    description: "Table 2 of the paper at small scale: one rollout batch consumed in 1, 8 or " +
      "32 mini-batches of 16 sequences (the paper's 64x and 128x settings, scaled down), the " +
      "same 1,024 rollouts and 64 optimizer steps in each, with TIS and with Jackpot.",
    pretrain: PRETRAIN,
    rl: { "group-size": 8, minibatch: 16, ...LR },
    axes: {
      mode: ["tis", "jackpot"],
      staleness: {
        "1x": { prompts: 2, iterations: 64, "eval-every": 16 },
        "8x": { prompts: 16, iterations: 8, "eval-every": 2 },
        "32x": { prompts: 64, iterations: 2, "eval-every": 1 },
      },
    },
    seeds: [1, 2, 3],
    baseline: "mode=jackpot staleness=32x",
  }),
  "no-clip": parseSweepPlan({
    name: "no-clip",
    description: "Table 3 of the paper at small scale: without the PPO clip, plain importance " +
      "weights (no-clip) against Jackpot's OBRS weights (jackpot-no-clip), with clipped Jackpot " +
      "for reference, at 8x staleness.",
    pretrain: PRETRAIN,
    rl: {
      iterations: 15,
      prompts: 16,
      "group-size": 8,
      minibatch: 16,
      ...LR,
      "eval-every": 3,
    },
    axes: { mode: ["no-clip", "jackpot-no-clip", "jackpot"] },
    seeds: [1, 2, 3],
    baseline: "mode=jackpot-no-clip",
  }),
};

/** The preset names, in the order `--help` lists them. */
export const SWEEP_PRESET_NAMES: readonly string[] = Object.keys(SWEEP_PRESETS);
