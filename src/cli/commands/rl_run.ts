/**
 * What `jackpot rl` does once its options are read: load or create the two models, run the
 * trainer iteration by iteration, and write the run folder (tables rewritten after every
 * iteration, evaluations and checkpoints, charts, `config.json` last).
 *
 * @module
 */
import { UsageError } from "../command.ts";
import { Progress } from "../progress.ts";
import { runtimeVersions } from "../runtime.ts";
import { openCheckpointOrExplain } from "./pretrain.ts";
import {
  escapeTaskOptionValue,
  loadTaskFromSpec,
  parseTaskSpec,
  type Task,
} from "../../tasks/mod.ts";
import { TextTask } from "../../tasks/text/text_task.ts";
import { initTensors } from "../../tensor/mod.ts";
import { noGrad } from "../../autograd/mod.ts";
import { copyTokenizerFiles, type JackpotInfo, saveCheckpoint } from "../../nn/checkpoint/mod.ts";
import { describeModel, ModelConfigError, parseModelSpec } from "../../nn/config.ts";
import { evaluateGreedy } from "../../nn/pretrain.ts";
import { RolloutEngine } from "../../nn/rollout.ts";
import { MIN_TEMPERATURE } from "../../nn/sampling_reference.ts";
import { Transformer } from "../../nn/transformer.ts";
import { RL_MODES } from "../../rl/modes.ts";
import {
  evaluateSampled,
  passKs,
  SAMPLED_EVAL_STREAM,
  sampledEvalColumns,
  type SampledEvaluation,
} from "../../rl/sampled_eval.ts";
import { type RlConfig, RlConfigError } from "../../rl/trainer_config.ts";
import { RlTrainer } from "../../rl/trainer.ts";
import {
  ITERATION_COLUMNS,
  iterationRow,
  type LogRow,
  STEP_COLUMNS,
  stepRow,
} from "../../rl/log_rows.ts";
import {
  htmlReport,
  lineChartSpec,
  prepareRunDir,
  renderSvg,
  rowsToTable,
  writeFileAtomic,
  writeJsonAtomic,
  writeTable,
} from "../../report/mod.ts";
import { Rng } from "../../util/rng.ts";

/** Settings of a run beyond the trainer's: where the models come from, length, evaluation. */
export interface RlRunConfig {
  /** Task spec. */
  task: string;
  /** Checkpoint folder or model preset spec of the policy. */
  policy: string;
  /** Same for the rollout model (unused on-policy). */
  actor: string;
  /** Iterations (rollout batches). */
  iterations: number;
  /** Iterations between evaluations and checkpoints. */
  evalEvery: number;
  /** Prompts per evaluation (greedy, and sampled when `evalSamples` ≥ 1). */
  evalSize: number;
  /**
   * Samples per prompt of the sampled evaluation (Mean@k / Pass@k); 0 or absent: greedy only.
   * `rlConfigFromValues` always sets it (from --eval-samples, default 0).
   */
  evalSamples?: number;
  /** Temperature of the sampled evaluation; absent: the trainer's temperature. */
  evalTemperature?: number;
  /** The trainer's settings. */
  trainer: RlConfig;
}

const EVAL_STREAM = 0x726c00e0;

/**
 * The task of a spec, its files read (the `text` task's tokenizer and problems); a bad spec or
 * file is a usage error naming --task.
 */
export async function taskOf(spec: string): Promise<Task> {
  try {
    return await loadTaskFromSpec(spec);
  } catch (e) {
    throw new UsageError(`--task: ${e instanceof Error ? e.message : e}`);
  }
}

// Whether `path` names an existing folder (a checkpoint), not a model preset spec.
const isDirectory = (path: string) => Deno.stat(path).then((s) => s.isDirectory, () => false);

/**
 * `spec` with the `text` task's `tokenizer=` filled in from the policy's checkpoint folder when it
 * names none (the policy and the rollout model share that tokenizer); other specs unchanged.
 */
export async function withDefaultTokenizer(spec: string, policy: string): Promise<string> {
  let parsed;
  try {
    parsed = parseTaskSpec(spec);
  } catch (e) {
    throw new UsageError(`--task: ${e instanceof Error ? e.message : e}`);
  }
  if (parsed.name !== "text" || "tokenizer" in parsed.options) return spec;
  if (!(await isDirectory(policy))) {
    throw new UsageError(
      `--task text: --policy '${policy}' is not a checkpoint folder, so name the tokenizer ` +
        "folder in the spec (text:tokenizer=DIR,...)",
    );
  }
  return `${spec}${spec.includes(":") ? "," : ":"}tokenizer=${escapeTaskOptionValue(policy)}`;
}

// A checkpoint folder when `spec` names an existing directory, else a preset spec (fresh weights).
async function loadModel(spec: string, option: string, task: Task, seed: number): Promise<{
  model: Transformer;
  source: string;
  folder: string | null;
}> {
  if (await isDirectory(spec)) {
    const ckpt = await openCheckpointOrExplain(spec, option);
    let model: Transformer;
    try {
      model = await ckpt.load();
    } finally {
      ckpt.close();
    }
    if (task.tokenizer.vocabSize > model.config.vocabSize) {
      noGrad(() => model.dispose());
      throw new UsageError(
        `${option} ${spec}: the model's vocabulary (${model.config.vocabSize}) is smaller than ` +
          `the task's tokenizer (${task.tokenizer.vocabSize} tokens); is it the same model family?`,
      );
    }
    return { model, source: `checkpoint ${spec}`, folder: spec };
  }
  try {
    const config = parseModelSpec(spec, task.tokenizer.vocabSize);
    return {
      model: Transformer.init(config, { seed }),
      source: `fresh ${spec} (seed ${seed})`,
      folder: null,
    };
  } catch (e) {
    if (e instanceof ModelConfigError) {
      throw new UsageError(
        `${option}: '${spec}' is neither a folder nor a model preset: ${e.message}`,
      );
    }
    throw e;
  }
}

/** What {@link runRl} wrote. */
export interface RlRun {
  /** The run folder. */
  dir: string;
  /** Iteration rows. */
  iterations: LogRow[];
  /** Evaluation rows. */
  evals: LogRow[];
  /** Where each model came from. */
  sources: { policy: string; actor: string | null };
}

const pad6 = (n: number) => String(n).padStart(6, "0");

/**
 * Saves a trained model; one loaded from a Hugging Face folder gets that folder's tokenizer files
 * too, so the saved folder opens in `jackpot generate` and transformers as the original did.
 */
async function save(
  path: string,
  m: { model: Transformer; folder: string | null },
  info: JackpotInfo,
): Promise<void> {
  await saveCheckpoint(path, await m.model.toCheckpoint(info));
  if (m.folder !== null) await copyTokenizerFiles(m.folder, path);
}

/**
 * Runs and writes `dir`: `iterations.csv/json` and `steps.csv/json` (rewritten after every
 * iteration), `evals.csv/json`, `checkpoints/iter-NNNNNN/{policy,actor}/` at every evaluation,
 * `policy/` and `actor/` at the end, charts, `index.html`, and `config.json` last.
 */
export async function runRl(
  config: RlRunConfig,
  dir: string,
  { force = false, quiet = false, signal, onIteration }: {
    force?: boolean;
    quiet?: boolean;
    signal?: AbortSignal;
    /** Called after each iteration's files are written (a notebook's live plot, a test's abort). */
    onIteration?: (row: LogRow) => void;
  } = {},
): Promise<RlRun> {
  const task = await taskOf(config.task);
  const c = config.trainer;
  const onPolicy = RL_MODES[c.mode].onPolicy;
  const samples = config.evalSamples ?? 0;
  const evalTemperature = config.evalTemperature ?? c.temperature;
  // rlConfigFromValues checks both; a config built in code is checked here, before any file
  if (!(Number.isInteger(samples) && samples >= 0)) {
    throw new UsageError(`--eval-samples must be an integer >= 0, got ${samples}`);
  }
  const t = evalTemperature;
  if (samples > 0 && !(Number.isFinite(t) && (t === 0 || t >= MIN_TEMPERATURE))) {
    throw new UsageError(
      `--eval-temperature must be 0 (greedy) or at least ${MIN_TEMPERATURE}, got ${t}`,
    );
  }
  if (task instanceof TextTask && !task.heldOut) {
    console.error(
      `jackpot rl: the text task has no held-out problems (eval=FILE), so evaluations draw ` +
        `from the ${task.sizes.train} training problems`,
    );
  }
  await initTensors();
  const policy = await loadModel(config.policy, "--policy", task, c.seed);
  const actor = onPolicy ? null : await loadModel(config.actor, "--actor", task, c.seed + 1);
  for (const m of [policy, actor]) {
    if (m?.source.startsWith("fresh")) {
      console.error(
        `jackpot rl: ${m.source} starts from random weights; on an exact-match task its ` +
          "rewards stay 0 (train it first with jackpot pretrain)",
      );
    }
  }
  let trainer: RlTrainer | null = null;
  const engines: RolloutEngine[] = [];
  try {
    try {
      trainer = new RlTrainer({ task, policy: policy.model, actor: actor?.model, config: c });
    } catch (e) {
      if (e instanceof RlConfigError) throw new UsageError(e.message);
      throw e;
    }
    await prepareRunDir(dir, { force });
    const evalRng = new Rng(c.seed, EVAL_STREAM);
    const evalSet = task.evaluationSample?.(evalRng, config.evalSize) ??
      task.sample(evalRng, config.evalSize);
    const engineFor = (m: Transformer) => {
      const e = new RolloutEngine(m, {
        // the sampled evaluation draws every prompt's samples in one batch
        maxBatch: config.evalSize * Math.max(1, samples),
        maxPromptLength: task.maxPromptLength,
        maxNewTokens: task.maxAnswerLength + 1,
      });
      engines.push(e);
      return e;
    };
    const evalPolicy = engineFor(policy.model);
    const evalActor = actor ? engineFor(actor.model) : null;
    const iterations: LogRow[] = [], steps: LogRow[] = [], evals: LogRow[] = [];
    const info = (it: number, role: string) => ({
      task: config.task,
      step: it,
      role,
      seed: c.seed,
    });
    // Every evaluation and both models use the same draw (common random numbers): a change of
    // Pass@k between evaluations or between the models comes from the weights, not the draw.
    const sampled = (engine: RolloutEngine): Promise<SampledEvaluation> =>
      evaluateSampled(engine, task, evalSet, {
        samples,
        temperature: evalTemperature,
        seed: c.seed,
        stream: SAMPLED_EVAL_STREAM,
        draw: 0,
      });
    const evaluate = async (it: number) => {
      const row: LogRow = {
        iteration: it,
        policy_accuracy: await evaluateGreedy(evalPolicy, task, evalSet),
        actor_accuracy: evalActor ? await evaluateGreedy(evalActor, task, evalSet) : null,
      };
      if (samples > 0) {
        Object.assign(
          row,
          sampledEvalColumns("policy", samples, await sampled(evalPolicy)),
          sampledEvalColumns("actor", samples, evalActor ? await sampled(evalActor) : null),
        );
      }
      evals.push(row);
      await writeTable(dir, "evals", rowsToTable(evals));
      const base = `${dir}/checkpoints/iter-${pad6(it)}`;
      await save(`${base}/policy`, policy, info(it, "policy"));
      if (actor) {
        await save(`${base}/actor`, actor, info(it, "rollout"));
      }
    };
    await evaluate(0);
    const bar = new Progress({ total: config.iterations, label: `rl ${c.mode}`, quiet });
    try {
      for (let it = 0; it < config.iterations; it++) {
        signal?.throwIfAborted();
        const log = await trainer.iterate();
        const row = iterationRow(log);
        iterations.push(row);
        steps.push(...log.steps.map(stepRow));
        await writeTable(dir, "iterations", rowsToTable(iterations, ITERATION_COLUMNS));
        await writeTable(dir, "steps", rowsToTable(steps, STEP_COLUMNS));
        onIteration?.(row);
        if ((it + 1) % config.evalEvery === 0 || it + 1 === config.iterations) {
          await evaluate(it + 1);
        }
        const acc = row.accept_rate === null
          ? ""
          : ` accept ${(row.accept_rate * 100).toFixed(0)}%`;
        const ev = evals[evals.length - 1];
        const pass = samples > 0 ? ` pass@1 ${(100 * ev.policy_pass_at_1!).toFixed(1)}%` : "";
        bar.update(
          it + 1,
          `reward ${row.reward!.toFixed(3)}${acc} k3 ${row.k3!.toExponential(1)} eval ${
            (100 * ev.policy_accuracy!).toFixed(1)
          }%${pass} gpu ${(row.gpu_peak_mb! / 1024).toFixed(2)} GiB`,
        );
      }
    } finally {
      bar.finish();
    }
    const last = config.iterations;
    await save(`${dir}/policy`, policy, info(last, "policy"));
    if (actor) {
      await save(`${dir}/actor`, actor, info(last, "rollout"));
    }
    await writeReport(dir, config, c, iterations, evals, policy.model, actor?.model ?? null, {
      samples,
      temperature: evalTemperature,
    });
    await writeJsonAtomic(`${dir}/config.json`, {
      command: "rl",
      config: { ...config, evalSamples: samples, evalTemperature, trainer: c },
      policy: { source: policy.source, model: policy.model.config },
      actor: actor ? { source: actor.source, model: actor.model.config } : null,
      finalEval: evals[evals.length - 1],
      versions: runtimeVersions(),
    });
    return {
      dir,
      iterations,
      evals,
      sources: { policy: policy.source, actor: actor?.source ?? null },
    };
  } finally {
    engines.forEach((e) => e.dispose());
    trainer?.dispose();
    noGrad(() => {
      policy.model.dispose();
      actor?.model.dispose();
    });
  }
}

async function writeReport(
  dir: string,
  config: RlRunConfig,
  c: RlConfig,
  iterations: LogRow[],
  evals: LogRow[],
  policy: Transformer,
  actor: Transformer | null,
  sampling: { samples: number; temperature: number },
): Promise<void> {
  const chart = (name: string, y: string, title: string, caption: string, rows = iterations) => ({
    name,
    caption,
    spec: lineChartSpec({
      title,
      data: rows.filter((r) => r[y] !== null),
      x: { field: "iteration" },
      y: { field: y },
    }),
  });
  const n = sampling.samples;
  const charts = [
    chart(
      "reward",
      "reward",
      "mean reward of the rollout batch",
      "Mean task reward of each iteration's rollouts (sampled by the rollout model).",
    ),
    chart(
      "accuracy",
      "policy_accuracy",
      "policy exact-match accuracy",
      `Greedy exact match of the policy on ${config.evalSize} prompts of their own RNG stream.`,
      evals,
    ),
    chart(
      "k3",
      "k3",
      "actor-policy KL (k3)",
      "k3 = mean(r − 1 − log r), r = p_new/p_inf, on the sampled tokens (SPEC §8).",
    ),
  ];
  if (n > 0) {
    // long format, one line per k (1 and n; the powers of two between are in evals.csv)
    const ks = n > 1 ? [1, n] : [1];
    charts.splice(2, 0, {
      name: "pass",
      caption:
        `Pass@k of the policy: ${n} samples per prompt at temperature ${sampling.temperature} ` +
        `on the same ${config.evalSize} prompts, unbiased estimator (Chen et al. 2021); ` +
        `Pass@1 is the mean reward for 0/1 rewards. ks ${passKs(n).join(", ")} in evals.csv.`,
      spec: lineChartSpec({
        title: "policy pass@k",
        data: evals.flatMap((r) =>
          ks.map((k) => ({
            iteration: r.iteration,
            k: `pass@${k}`,
            pass: r[`policy_pass_at_${k}`],
          }))
        ),
        x: { field: "iteration" },
        y: { field: "pass", title: "pass@k" },
        color: { field: "k", title: "" },
        yDomain: [0, 1],
      }),
    });
  }
  if (!RL_MODES[c.mode].onPolicy) {
    charts.push(
      chart(
        "acceptance",
        "accept_rate",
        "OBRS acceptance rate",
        `Accepted / valid tokens at λ = ${
          c.budget === null ? c.lambda : `the budget ${c.budget}`
        }.`,
      ),
    );
  }
  const svgs: string[] = [];
  for (const ch of charts) {
    await writeJsonAtomic(`${dir}/${ch.name}.vl.json`, ch.spec);
    const svg = await renderSvg(ch.spec);
    await writeFileAtomic(`${dir}/${ch.name}.svg`, svg);
    svgs.push(svg);
  }
  const lastEval = evals[evals.length - 1];
  const pct = (x: number | null) => `${(100 * (x ?? 0)).toFixed(1)}%`;
  const passText = n > 0
    ? ` Sampled (${n} per prompt, temperature ${sampling.temperature}): policy mean reward ${
      (lastEval.policy_mean_reward ?? 0).toFixed(3)
    }, pass@1 ${pct(lastEval.policy_pass_at_1)}${
      n > 1 ? `, pass@${n} ${pct(lastEval[`policy_pass_at_${n}`])}` : ""
    }${
      actor
        ? `; rollout model pass@1 ${pct(lastEval.actor_pass_at_1)}${
          n > 1 ? `, pass@${n} ${pct(lastEval[`actor_pass_at_${n}`])}` : ""
        }`
        : ""
    }.`
    : "";
  await writeFileAtomic(
    `${dir}/index.html`,
    htmlReport({
      title: `jackpot rl: ${c.mode} on ${config.task}`,
      sections: [
        {
          kind: "text",
          text:
            `${config.iterations} iterations of ${c.prompts} prompts × ${c.groupSize} samples in mini-batches of ${c.minibatch}; final policy accuracy ${
              (100 * (lastEval.policy_accuracy ?? 0)).toFixed(1)
            }% (greedy).${passText}`,
        },
        {
          kind: "text",
          text: `Policy: ${describeModel(policy.config)}.${
            actor ? ` Rollout model: ${describeModel(actor.config)}.` : ""
          }`,
        },
        ...charts.map((ch, i) => ({
          kind: "svg" as const,
          heading: ch.spec.title as string,
          svg: svgs[i],
          caption: ch.caption,
        })),
        {
          kind: "keyValues",
          heading: "Settings",
          entries: {
            task: config.task,
            policy: config.policy,
            actor: config.actor,
            evalSize: config.evalSize,
            evalSamples: n,
            evalTemperature: n > 0 ? sampling.temperature : "",
            ...c,
            budget: c.budget ?? "",
            distillTargetKL: c.distillTargetKL ?? "",
          },
        },
      ],
    }),
  );
}
