/**
 * The tokenizer side of a Hugging Face checkpoint folder, carried along when jackpot saves a model
 * that was loaded from one: a policy trained by `jackpot rl` from `models/Qwen3-1.7B` is saved with
 * that folder's tokenizer, chat template and generation defaults, so `jackpot generate` and
 * transformers' `from_pretrained` open the saved folder as they opened the original.
 *
 * @module
 */
import { joinPath, readBytes, writeBytesAtomic } from "./fs.ts";

/** The files copied, when present: what `save_pretrained` writes for a tokenizer and generation. */
export const TOKENIZER_FILES: readonly string[] = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "chat_template.jinja",
  "generation_config.json",
];

/**
 * Copies the {@link TOKENIZER_FILES} that `from` has into `to` (each written atomically) and
 * returns their names; none when `from` has no tokenizer.json (a folder jackpot wrote itself).
 *
 * @example
 * ```ts
 * await saveCheckpoint("runs/rl/policy", ckpt);
 * await copyTokenizerFiles("models/Qwen3-1.7B", "runs/rl/policy"); // ["tokenizer.json", ...]
 * ```
 */
export async function copyTokenizerFiles(from: string, to: string): Promise<string[]> {
  const exists = (name: string) =>
    Deno.stat(joinPath(from, name)).then((s) => s.isFile, () => false);
  if (!(await exists("tokenizer.json"))) return [];
  const copied: string[] = [];
  for (const name of TOKENIZER_FILES) {
    if (!(await exists(name))) continue;
    await writeBytesAtomic(joinPath(to, name), await readBytes(joinPath(from, name)));
    copied.push(name);
  }
  return copied;
}
