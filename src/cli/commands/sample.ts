/**
 * `jackpot sample`: load a checkpoint, sample completions of a task's prompts with the rollout
 * engine, and print them with their rewards and log-probs (optionally the whole rollout as JSON).
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
import { loadTaskFromSpec, stopIdsOf, type Task, WordTokenizer } from "../../tasks/mod.ts";
import { initTensors } from "../../tensor/mod.ts";
import { openCheckpointOrExplain } from "./pretrain.ts";
import { validateSampling } from "../../nn/sampling_reference.ts";
import { describeModel } from "../../nn/config.ts";
import { completion, type RolloutBatch, RolloutEngine } from "../../nn/rollout.ts";
import { Transformer } from "../../nn/transformer.ts";
import { Rng } from "../../util/rng.ts";
import {
  prepareRunDir,
  rowsToTable,
  RunDirNotAFolderError,
  RunDirNotEmptyError,
  writeJsonAtomic,
  writeTable,
} from "../../report/mod.ts";
import { runtimeVersions } from "../runtime.ts";

/**
 * Text of `ids` under the task's tokenizer; ids beyond its vocabulary (a model may have more ids
 * than the task's tokenizer, as LLMs pad theirs) are written `<id N>` instead of failing.
 */
export function decodeLenient(
  task: Task,
  ids: ArrayLike<number>,
  options: { skipSpecial?: boolean } = {},
): string {
  const V = task.tokenizer.vocabSize;
  const all = Array.from(ids);
  if (all.every((id) => id < V)) return task.tokenizer.decode(all, options);
  const sep = task.tokenizer instanceof WordTokenizer ? " " : "";
  return all.map((id) => id < V ? task.tokenizer.decode([id], options) : `<id ${id}>`).join(sep);
}

/** A rollout batch as plain JSON (typed arrays become arrays; -inf log-probs become null). */
export function rolloutToJson(r: RolloutBatch, task: Task): Record<string, unknown> {
  const num = (x: number) => (Number.isFinite(x) ? x : null);
  const rows = r.prompts.map((prompt, b) => {
    const c = completion(r, b);
    const span = (a: ArrayLike<number>, k = 1) =>
      Array.from(a).slice(b * r.maxNew * k, (b * r.maxNew + c.length) * k);
    return {
      prompt: Array.from(prompt),
      promptText: task.tokenizer.decode(prompt, { skipSpecial: true }),
      completion: Array.from(c),
      completionText: decodeLenient(task, c),
      reward: task.reward(prompt, c),
      stopped: r.stopped[b] === 1,
      logProbs: span(r.logProbs).map(num),
      rawLogProbs: span(r.rawLogProbs).map(num),
      topIds: span(r.topIds, r.captureK),
      topLogProbs: span(r.topLogProbs, r.captureK).map(num),
    };
  });
  return {
    settings: r.settings,
    seed: r.seed,
    stream0: r.stream0,
    stopId: r.stopId,
    stopIds: r.stopIds,
    captureK: r.captureK,
    rows,
  };
}

/** Most prompts of one `jackpot sample` run (`--n`). */
export const MAX_SAMPLE_PROMPTS = 4096;

/**
 * RNG stream of the prompts. The rollout engine draws row r's tokens from stream r under the same
 * seed (`uniformAt(seed, r, g)`, which is `new Rng(seed, r)`'s sequence), so the prompts take a
 * stream no row uses: otherwise one row's draws would repeat the numbers that chose the prompts.
 */
export const SAMPLE_PROMPT_STREAM = 0xffffffff;

/** `jackpot sample`. */
export const command: Command = {
  name: "sample",
  summary: "Sample completions of task prompts from a checkpoint (tokens, log-probs, rewards)",
  description:
    "Loads a checkpoint folder (config.json + model.safetensors, e.g. the model/ folder " +
    "of a pretrain run), draws --n prompts of the task (by default the task recorded in the " +
    "checkpoint) and samples one completion per prompt with the GPU rollout engine (KV cache, " +
    "one readback). Prints each completion with its reward and its summed log-probability under " +
    "the sampling distribution and under the raw model, then the mean reward. --json writes every " +
    "token's processed and raw log-prob and the captured top-k.",
  options: {
    checkpoint: { type: "string", valueName: "DIR", description: "Checkpoint folder (required)" },
    task: {
      type: "string",
      valueName: "SPEC",
      description: "Task spec (default: the checkpoint's)",
    },
    n: { type: "string", valueName: "N", default: "8", description: "Prompts" },
    temperature: {
      type: "string",
      valueName: "X",
      default: "1",
      description: "Temperature (0: greedy)",
    },
    "top-k": {
      type: "string",
      valueName: "K",
      default: "0",
      description: "Top-k truncation (0: off)",
    },
    "top-p": { type: "string", valueName: "P", default: "1", description: "Nucleus mass (1: off)" },
    "capture-k": {
      type: "string",
      valueName: "K",
      default: "0",
      description: "Top-k (ids, log-probs) recorded per token",
    },
    seed: {
      type: "string",
      valueName: "N",
      default: "1",
      description: "Seed of the prompts and the draws",
    },
    json: { type: "string", valueName: "FILE", description: "Write the rollout as JSON" },
    out: {
      type: "string",
      valueName: "DIR",
      description:
        "Also write a run folder: completions.csv/json, rollout.json, config.json (written last)",
    },
    force: { type: "boolean", description: "Write into a non-empty existing --out folder" },
  },
  async run(values: ParsedValues): Promise<number> {
    if (typeof values.checkpoint !== "string" || values.checkpoint === "") {
      throw new UsageError(
        "--checkpoint DIR is required (a folder with config.json and model.safetensors)",
      );
    }
    const n = integerOption(values, "n", { min: 1, max: MAX_SAMPLE_PROMPTS });
    const temperature = numberOption(values, "temperature", { min: 0 });
    const topK = integerOption(values, "top-k", { min: 0 });
    const topP = numberOption(values, "top-p", { min: 0, exclusiveMin: true, max: 1 });
    const captureK = integerOption(values, "capture-k", { min: 0, max: 256 });
    const seed = integerOption(values, "seed", { min: 0, max: 2 ** 32 - 1 });
    const out = typeof values.out === "string" ? values.out : undefined;
    if (out !== undefined) await checkOutFolder(out, values.force === true);
    try {
      validateSampling({ temperature, topK, topP });
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message : String(e));
    }
    // A missing folder is a usage error (exit 2); a corrupt one a CheckpointError (exit 1).
    // The config and the weights' headers first: every check below runs before any weight is read.
    const ckpt = await openCheckpointOrExplain(values.checkpoint, "--checkpoint");
    let task: Task;
    let model: Transformer;
    let spec: string;
    try {
      const cfg = ckpt.config;
      const named = typeof values.task === "string" && values.task !== ""
        ? values.task
        : ckpt.qwen.jackpot?.task;
      if (typeof named !== "string") {
        throw new UsageError("the checkpoint records no task; pass --task");
      }
      spec = named;
      try {
        task = await loadTaskFromSpec(spec);
      } catch (e) {
        throw new UsageError(`--task: ${e instanceof Error ? e.message : e}`);
      }
      if (task.tokenizer.vocabSize > cfg.vocabSize) {
        throw new UsageError(
          `the task's vocabulary (${task.tokenizer.vocabSize}) exceeds the model's (${cfg.vocabSize})`,
        );
      }
      if (topK > cfg.vocabSize) {
        throw new UsageError(`--top-k ${topK} exceeds the vocabulary ${cfg.vocabSize}`);
      }
      if (captureK > cfg.vocabSize) {
        throw new UsageError(`--capture-k ${captureK} exceeds the vocabulary ${cfg.vocabSize}`);
      }
      if (task.maxPromptLength > cfg.maxSeqLen) {
        throw new UsageError(
          `the model's maxSeqLen ${cfg.maxSeqLen} cannot hold the task's prompts of up to ${task.maxPromptLength} tokens`,
        );
      }
      await initTensors();
      model = await ckpt.load();
    } finally {
      ckpt.close();
    }
    const examples = task.sample(new Rng(seed, SAMPLE_PROMPT_STREAM), n);
    const engine = new RolloutEngine(model, {
      maxBatch: n,
      maxPromptLength: task.maxPromptLength,
      maxNewTokens: Math.min(
        task.maxAnswerLength + 1,
        model.config.maxSeqLen - task.maxPromptLength + 1,
      ),
      captureK,
    });
    const r = await engine.generate(examples.map((e) => e.prompt), {
      seed,
      temperature,
      topK,
      topP,
      stopId: stopIdsOf(task.tokenizer),
      padId: task.tokenizer.padId,
    });
    engine.dispose();
    model.dispose();
    console.log(`Model: ${describeModel(model.config)}; task ${spec}`);
    let total = 0;
    const rows: Record<string, string | number>[] = [];
    examples.forEach((e, b) => {
      const c = completion(r, b);
      const reward = task.reward(e.prompt, c);
      total += reward;
      const lp = r.logProbs.slice(b * r.maxNew, b * r.maxNew + c.length).reduce((s, x) => s + x, 0);
      const raw = r.rawLogProbs.slice(b * r.maxNew, b * r.maxNew + c.length).reduce(
        (s, x) => s + x,
        0,
      );
      const promptText = task.tokenizer.decode(e.prompt, { skipSpecial: true });
      const completionText = decodeLenient(task, c);
      rows.push({
        prompt: promptText,
        completion: completionText,
        reward,
        tokens: c.length,
        log_prob: lp,
        raw_log_prob: raw,
      });
      console.log(
        `${promptText} ${completionText}  reward ${reward}  log p ${lp.toFixed(3)} (raw ${
          raw.toFixed(3)
        })`,
      );
    });
    console.log(`Mean reward ${(total / n).toFixed(3)} over ${n} prompts`);
    if (typeof values.json === "string" && values.json !== "") {
      await writeJsonAtomic(values.json, rolloutToJson(r, task));
      console.log(`Wrote ${values.json}`);
    }
    if (out !== undefined) {
      await prepareRunDir(out, { force: values.force === true });
      await writeTable(out, "completions", rowsToTable(rows));
      await writeJsonAtomic(`${out}/rollout.json`, rolloutToJson(r, task));
      await writeJsonAtomic(`${out}/config.json`, {
        command: "sample",
        checkpoint: values.checkpoint,
        task: spec,
        n,
        seed,
        sampling: { temperature, topK, topP, captureK },
        meanReward: total / n,
        versions: runtimeVersions(),
      });
      console.log(`Wrote completions.csv, completions.json, rollout.json, config.json to ${out}/`);
    }
    return 0;
  },
};

/**
 * Refuses an --out that is empty, not a folder, or non-empty without --force, before any GPU work
 * (a UsageError).
 */
export async function checkOutFolder(out: string, force: boolean): Promise<void> {
  if (out.trim() === "") throw new UsageError("--out needs a folder name");
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(out);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  if (!info.isDirectory) throw new UsageError(new RunDirNotAFolderError(out).message);
  if (force) return;
  for await (const _ of Deno.readDir(out)) {
    throw new UsageError(new RunDirNotEmptyError(out).message);
  }
}
