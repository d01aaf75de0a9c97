/**
 * `jackpot generate`: sample text from a checkpoint folder that carries its own tokenizer (a
 * Hugging Face Qwen folder: config.json, safetensors weights, tokenizer.json), with the GPU
 * rollout engine. The text counterpart of `jackpot sample`, which draws a task's prompts.
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
import { openCheckpointOrExplain } from "./pretrain.ts";
import { checkOutFolder } from "./sample.ts";
import { initTensors } from "../../tensor/mod.ts";
import { describeModel } from "../../nn/config.ts";
import { validateSampling } from "../../nn/sampling_reference.ts";
import { completion, type RolloutBatch, RolloutEngine } from "../../nn/rollout.ts";
import type { Transformer } from "../../nn/transformer.ts";
import { type BpeTokenizer, readTokenizer } from "../../text/mod.ts";
import { ChatTemplate } from "../../text/chat_template.ts";
import { prepareRunDir, rowsToTable, writeJsonAtomic, writeTable } from "../../report/mod.ts";
import { runtimeVersions } from "../runtime.ts";
import { chatPrompt, readGenerationDefaults, renderOrExplain } from "./generate_prompts.ts";

/** Most prompts × samples of one `jackpot generate` run. */
export const MAX_GENERATE_ROWS = 1024;

/** One generated completion, as `--json` and the run folder record it. */
export interface GeneratedRow {
  /** Index of the prompt in the input. */
  prompt: number;
  /** Sample of that prompt (0 … --samples − 1). */
  sample: number;
  /** The prompt text as given (before the chat template). */
  promptText: string;
  /** The prompt's token ids as fed to the model (template and bos included). */
  promptIds: number[];
  /** Generated ids (the stop token included when the row stopped). */
  completionIds: number[];
  /** Their text (special tokens dropped). */
  completionText: string;
  /** Whether a stop token ended the row (else --max-new did). */
  stopped: boolean;
  /** Summed log-probability under the sampling distribution, and under the raw model. */
  logProb: number;
  rawLogProb: number;
}

/**
 * Text of `ids`, skipping special tokens; ids beyond the tokenizer (a model's vocabulary is often
 * padded past it) are written `<id N>` instead of failing.
 */
export function decodeForDisplay(tok: BpeTokenizer, ids: ArrayLike<number>): string {
  const out: string[] = [];
  let run: number[] = [];
  const flush = () => {
    if (run.length) out.push(tok.decode(run, { skipSpecial: true }));
    run = [];
  };
  for (const id of Array.from(ids)) {
    if (hasToken(tok, id)) run.push(id);
    else flush(), out.push(`<id ${id}>`);
  }
  flush();
  return out.join("");
}

function hasToken(tok: BpeTokenizer, id: number): boolean {
  try {
    tok.tokenString(id);
    return true;
  } catch {
    return false;
  }
}

/** `jackpot generate`. */
export const command: Command = {
  name: "generate",
  summary: "Sample text from a checkpoint with its tokenizer (e.g. a Hugging Face Qwen folder)",
  description:
    "Loads a checkpoint folder with a tokenizer.json (a Qwen2/Qwen2.5/Qwen3 folder as downloaded " +
    "from the Hugging Face Hub, or any jackpot checkpoint given one), encodes --prompt (or each " +
    "line of --prompts FILE), and samples --samples completions per prompt with the GPU rollout " +
    "engine (KV cache, one readback). Generation stops at the tokenizer's end tokens (those of " +
    "generation_config.json when present) or after --max-new tokens. Sampling defaults come from " +
    "generation_config.json when present. --chat runs the folder's chat template (chat_template.jinja " +
    "or tokenizer_config.json's chat_template, as transformers' apply_chat_template does) on each " +
    "prompt as one user turn, or ChatML when the folder has none.",
  options: {
    checkpoint: {
      type: "string",
      valueName: "DIR",
      description: "Checkpoint folder with tokenizer.json (required)",
    },
    prompt: { type: "string", valueName: "TEXT", description: "The prompt" },
    prompts: {
      type: "string",
      valueName: "FILE",
      description: "Prompts, one per line (a .jsonl file: one JSON string per line)",
    },
    chat: {
      type: "boolean",
      description: "Wrap prompts in the folder's chat template (ChatML without one)",
    },
    system: { type: "string", valueName: "TEXT", description: "System message for --chat" },
    "no-thinking": {
      type: "boolean",
      description: "With --chat: enable_thinking = false (Qwen3's templates close the think block)",
    },
    samples: {
      type: "string",
      valueName: "N",
      default: "1",
      description: "Completions per prompt",
    },
    "max-new": {
      type: "string",
      valueName: "N",
      default: "64",
      description: "Most new tokens per completion",
    },
    temperature: {
      type: "string",
      valueName: "X",
      description: "Temperature (0: greedy; default generation_config.json's, else 1)",
    },
    "top-k": { type: "string", valueName: "K", description: "Top-k truncation (0: off)" },
    "top-p": { type: "string", valueName: "P", description: "Nucleus mass (1: off)" },
    "capture-k": {
      type: "string",
      valueName: "K",
      default: "0",
      description: "Top-k (ids, log-probs) recorded per token (in --json)",
    },
    seed: { type: "string", valueName: "N", default: "1", description: "Seed of the draws" },
    json: { type: "string", valueName: "FILE", description: "Write every completion as JSON" },
    out: {
      type: "string",
      valueName: "DIR",
      description: "Also write a run folder: completions.csv/json, config.json (written last)",
    },
    force: { type: "boolean", description: "Write into a non-empty existing --out folder" },
    quiet: { type: "boolean", description: "No progress bar" },
  },
  async run(values: ParsedValues): Promise<number> {
    const dir = values.checkpoint;
    if (typeof dir !== "string" || dir === "") {
      throw new UsageError(
        "--checkpoint DIR is required (a folder with config.json and tokenizer.json)",
      );
    }
    const texts = await promptTexts(values);
    const samples = integerOption(values, "samples", { min: 1, max: MAX_GENERATE_ROWS });
    if (texts.length * samples > MAX_GENERATE_ROWS) {
      throw new UsageError(
        `${texts.length} prompts × --samples ${samples} = ${
          texts.length * samples
        } rows, at most ${MAX_GENERATE_ROWS}`,
      );
    }
    const maxNew = integerOption(values, "max-new", { min: 1 });
    const captureK = integerOption(values, "capture-k", { min: 0, max: 256 });
    const seed = integerOption(values, "seed", { min: 0, max: 2 ** 32 - 1 });
    const out = typeof values.out === "string" ? values.out : undefined;
    if (out !== undefined) await checkOutFolder(out, values.force === true);
    if (values.system !== undefined && values.chat !== true) {
      throw new UsageError("--system needs --chat");
    }
    if (values["no-thinking"] === true && values.chat !== true) {
      throw new UsageError("--no-thinking needs --chat");
    }
    const tok = await readTokenizerOrExplain(dir);
    const defaults = await readGenerationDefaults(dir);
    for (const what of defaults.ignored) {
      console.error(
        `note: ${dir}/generation_config.json sets ${what}, which jackpot does not apply`,
      );
    }
    const settings = {
      temperature: values.temperature === undefined
        ? defaults.settings.temperature
        : numberOption(values, "temperature", { min: 0 }),
      topK: values["top-k"] === undefined
        ? defaults.settings.topK
        : integerOption(values, "top-k", { min: 0 }),
      topP: values["top-p"] === undefined
        ? defaults.settings.topP
        : numberOption(values, "top-p", { min: 0, exclusiveMin: true, max: 1 }),
    };
    try {
      validateSampling(settings);
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message : String(e));
    }
    const system = typeof values.system === "string" ? values.system : undefined;
    // A template that cannot be read or parsed is a ChatTemplateError naming its file (exit 1).
    const template = values.chat === true ? await ChatTemplate.read(dir) : null;
    if (values.chat === true && template === null) {
      console.error(`note: ${dir} has no chat template; --chat writes ChatML (Qwen's layout)`);
    }
    const promptIds = texts.map((text) => {
      if (template) {
        // As apply_chat_template(tokenize=True): the template writes any bos itself.
        const messages = [
          ...(system === undefined ? [] : [{ role: "system", content: system }]),
          { role: "user", content: text },
        ];
        const variables = values["no-thinking"] === true ? { enable_thinking: false } : {};
        return Array.from(tok.encode(renderOrExplain(template, messages, variables)));
      }
      const full = values.chat === true ? chatPrompt(tok, text, system) : text;
      const ids = Array.from(tok.encode(full));
      return tok.bosId === null ? ids : [tok.bosId, ...ids];
    });
    const empty = promptIds.findIndex((p) => p.length === 0);
    if (empty >= 0) throw new UsageError(`prompt ${empty + 1} is empty`);

    // The config and the weights' headers first: every check below runs before any weight is read.
    const ckpt = await openCheckpointOrExplain(dir, "--checkpoint");
    let model: Transformer;
    const longest = Math.max(...promptIds.map((p) => p.length));
    const cfg = ckpt.config;
    try {
      if (tok.vocabSize > cfg.vocabSize) {
        throw new UsageError(
          `${dir}/tokenizer.json has ${tok.vocabSize} ids, more than the model's vocabulary ${cfg.vocabSize}`,
        );
      }
      if (longest + maxNew > cfg.maxSeqLen) {
        throw new UsageError(
          `a prompt of ${longest} tokens + --max-new ${maxNew} exceeds the model's ${cfg.maxSeqLen} positions`,
        );
      }
      for (const [name, k] of [["--top-k", settings.topK], ["--capture-k", captureK]] as const) {
        if (k > cfg.vocabSize) {
          throw new UsageError(`${name} ${k} exceeds the vocabulary ${cfg.vocabSize}`);
        }
      }
      await initTensors();
      // Streamed in blocks of rows: host memory stays far below the model's size (src/nn/load.ts).
      const mib = Math.max(1, Math.ceil(ckpt.bytesToLoad / 2 ** 20));
      const loading = new Progress({
        total: mib,
        label: "loading MiB",
        quiet: values.quiet === true,
      });
      model = await ckpt.load({
        onProgress: (done) => loading.update(Math.min(mib, Math.round(done / 2 ** 20))),
      });
      loading.finish();
    } finally {
      ckpt.close();
    }
    const rows = promptIds.flatMap((ids) => Array.from({ length: samples }, () => ids));

    console.log(`Model: ${describeModel(model.config)}`);
    const engine = new RolloutEngine(model, {
      maxBatch: rows.length,
      maxPromptLength: longest,
      maxNewTokens: maxNew,
      captureK,
    });
    // Made at the first report, when the number of decode steps is known; its clock starts now,
    // so the prefill counts.
    let bar: Progress | undefined;
    const started = performance.now();
    let r: RolloutBatch;
    try {
      r = await engine.generate(rows, {
        ...settings,
        seed,
        stopId: tok.stopIds.filter((id) => id < cfg.vocabSize).slice(0, 4),
        padId: tok.padId ?? tok.eosId ?? 0,
        onProgress: (done, total) => {
          bar ??= new Progress({
            total,
            label: "decode steps",
            quiet: values.quiet === true,
            startedAt: started,
          });
          bar.update(done);
        },
      });
    } finally {
      engine.dispose();
      model.dispose();
    }
    const seconds = (performance.now() - started) / 1000;
    bar?.finish();
    const results: GeneratedRow[] = rows.map((ids, b) => {
      const c = completion(r, b);
      const sum = (a: Float32Array) =>
        a.slice(b * r.maxNew, b * r.maxNew + c.length).reduce((s, x) => s + x, 0);
      return {
        prompt: Math.floor(b / samples),
        sample: b % samples,
        promptText: texts[Math.floor(b / samples)],
        promptIds: ids,
        completionIds: Array.from(c),
        completionText: decodeForDisplay(tok, c),
        stopped: r.stopped[b] === 1,
        logProb: sum(r.logProbs),
        rawLogProb: sum(r.rawLogProbs),
      };
    });
    for (const g of results) {
      const head = samples > 1 ? `[${g.prompt + 1}.${g.sample + 1}]` : `[${g.prompt + 1}]`;
      console.log(`${head} ${g.promptText}`);
      console.log(`${g.completionText}${g.stopped ? "" : " …"}`);
      console.log(
        `  (${g.completionIds.length} tokens, log p ${g.logProb.toFixed(3)}, raw ${
          g.rawLogProb.toFixed(3)
        })`,
      );
    }
    const tokens = results.reduce((s, g) => s + g.completionIds.length, 0);
    console.log(
      `${tokens} tokens in ${seconds.toFixed(1)} s (${
        (tokens / seconds).toFixed(1)
      } tokens/s, ${rows.length} rows)`,
    );
    const json = {
      checkpoint: dir,
      settings: r.settings,
      seed,
      stopIds: r.stopIds,
      captureK,
      rows: results.map((g, b) => ({
        ...g,
        topIds: captureK > 0
          ? Array.from(
            r.topIds.slice(
              b * r.maxNew * captureK,
              (b * r.maxNew + g.completionIds.length) * captureK,
            ),
          )
          : undefined,
      })),
    };
    if (typeof values.json === "string" && values.json !== "") {
      await writeJsonAtomic(values.json, json);
      console.log(`Wrote ${values.json}`);
    }
    if (out !== undefined) {
      await prepareRunDir(out, { force: values.force === true });
      await writeTable(
        out,
        "completions",
        rowsToTable(results.map((g) => ({
          prompt: g.prompt,
          sample: g.sample,
          prompt_text: g.promptText,
          completion: g.completionText,
          tokens: g.completionIds.length,
          stopped: g.stopped ? 1 : 0,
          log_prob: g.logProb,
          raw_log_prob: g.rawLogProb,
        }))),
      );
      await writeJsonAtomic(`${out}/config.json`, {
        command: "generate",
        checkpoint: dir,
        prompts: texts.length,
        samples,
        maxNew,
        chat: values.chat === true,
        seed,
        sampling: { ...settings, captureK },
        stopIds: r.stopIds,
        versions: runtimeVersions(),
      });
      console.log(`Wrote completions.csv, completions.json, config.json to ${out}/`);
    }
    return 0;
  },
};

// The prompt texts of --prompt or --prompts FILE (exactly one of them).
async function promptTexts(values: ParsedValues): Promise<string[]> {
  const one = values.prompt, file = values.prompts;
  if ((one === undefined) === (file === undefined)) {
    throw new UsageError("give exactly one of --prompt TEXT and --prompts FILE");
  }
  if (typeof one === "string") return [one];
  const path = file as string;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`--prompts: ${path} not found`);
    throw e;
  }
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new UsageError(`--prompts: ${path} has no prompt`);
  if (!path.endsWith(".jsonl")) return lines;
  return lines.map((line, i) => {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new UsageError(`--prompts: ${path} line ${i + 1} is not JSON`);
    }
    if (typeof v === "string") return v;
    if (v && typeof v === "object" && typeof (v as { prompt?: unknown }).prompt === "string") {
      return (v as { prompt: string }).prompt;
    }
    throw new UsageError(
      `--prompts: ${path} line ${i + 1} is neither a JSON string nor {"prompt": "..."}`,
    );
  });
}

// The folder's tokenizer; a missing tokenizer.json is a usage error naming what to do instead.
async function readTokenizerOrExplain(dir: string): Promise<BpeTokenizer> {
  try {
    await Deno.stat(`${dir}/tokenizer.json`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new UsageError(
      `--checkpoint: ${dir}/tokenizer.json not found; generate needs the model's tokenizer ` +
        "(for a checkpoint of a jackpot task, use `jackpot sample`)",
    );
  }
  return await readTokenizer(dir);
}
