/**
 * `jackpot rl`: the joint RL run of SPEC §6 (Algorithm 1) on a task with verifiable rewards. The
 * policy and the rollout model come from checkpoint folders (`jackpot pretrain` writes them) or
 * are fresh presets; every iteration samples a batch with the rollout model, trains both models on
 * it in mini-batches, and appends its statistics to the run folder, so an interrupted run keeps
 * every iteration and checkpoint it had written.
 *
 * @module
 */
import {
  choiceOption,
  type Command,
  integerOption,
  numberOption,
  type ParsedValues,
  UsageError,
} from "../command.ts";
import { runFolder, runInterruptibly } from "../run_folder.ts";
import { RL_MODE_NAMES, RL_MODES, type RlMode } from "../../rl/modes.ts";
import {
  resolveRlConfig,
  RL_DEFAULTS,
  type RlConfig,
  RlConfigError,
} from "../../rl/trainer_config.ts";
import { POLICY_LOSS_AGGREGATIONS } from "../../rl/policy_loss_reference.ts";
import { MIN_TEMPERATURE } from "../../nn/sampling_reference.ts";
import { passKs } from "../../rl/sampled_eval.ts";
import { type RlRunConfig, runRl, taskOf, withDefaultTokenizer } from "./rl_run.ts";

export { type RlRun, type RlRunConfig, runRl } from "./rl_run.ts";

function option(values: ParsedValues, name: string): boolean {
  return typeof values[name] === "string";
}

/** Reads the command line; UsageError names the first bad value. */
export async function rlConfigFromValues(values: ParsedValues): Promise<RlRunConfig> {
  const num = (name: string, min = 0, exclusiveMin = true) =>
    numberOption(values, name, { min, exclusiveMin });
  const int = (name: string, min = 1) => integerOption(values, name, { min, max: 1 << 20 });
  const partial: Partial<RlConfig> = {
    mode: choiceOption(values, "mode", RL_MODE_NAMES) as RlMode,
    allowUncorrected: values["allow-uncorrected"] === true,
    prompts: int("prompts"),
    groupSize: int("group-size"),
    minibatch: int("minibatch"),
    temperature: num("temperature"),
    lambda: num("lambda"),
    budget: option(values, "budget")
      ? numberOption(values, "budget", { min: 0, max: 1, exclusiveMin: true })
      : null,
    c1: num("c1"),
    c2: num("c2"),
    target: choiceOption(values, "target", ["new", "ref"] as const),
    exactZ: values["exact-z"] === true,
    tisCap: num("tis-cap"),
    icepopLow: num("icepop-low", 0, false),
    icepopHigh: num("icepop-high"),
    epsLow: num("eps-low", 0, false),
    epsHigh: num("eps-high", 0, false),
    aggregation: choiceOption(values, "aggregation", POLICY_LOSS_AGGREGATIONS),
    normalizeStd: values["no-std"] !== true,
    distill: num("distill", 0, false),
    distillDirection: choiceOption(values, "distill-direction", ["forward", "reverse"] as const),
    distillTargetKL: option(values, "distill-target-kl") ? num("distill-target-kl") : null,
    trainActor: values["freeze-actor"] !== true,
    lrPolicy: num("lr-policy", 0, false),
    lrActor: num("lr-actor", 0, false),
    weightDecay: num("weight-decay", 0, false),
    maxGradNorm: num("max-grad-norm", 0, false),
    seed: integerOption(values, "seed", { min: 0, max: 2 ** 32 - 1 }),
  };
  const taskSpec = await withDefaultTokenizer(String(values.task), String(values.policy));
  const task = await taskOf(taskSpec);
  // default: room for the task's longest answer and its stop token
  partial.maxNew = option(values, "max-new") ? int("max-new") : task.maxAnswerLength + 1;
  // k and the capture default to 20 (the paper's k), or the whole vocabulary of a smaller one
  const V = task.tokenizer.vocabSize;
  partial.k = option(values, "k") ? int("k") : Math.min(RL_DEFAULTS.k, V);
  if (partial.k > V) {
    throw new UsageError(`--k ${partial.k} exceeds the task's vocabulary (${V} tokens)`);
  }
  partial.captureK = option(values, "capture-k")
    ? int("capture-k")
    : Math.min(Math.max(RL_DEFAULTS.captureK, partial.k), V);
  let trainer: RlConfig;
  try {
    trainer = resolveRlConfig(partial);
  } catch (e) {
    if (e instanceof RlConfigError) throw new UsageError(e.message);
    throw e;
  }
  const evalSize = int("eval-size");
  const { evalSamples, evalTemperature } = sampledEvalOptions(values, evalSize, trainer);
  return {
    task: taskSpec,
    policy: String(values.policy),
    actor: String(values.actor),
    iterations: int("iterations"),
    evalEvery: int("eval-every"),
    evalSize,
    evalSamples,
    evalTemperature,
    trainer,
  };
}

/** Most rows (--eval-size × --eval-samples) one sampled evaluation may hold. */
export const MAX_EVAL_ROWS = 1 << 16;

// --eval-samples (0: greedy only) and --eval-temperature (default: the trainer's --temperature).
function sampledEvalOptions(values: ParsedValues, evalSize: number, trainer: RlConfig): {
  evalSamples: number;
  evalTemperature: number;
} {
  const evalSamples = integerOption(values, "eval-samples", { min: 0, max: 1024 });
  if (evalSize * evalSamples > MAX_EVAL_ROWS) {
    throw new UsageError(
      `--eval-size ${evalSize} × --eval-samples ${evalSamples} is ${
        evalSize * evalSamples
      } rows, at most ${MAX_EVAL_ROWS} (the evaluation samples them in one batch)`,
    );
  }
  if (!option(values, "eval-temperature")) {
    return { evalSamples, evalTemperature: trainer.temperature };
  }
  if (evalSamples === 0) {
    throw new UsageError(
      "--eval-temperature needs --eval-samples >= 1 (the greedy evaluation has no temperature)",
    );
  }
  const t = numberOption(values, "eval-temperature", { min: 0, exclusiveMin: false });
  if (t > 0 && t < MIN_TEMPERATURE) {
    throw new UsageError(
      `--eval-temperature must be 0 (greedy) or at least ${MIN_TEMPERATURE}, got ${t}`,
    );
  }
  return { evalSamples, evalTemperature: t };
}

/** The default task of `jackpot rl` (the one `jackpot pretrain` trains on by default). */
export const DEFAULT_RL_TASK = "arithmetic:maxDigits=1,ops=+";

const d = (x: number | string) => String(x);
const D = resolveRlConfig();

/** `jackpot rl`. */
export const command: Command = {
  name: "rl",
  summary: "Joint RL of a policy and a cheaper rollout model (Jackpot, or a baseline correction)",
  description:
    "Each iteration the rollout model samples --prompts × --group-size completions (top-k " +
    "captured), the task scores them, GRPO gives advantages, and the batch is consumed in " +
    "mini-batches of --minibatch rows (later ones staler): the policy takes a PPO step with the " +
    "--mode correction (default jackpot: the OBRS mask and weights), and the rollout model a PPO " +
    "step plus --distill × KL toward the policy, each with its own AdamW. --policy and --actor " +
    "take a checkpoint folder (jackpot pretrain's model/) or a model preset (fresh weights). " +
    "Modes: " + RL_MODE_NAMES.map((m) => `${m} (${RL_MODES[m].summary})`).join("; ") + ". " +
    "Writes iterations.csv and steps.csv (every statistic of SPEC §8, rewritten after each " +
    "iteration), evals.csv (greedy accuracy of both models; with --eval-samples N also their " +
    "mean reward and Pass@k of N samples per prompt, k = 1, 2, 4, ..., N), " +
    "checkpoints/iter-N/{policy,actor}/, the final policy/ and actor/, charts, index.html and " +
    "config.json (last).",
  options: {
    task: {
      type: "string",
      valueName: "SPEC",
      default: DEFAULT_RL_TASK,
      description: "Task spec: arithmetic:…, wordsort:…, or text:… on Hugging Face folders " +
        "(tokenizer: --policy's; data=FILE, eval=FILE, maxNew=N, …)",
    },
    policy: {
      type: "string",
      valueName: "DIR|SPEC",
      default: "policy",
      description: "Policy checkpoint folder or model preset",
    },
    actor: {
      type: "string",
      valueName: "DIR|SPEC",
      default: "actor",
      description: "Rollout-model checkpoint folder or model preset",
    },
    mode: {
      type: "string",
      valueName: "MODE",
      default: D.mode,
      description: "Policy-loss correction",
    },
    "allow-uncorrected": { type: "boolean", description: "Allow mode no-correction" },
    iterations: { type: "string", valueName: "N", default: "50", description: "Rollout batches" },
    prompts: {
      type: "string",
      valueName: "N",
      default: d(D.prompts),
      description: "Prompts per batch",
    },
    "group-size": {
      type: "string",
      valueName: "N",
      default: d(D.groupSize),
      description: "Samples per prompt (GRPO group)",
    },
    minibatch: {
      type: "string",
      valueName: "N",
      default: d(D.minibatch),
      description: "Rows per training step",
    },
    "max-new": {
      type: "string",
      valueName: "N",
      description: "Most generated tokens (default: the task's answer + stop)",
    },
    temperature: {
      type: "string",
      valueName: "X",
      default: d(D.temperature),
      description: "Sampling temperature",
    },
    "capture-k": {
      type: "string",
      valueName: "N",
      description: `Top-k captured per token (default: ${D.captureK}, at most the vocabulary)`,
    },
    lambda: {
      type: "string",
      valueName: "X",
      default: d(D.lambda),
      description: "OBRS λ (larger rejects more)",
    },
    budget: {
      type: "string",
      valueName: "X",
      description: "Choose λ per batch for this acceptance rate",
    },
    k: {
      type: "string",
      valueName: "N",
      description: `Top-k behind Z_approx (default: ${D.k}, at most the vocabulary)`,
    },
    c1: {
      type: "string",
      valueName: "X",
      default: d(D.c1),
      description: "Clip of the Jackpot weight",
    },
    c2: { type: "string", valueName: "X", default: d(D.c2), description: "Clip of p_ref/p_new" },
    target: {
      type: "string",
      valueName: "new|ref",
      default: D.target,
      description: "OBRS p_target",
    },
    "exact-z": { type: "boolean", description: "Also compute exact Z (diagnostic)" },
    "tis-cap": { type: "string", valueName: "X", default: d(D.tisCap), description: "TIS cap C" },
    "icepop-low": {
      type: "string",
      valueName: "X",
      default: d(D.icepopLow),
      description: "IcePop band low",
    },
    "icepop-high": {
      type: "string",
      valueName: "X",
      default: d(D.icepopHigh),
      description: "IcePop band high",
    },
    "eps-low": {
      type: "string",
      valueName: "X",
      default: d(D.epsLow),
      description: "PPO clip below 1",
    },
    "eps-high": {
      type: "string",
      valueName: "X",
      default: d(D.epsHigh),
      description: "PPO clip above 1",
    },
    aggregation: {
      type: "string",
      valueName: "NAME",
      default: D.aggregation,
      description: "Loss aggregation",
    },
    "no-std": { type: "boolean", description: "GRPO without dividing by the group std" },
    distill: { type: "string", valueName: "X", default: d(D.distill), description: "λ_distill" },
    "distill-direction": {
      type: "string",
      valueName: "forward|reverse",
      default: D.distillDirection,
      description: "Distillation KL direction",
    },
    "distill-target-kl": {
      type: "string",
      valueName: "X",
      description: "Steer λ_distill to this actor-policy KL",
    },
    "freeze-actor": { type: "boolean", description: "Do not train the rollout model" },
    "lr-policy": {
      type: "string",
      valueName: "X",
      default: d(D.lrPolicy),
      description: "Policy learning rate",
    },
    "lr-actor": {
      type: "string",
      valueName: "X",
      default: d(D.lrActor),
      description: "Rollout-model learning rate",
    },
    "weight-decay": {
      type: "string",
      valueName: "X",
      default: d(D.weightDecay),
      description: "AdamW weight decay",
    },
    "max-grad-norm": {
      type: "string",
      valueName: "X",
      default: d(D.maxGradNorm),
      description: "Gradient-norm clip (0: none)",
    },
    seed: { type: "string", valueName: "N", default: d(D.seed), description: "Random seed" },
    "eval-every": {
      type: "string",
      valueName: "N",
      default: "10",
      description: "Iterations between evaluations and checkpoints",
    },
    "eval-size": {
      type: "string",
      valueName: "N",
      default: "128",
      description: "Prompts per evaluation",
    },
    "eval-samples": {
      type: "string",
      valueName: "N",
      default: "0",
      description:
        "Also sample N completions per evaluation prompt: Mean@k, Pass@k (0: greedy only)",
    },
    "eval-temperature": {
      type: "string",
      valueName: "X",
      description: "Temperature of those samples (default: --temperature)",
    },
    out: {
      type: "string",
      valueName: "DIR",
      description: "Run folder (default runs/rl-<UTC time>)",
    },
    force: { type: "boolean", description: "Write into a non-empty existing run folder" },
    quiet: { type: "boolean", description: "No progress bar" },
  },
  async run(values: ParsedValues): Promise<number> {
    const config = await rlConfigFromValues(values);
    const out = runFolder(values, "rl");
    const outcome = await runInterruptibly(
      "rl",
      out,
      (signal) =>
        runRl(config, out, { force: values.force === true, quiet: values.quiet === true, signal }),
    );
    if ("exitCode" in outcome) return outcome.exitCode;
    const run = outcome.value;
    const first = run.evals[0], last = run.evals[run.evals.length - 1];
    const pct = (x: number | null) => `${(100 * (x ?? 0)).toFixed(1)}%`;
    console.log(
      `Policy: ${run.sources.policy}; rollout model: ${run.sources.actor ?? "none (on-policy)"}`,
    );
    console.log(
      `Policy accuracy ${pct(first.policy_accuracy)} → ${pct(last.policy_accuracy)} over ` +
        `${config.iterations} iterations; mean reward of the last batch ` +
        `${(run.iterations[run.iterations.length - 1]?.reward ?? 0).toFixed(3)}`,
    );
    if (config.evalSamples) {
      const n = config.evalSamples;
      console.log(
        `Policy pass@1 ${pct(first.policy_pass_at_1)} → ${pct(last.policy_pass_at_1)}` +
          (n > 1
            ? `, pass@${n} ${pct(first[`policy_pass_at_${n}`])} → ${
              pct(last[`policy_pass_at_${n}`])
            }`
            : "") +
          ` (${n} samples per prompt at temperature ${config.evalTemperature}; ks ${
            passKs(n).join(", ")
          } in evals.csv)`,
      );
    }
    console.log(`Wrote ${run.dir}/ (open index.html)`);
    return 0;
  },
};
