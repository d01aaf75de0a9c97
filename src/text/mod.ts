/**
 * Text tokenization for real checkpoints: Hugging Face tokenizer.json byte-level BPE (Qwen2,
 * Qwen2.5, Qwen3, GPT-2 style), in plain TypeScript.
 *
 * @example
 * ```ts
 * import { readTokenizer } from "./src/text/mod.ts";
 * const tok = await readTokenizer("models/Qwen2.5-0.5B-Instruct");
 * const ids = tok.encode("<|im_start|>user\nHello<|im_end|>\n");
 * tok.decode(ids); // the same text
 * ```
 *
 * @module
 */
export { BpeTokenizer, StreamDecoder } from "./tokenizer.ts";
export type { EncodeOptions, SpecialIds } from "./tokenizer.ts";
export { loadTokenizerJson } from "./tokenizer_json.ts";
export type { LoadOptions, SpecialTokenChoice, TokenRef } from "./tokenizer_json.ts";
export { readTokenizer, specialsFromConfigs } from "./folder.ts";
export type { TokenizerConfigs } from "./folder.ts";
export {
  type ChatMessage,
  chatMLPrompt,
  ChatTemplate,
  ChatTemplateError,
  type RenderOptions,
  type TemplateSpecials,
} from "./chat_template.ts";
export { onigurumaRegExp, RegexTranslationError, translateOnigurumaRegex } from "./regex.ts";
