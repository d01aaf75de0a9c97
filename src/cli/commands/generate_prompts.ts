/**
 * What `jackpot generate` reads around the prompt: the folder's chat template (or the ChatML
 * layout of Qwen's instruct models without one) and the sampling defaults of its
 * `generation_config.json`.
 *
 * @module
 */
import { UsageError } from "../command.ts";
import type { SamplingSettings } from "../../nn/sampling_reference.ts";
import type { BpeTokenizer } from "../../text/mod.ts";
import { type ChatMessage, chatMLPrompt, type ChatTemplate } from "../../text/chat_template.ts";

/**
 * `text` as one user turn of ChatML (after an optional system turn), ending where the assistant's
 * answer starts: the layout Qwen2, Qwen2.5 and Qwen3 instruct models are trained on, which their
 * chat templates produce for one message with `add_generation_prompt`. (Qwen2.5's template adds a
 * default system message when none is given, Qwen3's none; pass `system` to match either exactly.)
 * A UsageError when the tokenizer has no `<|im_start|>` / `<|im_end|>` tokens.
 *
 * @example
 * ```ts
 * chatPrompt(tok, "2+2?"); // "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
 * ```
 */
export function chatPrompt(tok: BpeTokenizer, text: string, system?: string): string {
  for (const t of ["<|im_start|>", "<|im_end|>"]) {
    if (tok.tokenId(t) === undefined) {
      throw new UsageError(`--chat: the tokenizer has no ${t} token (not a ChatML model)`);
    }
  }
  return chatMLPrompt([
    ...(system === undefined ? [] : [{ role: "system", content: system }]),
    { role: "user", content: text },
  ]);
}

/**
 * `template` run on `messages` with `add_generation_prompt`; an error the template raises (such
 * as a role it refuses) is a UsageError with the template's message.
 */
export function renderOrExplain(
  template: ChatTemplate,
  messages: ChatMessage[],
  variables: Record<string, unknown>,
): string {
  try {
    return template.render(messages, { variables });
  } catch (e) {
    throw new UsageError(`--chat: ${e instanceof Error ? e.message : e}`);
  }
}

/** Sampling defaults of a folder, and the settings of its file that the engine does not apply. */
export interface GenerationDefaults {
  /** Temperature, top-k and top-p. */
  settings: SamplingSettings;
  /** `key value` of each setting left out (e.g. `repetition_penalty 1.05`). */
  ignored: string[];
}

// Keys of generation_config.json that change the distribution but that the engine does not
// implement; reported so that a user comparing with transformers knows why they differ.
const UNSUPPORTED = [
  "repetition_penalty",
  "min_p",
  "typical_p",
  "epsilon_cutoff",
  "eta_cutoff",
  "no_repeat_ngram_size",
  "num_beams",
  "presence_penalty",
];

/**
 * Sampling defaults of `dir/generation_config.json` (`do_sample`, `temperature`, `top_k`, `top_p`),
 * as transformers' `generate` applies them: without `do_sample: true` it is greedy (temperature 0).
 * Without the file: temperature 1, no top-k, no top-p. A file that is not JSON, or a value of the
 * wrong type, is a UsageError naming the file and the key.
 */
export async function readGenerationDefaults(dir: string): Promise<GenerationDefaults> {
  const path = `${dir}/generation_config.json`;
  const out: SamplingSettings = { temperature: 1, topK: 0, topP: 1 };
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { settings: out, ignored: [] };
    throw e;
  }
  let g: Record<string, unknown>;
  try {
    g = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path} is not valid JSON (${(e as Error).message})`);
  }
  if (g === null || typeof g !== "object" || Array.isArray(g)) {
    throw new UsageError(`${path} is not a JSON object`);
  }
  const num = (key: string, ok: (x: number) => boolean): number | undefined => {
    const v = g[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !ok(v)) {
      throw new UsageError(`${path}: '${key}' is ${JSON.stringify(v)}, not a valid value`);
    }
    return v;
  };
  const temperature = num("temperature", (x) => x >= 0);
  const topK = num("top_k", (x) => Number.isInteger(x) && x >= 0);
  const topP = num("top_p", (x) => x > 0 && x <= 1);
  if (temperature !== undefined) out.temperature = temperature;
  if (topK !== undefined) out.topK = topK;
  if (topP !== undefined) out.topP = topP;
  // transformers samples only with do_sample: true (its default is false: greedy search).
  if (g.do_sample !== undefined && typeof g.do_sample !== "boolean") {
    throw new UsageError(`${path}: 'do_sample' is ${JSON.stringify(g.do_sample)}, not a boolean`);
  }
  const neutral = (k: string, v: unknown) =>
    v === undefined || v === null || v === false ||
    (k === "repetition_penalty" || k === "num_beams" || k === "typical_p" ? v === 1 : v === 0);
  const ignored = UNSUPPORTED.filter((k) => !neutral(k, g[k])).map((k) =>
    `${k} ${JSON.stringify(g[k])}`
  );
  if (g.do_sample !== true) return { settings: { temperature: 0, topK: 0, topP: 1 }, ignored };
  return { settings: out, ignored };
}
