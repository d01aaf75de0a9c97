/**
 * Test fixture: a folder laid out as a Hugging Face Qwen download (config.json, model.safetensors,
 * tokenizer.json, tokenizer_config.json, optional generation_config.json and chat_template.jinja)
 * holding a random tiny model and a synthetic byte-level BPE tokenizer with Qwen's special tokens.
 */
import { saveCheckpoint } from "../src/nn/checkpoint/mod.ts";
import { parseModelSpec } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { noGrad } from "../src/autograd/mod.ts";
import { initTensors } from "../src/tensor/mod.ts";
import { loadTokenizerJson } from "../src/text/mod.ts";
import { syntheticTokenizer } from "./text_util.ts";

/** The synthetic tokenizer.json object every fixture folder shares. */
export const HUB_TOKENIZER = syntheticTokenizer({ merges: 120 });
/** That tokenizer, loaded. */
export const hubTok = loadTokenizerJson(HUB_TOKENIZER);
/** Ids of `<|endoftext|>` and `<|im_end|>` in it. */
export const [ENDOFTEXT, IM_END] = ["<|endoftext|>", "<|im_end|>"].map((t) => hubTok.tokenId(t)!);

/** Options of {@link qwenLikeFolder}. */
export interface HubFolderOptions {
  /** generation_config.json contents (absent: no file). */
  generation?: Record<string, unknown>;
  /** chat_template.jinja contents (absent: no file, so ChatML is the fallback). */
  template?: string;
  /** Model preset spec (default "tiny"; "tiny:layers=1" overrides). */
  model?: string;
  /** Ids the model has past the tokenizer's (Qwen pads its embedding; default 7). */
  vocabPad?: number;
  /** Weight seed (default 4). */
  seed?: number;
}

/** A new temporary folder with a random model and {@link HUB_TOKENIZER}, as the Hub lays it out. */
export async function qwenLikeFolder(options: HubFolderOptions = {}): Promise<string> {
  await initTensors();
  const dir = await Deno.makeTempDir();
  const vocab = hubTok.vocabSize + (options.vocabPad ?? 7);
  const model = Transformer.init(parseModelSpec(options.model ?? "tiny", vocab), {
    seed: options.seed ?? 4,
    std: 0.3,
  });
  await saveCheckpoint(dir, await model.toCheckpoint({}));
  noGrad(() => model.dispose());
  await writeHubTokenizer(dir, options);
  return dir;
}

/**
 * Writes the tokenizer side of a Hub folder into `dir`: {@link HUB_TOKENIZER}, a
 * tokenizer_config.json naming `<|im_end|>` eos and `<|endoftext|>` pad, and the optional
 * generation_config.json and chat_template.jinja.
 */
export async function writeHubTokenizer(
  dir: string,
  options: Pick<HubFolderOptions, "generation" | "template"> = {},
): Promise<void> {
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(HUB_TOKENIZER));
  await Deno.writeTextFile(
    `${dir}/tokenizer_config.json`,
    JSON.stringify({ eos_token: "<|im_end|>", pad_token: "<|endoftext|>", bos_token: null }),
  );
  if (options.generation) {
    await Deno.writeTextFile(
      `${dir}/generation_config.json`,
      JSON.stringify(options.generation),
    );
  }
  if (options.template !== undefined) {
    await Deno.writeTextFile(`${dir}/chat_template.jinja`, options.template);
  }
}
