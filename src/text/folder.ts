/**
 * Reading the tokenizer of a checkpoint folder as downloaded from the Hugging Face Hub:
 * `tokenizer.json` (required) and, when present, `tokenizer_config.json`,
 * `generation_config.json` and `config.json`, which say which tokens are bos, eos and pad.
 *
 * Which ids are chosen, and why (Qwen2.5-Instruct as the example):
 * - eos: `tokenizer_config.eos_token` (`<|im_end|>`, what a chat turn ends with), else the first
 *   `eos_token_id` of generation_config.json, else of config.json, else `<|endoftext|>` when it
 *   is a special added token.
 * - stop ids: eos, then every `eos_token_id` of generation_config.json and config.json
 *   (`<|im_end|>`, `<|endoftext|>`): transformers' `generate` stops on any of them.
 * - pad: `tokenizer_config.pad_token` (`<|endoftext|>`), else `pad_token_id` of
 *   generation_config.json or config.json, else eos.
 * - bos: `tokenizer_config.bos_token` only when `add_bos_token` is true there, else none. Qwen's
 *   configs give `bos_token_id` 151643, but no Qwen prompt starts with it: the tokenizer.json
 *   files this loader accepts never prepend a token, so a bos id from config.json would be wrong.
 *
 * @module
 */
import { BpeTokenizer } from "./tokenizer.ts";
import { loadTokenizerJson, SpecialTokenChoice, TokenRef } from "./tokenizer_json.ts";

/** The parsed JSON config files of a folder (absent: the file is missing). */
export interface TokenizerConfigs {
  /** tokenizer_config.json */
  tokenizerConfig?: Record<string, unknown>;
  /** generation_config.json */
  generationConfig?: Record<string, unknown>;
  /** config.json */
  config?: Record<string, unknown>;
}

/** A token in tokenizer_config.json: a string, or an AddedToken object with `content`. */
function tokenName(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (
    typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string"
  ) {
    return (v as { content: string }).content;
  }
  return null;
}

/** `eos_token_id`-style values: a number or a list of numbers. */
function idList(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

/**
 * The bos/eos/pad/stop choice the config files make (rules in the module doc).
 *
 * @example
 * ```ts
 * specialsFromConfigs({
 *   tokenizerConfig: { eos_token: "<|im_end|>", pad_token: "<|endoftext|>", bos_token: null },
 *   generationConfig: { eos_token_id: [151645, 151643] },
 * }); // { eos: "<|im_end|>", pad: "<|endoftext|>", bos: null, stop: [151645, 151643] }
 * ```
 */
export function specialsFromConfigs(configs: TokenizerConfigs): SpecialTokenChoice {
  const tc = configs.tokenizerConfig ?? {};
  const gc = configs.generationConfig ?? {};
  const mc = configs.config ?? {};
  const choice: SpecialTokenChoice = {};
  const eos: TokenRef | undefined = tokenName(tc.eos_token) ?? idList(gc.eos_token_id)[0] ??
    idList(mc.eos_token_id)[0];
  if (eos !== undefined) choice.eos = eos;
  const pad: TokenRef | undefined = tokenName(tc.pad_token) ?? idList(gc.pad_token_id)[0] ??
    idList(mc.pad_token_id)[0];
  if (pad !== undefined) choice.pad = pad;
  choice.bos = tc.add_bos_token === true ? tokenName(tc.bos_token) : null;
  choice.stop = [...idList(gc.eos_token_id), ...idList(mc.eos_token_id)];
  return choice;
}

async function readJson(path: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!required && e instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`${path}: cannot read the file (${(e as Error).message})`);
  }
  if (required) return text; // tokenizer.json: parsed (with its own errors) by the loader
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * The tokenizer of a checkpoint folder (tokenizer.json plus the optional configs).
 * Throws an Error naming the file for a missing tokenizer.json, bad JSON, an unsupported
 * component, a config naming a token the vocabulary lacks, or a tokenizer with more ids than
 * config.json's `vocab_size` (the model could not embed them).
 *
 * @example
 * ```ts
 * const tok = await readTokenizer("models/Qwen3-0.6B");
 * tok.eosId; // 151645 (<|im_end|>); tok.stopIds: [151645, 151643]; tok.bosId: null
 * ```
 */
export async function readTokenizer(dir: string): Promise<BpeTokenizer> {
  const path = (name: string) => (dir.endsWith("/") ? dir + name : `${dir}/${name}`);
  const configs: TokenizerConfigs = {};
  const objects: [keyof TokenizerConfigs, string][] = [
    ["tokenizerConfig", "tokenizer_config.json"],
    ["generationConfig", "generation_config.json"],
    ["config", "config.json"],
  ];
  for (const [key, name] of objects) {
    const v = await readJson(path(name), false);
    if (v === undefined) continue;
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new Error(`${path(name)}: not a JSON object`);
    }
    configs[key] = v as Record<string, unknown>;
  }
  const text = await readJson(path("tokenizer.json"), true) as string;
  const tok = loadTokenizerJson(text, {
    source: path("tokenizer.json"),
    specials: specialsFromConfigs(configs),
  });
  const modelVocab = configs.config?.vocab_size;
  if (typeof modelVocab === "number" && tok.vocabSize > modelVocab) {
    throw new Error(
      `${path("tokenizer.json")}: ${tok.vocabSize} token ids, more than the model's vocab_size ` +
        `${modelVocab} in config.json`,
    );
  }
  return tok;
}
