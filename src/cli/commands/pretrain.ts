/**
 * `jackpot pretrain`: supervised training of a transformer on a task until a stated exact-match
 * accuracy, written as a run folder (loss curve, evaluations, checkpoints, HTML page, config).
 *
 * @module
 */
import {
  type Command,
  integerOption,
  numberOption,
  type ParsedValues,
  UsageError,
} from "../command.ts";
import { Progress } from "../progress.ts";
import { runFolder, runInterruptibly } from "../run_folder.ts";
import { runtimeVersions } from "../runtime.ts";
import { loadTaskFromSpec, type Task } from "../../tasks/mod.ts";
import { initTensors } from "../../tensor/mod.ts";
import { gpuMemory } from "../../gpu/mod.ts";
import { CheckpointError, loadCheckpoint, saveCheckpoint } from "../../nn/checkpoint/mod.ts";
import {
  describeModel,
  fromQwenConfig,
  type ModelConfig,
  ModelConfigError,
  parameterCount,
  parseModelSpec,
} from "../../nn/config.ts";
import {
  type EvalLog,
  pretrain,
  type PretrainResult,
  type StepLog,
  taskModelMismatch,
} from "../../nn/pretrain.ts";
import { Transformer } from "../../nn/transformer.ts";
import { ModelCheckpoint } from "../../nn/load.ts";
import {
  htmlReport,
  lineChartSpec,
  prepareRunDir,
  renderSvg,
  rowsToTable,
  tableToHtml,
  writeFileAtomic,
  writeJsonAtomic,
  writeTable,
} from "../../report/mod.ts";

/** The default task: one-digit additions (100 distinct prompts), learnt in about 100 steps. */
export const DEFAULT_PRETRAIN_TASK = "arithmetic:maxDigits=1,ops=+";

/** Everything a pretrain run needs, validated. */
export interface PretrainConfig {
  /** Task spec. */
  task: string;
  /** Model spec (preset[:key=value,...]). */
  model: string;
  /** Continue from this checkpoint folder instead of a fresh model. */
  init?: string;
  /** Most steps. */
  steps: number;
  /** Sequences per step. */
  batch: number;
  /** Peak learning rate. */
  lr: number;
  /** Seed. */
  seed: number;
  /** Steps between evaluations (and checkpoints). */
  evalEvery: number;
  /** Prompts per evaluation. */
  evalSize: number;
  /** Target exact-match accuracy. */
  target: number;
}

/** The model preset `jackpot pretrain` trains when neither --model nor --init is given. */
export const DEFAULT_PRETRAIN_MODEL = "tiny";

/** Reads the command line; UsageError names the first bad value. */
export function pretrainConfigFromValues(values: ParsedValues): PretrainConfig {
  const init = typeof values.init === "string" && values.init !== "" ? values.init : undefined;
  if (init !== undefined && values.model !== undefined) {
    // The checkpoint fixes the architecture; a --model beside it would be silently ignored.
    throw new UsageError("--init takes the model from the checkpoint; drop --model");
  }
  return {
    task: String(values.task),
    model: values.model === undefined ? DEFAULT_PRETRAIN_MODEL : String(values.model),
    init,
    steps: integerOption(values, "steps", { min: 1, max: 10_000_000 }),
    batch: integerOption(values, "batch", { min: 1, max: 65536 }),
    lr: numberOption(values, "lr", { min: 0, exclusiveMin: true, max: 1 }),
    seed: integerOption(values, "seed", { min: 0, max: 2 ** 32 - 1 }),
    evalEvery: integerOption(values, "eval-every", { min: 1 }),
    evalSize: integerOption(values, "eval-size", { min: 1, max: 4096 }),
    target: numberOption(values, "target", { min: 0, max: 1 }),
  };
}

async function resolve(config: PretrainConfig): Promise<{ task: Task; model: ModelConfig }> {
  let task: Task;
  try {
    task = await loadTaskFromSpec(config.task);
  } catch (e) {
    throw new UsageError(`--task: ${e instanceof Error ? e.message : e}`);
  }
  try {
    return { task, model: parseModelSpec(config.model, task.tokenizer.vocabSize) };
  } catch (e) {
    if (e instanceof ModelConfigError) throw new UsageError(`--model: ${e.message}`);
    throw e;
  }
}

/**
 * Loads the checkpoint folder given to `option`: a folder or file that does not exist is a usage
 * error (exit 2); a corrupt checkpoint stays a `CheckpointError` (exit 1), both one sentence.
 */
export async function loadCheckpointOrExplain(
  dir: string,
  option: string,
): Promise<Awaited<ReturnType<typeof loadCheckpoint>>> {
  try {
    const ckpt = await loadCheckpoint(dir);
    fromQwenConfig(ckpt.config, ckpt.tensors); // a config this transformer does not implement
    return ckpt;
  } catch (e) {
    if (e instanceof CheckpointError && e.notFound) throw new UsageError(`${option}: ${e.message}`);
    if (e instanceof ModelConfigError) throw new CheckpointError(`${dir}/config.json`, e.message);
    throw e;
  }
}

/**
 * Opens the checkpoint folder given to `option` for a streamed load (`ModelCheckpoint`: the
 * config and the weights' headers are checked, no weight is read yet), with the errors of
 * {@link loadCheckpointOrExplain}. The caller closes it.
 */
export async function openCheckpointOrExplain(
  dir: string,
  option: string,
): Promise<ModelCheckpoint> {
  try {
    return await ModelCheckpoint.open(dir);
  } catch (e) {
    if (e instanceof CheckpointError && e.notFound) throw new UsageError(`${option}: ${e.message}`);
    if (e instanceof ModelConfigError) throw new CheckpointError(`${dir}/config.json`, e.message);
    throw e;
  }
}

/** What {@link runPretrain} wrote. */
export interface PretrainRun {
  /** The run folder. */
  dir: string;
  /** Files written, relative to `dir` (checkpoint folders count as one entry each). */
  files: string[];
  /** The training result (the model is already disposed). */
  result: Omit<PretrainResult, "model">;
  /** The model trained. */
  model: ModelConfig;
}

const pad6 = (n: number) => String(n).padStart(6, "0");

/**
 * Trains and writes `dir`: `losses.csv/json`, `evals.csv/json`, `loss.vl.json/svg`,
 * `accuracy.vl.json/svg`, `checkpoints/step-NNNNNN/` at every evaluation, `model/` (the final
 * weights, a Hugging Face Qwen checkpoint), `index.html`, and `config.json` last (its presence
 * marks a complete run).
 */
export async function runPretrain(
  config: PretrainConfig,
  dir: string,
  { force = false, quiet = false, signal }: {
    force?: boolean;
    quiet?: boolean;
    signal?: AbortSignal;
  } = {},
): Promise<PretrainRun> {
  const resolved = await resolve(config);
  const task = resolved.task;
  let model = resolved.model;
  let init: Transformer | undefined;
  if (config.init) {
    const ckpt = await openCheckpointOrExplain(config.init, "--init");
    try {
      model = ckpt.config; // q/k/v biases when nonzero
      // A model that cannot hold the task is a bad option: refused before any weight is read.
      const mismatch = taskModelMismatch(task, model);
      if (mismatch) throw new UsageError(`--init: ${mismatch}`);
      await initTensors();
      init = await ckpt.load();
    } finally {
      ckpt.close();
    }
  }
  // A model that cannot hold the task is a bad option: refused before any folder is written.
  const mismatch = taskModelMismatch(task, model);
  if (mismatch) throw new UsageError(`--model: ${mismatch}`);
  const { device } = (await initTensors()).gpu;
  // GPU memory held when each step's loss was logged (src/gpu/memory.ts), MiB.
  const gpuMiB = new Map<number, number>();
  await prepareRunDir(dir, { force });
  const bar = new Progress({ total: config.steps, label: "pretrain", quiet });
  let lastAcc = NaN;
  const files: string[] = [];
  const jackpotInfo = (step: number) => ({ task: config.task, step, seed: config.seed });
  let result: PretrainResult;
  try {
    result = await pretrain({
      task,
      model,
      init,
      steps: config.steps,
      batchSize: config.batch,
      lr: config.lr,
      seed: config.seed,
      evalEvery: config.evalEvery,
      evalSize: config.evalSize,
      targetAccuracy: config.target,
      signal,
      onStep: (s: StepLog) => {
        const held = gpuMemory(device).liveBytes / 2 ** 20;
        gpuMiB.set(s.step, held);
        bar.update(
          s.step,
          `loss ${s.loss.toFixed(3)}${
            Number.isNaN(lastAcc) ? "" : ` acc ${(100 * lastAcc).toFixed(1)}%`
          } gpu ${(held / 1024).toFixed(2)} GiB`,
        );
      },
      onEval: async (e: EvalLog, m: Transformer) => {
        lastAcc = e.accuracy;
        const name = `checkpoints/step-${pad6(e.step)}`;
        await saveCheckpoint(`${dir}/${name}`, await m.toCheckpoint(jackpotInfo(e.step)));
        files.push(name + "/");
      },
    });
  } finally {
    bar.finish();
  }
  const { model: trained, ...rest } = result;
  const last = result.steps[result.steps.length - 1]?.step ?? 0;
  await saveCheckpoint(`${dir}/model`, await trained.toCheckpoint(jackpotInfo(last)));
  trained.dispose();
  files.push("model/");

  const lossRows = result.steps.map((s) => ({
    step: s.step,
    loss: s.loss,
    lr: s.lr,
    grad_norm: s.gradNorm,
    seconds: s.seconds,
    gpu_mb: gpuMiB.get(s.step) ?? null,
  }));
  const evalRows = result.evals.map((e) => ({
    step: e.step,
    accuracy: e.accuracy,
    n: e.n,
    seconds: e.seconds,
  }));
  const lossTable = rowsToTable(lossRows, ["step", "loss", "lr", "grad_norm", "seconds", "gpu_mb"]);
  await writeTable(dir, "losses", lossTable);
  await writeTable(dir, "evals", rowsToTable(evalRows, ["step", "accuracy", "n", "seconds"]));
  files.push("losses.csv", "losses.json", "evals.csv", "evals.json");
  const charts = [
    {
      name: "loss",
      caption: "Training cross-entropy per answer token (nats) at every step.",
      spec: lineChartSpec({
        title: "training loss",
        data: lossRows,
        x: { field: "step" },
        y: { field: "loss" },
      }),
    },
    {
      name: "accuracy",
      caption:
        `Greedy exact-match accuracy on ${config.evalSize} evaluation prompts (their own RNG stream; a small task such as 1-digit addition has only 100 distinct prompts, so they also occur in training).`,
      spec: lineChartSpec({
        title: "exact-match accuracy",
        data: evalRows,
        x: { field: "step" },
        y: { field: "accuracy" },
        points: true,
        yDomain: [0, 1],
      }),
    },
  ];
  const svgs: string[] = [];
  for (const c of charts) {
    await writeJsonAtomic(`${dir}/${c.name}.vl.json`, c.spec);
    const svg = await renderSvg(c.spec);
    await writeFileAtomic(`${dir}/${c.name}.svg`, svg);
    svgs.push(svg);
    files.push(`${c.name}.vl.json`, `${c.name}.svg`);
  }
  const summary = summaryLine(rest, config);
  await writeFileAtomic(
    `${dir}/index.html`,
    htmlReport({
      title: `jackpot pretrain: ${config.task}`,
      sections: [
        { kind: "text", text: summary },
        { kind: "text", text: `Model: ${describeModel(model)}.` },
        ...charts.map((c, i) => ({
          kind: "svg" as const,
          heading: c.spec.title as string,
          svg: svgs[i],
          caption: c.caption,
        })),
        { kind: "keyValues", heading: "Settings", entries: { ...config, init: config.init ?? "" } },
        {
          kind: "html",
          heading: "Evaluations (evals.csv)",
          html: tableToHtml(rowsToTable(evalRows)),
        },
      ],
    }),
  );
  files.push("index.html");
  await writeJsonAtomic(`${dir}/config.json`, {
    command: "pretrain",
    config,
    model,
    parameters: parameterCount(model),
    reached: result.reached,
    steps: last,
    finalAccuracy: result.evals[result.evals.length - 1]?.accuracy ?? null,
    versions: runtimeVersions(),
    seconds: Number(result.seconds.toFixed(3)),
  });
  files.push("config.json");
  return { dir, files, result: rest, model };
}

/** One sentence: the accuracy reached, when, and in how long. */
export function summaryLine(r: Omit<PretrainResult, "model">, config: PretrainConfig): string {
  const e = r.evals[r.evals.length - 1];
  if (!e) return "No evaluation was run.";
  const acc = `${(100 * e.accuracy).toFixed(1)}% exact match (greedy, ${e.n} evaluation prompts)`;
  return r.reached
    ? `Reached ${acc} at step ${e.step} in ${r.seconds.toFixed(1)} s (target ${
      (100 * config.target).toFixed(0)
    }%).`
    : `Stopped at step ${e.step} after ${r.seconds.toFixed(1)} s with ${acc}, below the target ${
      (100 * config.target).toFixed(0)
    }%.`;
}

/** `jackpot pretrain`. */
export const command: Command = {
  name: "pretrain",
  summary:
    "Train a transformer on a task to a target exact-match accuracy (loss curve, checkpoints)",
  description:
    "Trains a Qwen-style decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU) with " +
    "next-token cross-entropy on the answer and stop tokens of the task's prompt + answer " +
    "sequences (AdamW, warm-up then cosine decay, gradient clipping at 1), evaluating greedy " +
    "exact-match accuracy on --eval-size prompts drawn from their own RNG stream (not held out: small tasks have few distinct prompts) every --eval-every steps and stopping at --target. " +
    "--model is a preset (tiny, actor, policy) optionally followed by :key=value overrides " +
    "(e.g. actor:layers=3). Writes losses.csv, evals.csv, loss/accuracy charts, a Hugging Face " +
    "Qwen checkpoint per evaluation (checkpoints/step-N/) and the final one (model/), index.html " +
    "and config.json.",
  options: {
    task: {
      type: "string",
      valueName: "SPEC",
      default: DEFAULT_PRETRAIN_TASK,
      description: "Task spec (name:key=value,...)",
    },
    model: {
      type: "string",
      valueName: "SPEC",
      description:
        `Model preset[:key=value,...] (default: ${DEFAULT_PRETRAIN_MODEL}; not with --init)`,
    },
    init: { type: "string", valueName: "DIR", description: "Start from this checkpoint folder" },
    steps: { type: "string", valueName: "N", default: "300", description: "Most optimizer steps" },
    batch: { type: "string", valueName: "N", default: "64", description: "Sequences per step" },
    lr: { type: "string", valueName: "X", default: "0.02", description: "Peak learning rate" },
    seed: { type: "string", valueName: "N", default: "1", description: "Random seed" },
    "eval-every": {
      type: "string",
      valueName: "N",
      default: "25",
      description: "Steps between evaluations and checkpoints",
    },
    "eval-size": {
      type: "string",
      valueName: "N",
      default: "128",
      description: "Prompts per evaluation",
    },
    target: {
      type: "string",
      valueName: "X",
      default: "0.95",
      description: "Stop at this exact-match accuracy",
    },
    out: {
      type: "string",
      valueName: "DIR",
      description: "Run folder (default runs/pretrain-<UTC time>)",
    },
    force: { type: "boolean", description: "Write into a non-empty existing run folder" },
    quiet: { type: "boolean", description: "No progress bar" },
  },
  async run(values: ParsedValues): Promise<number> {
    const config = pretrainConfigFromValues(values);
    await resolve(config); // bad task/model specs fail before any GPU work
    const out = runFolder(values, "pretrain");
    const outcome = await runInterruptibly("pretrain", out, (signal) =>
      runPretrain(config, out, {
        force: values.force === true,
        quiet: values.quiet === true,
        signal,
      }));
    if ("exitCode" in outcome) return outcome.exitCode;
    const run = outcome.value;
    console.log(`Model: ${describeModel(run.model)}`);
    console.log(summaryLine(run.result, config));
    console.log(`Wrote ${run.files.length} files and folders to ${run.dir}/ (open index.html)`);
    return run.result.reached ? 0 : 1;
  },
};
