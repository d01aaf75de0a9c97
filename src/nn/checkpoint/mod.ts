/**
 * Checkpoints: safetensors read/write, Hugging Face Qwen config and tensor names, atomic folders.
 *
 * @module
 */
export * from "./checkpoint.ts";
export * from "./config.ts";
export * from "./dtype.ts";
export { CheckpointError } from "./fs.ts";
export * from "./names.ts";
export * from "./safetensors.ts";
export * from "./shard_plan.ts";
export { copyTokenizerFiles, TOKENIZER_FILES } from "./tokenizer_files.ts";
export {
  CheckpointReader,
  parseShardIndex,
  readCheckpointWeights,
  type WeightLocation,
  WEIGHTS_INDEX_FILE,
} from "./shards.ts";
export type { CheckpointWeights } from "./shards.ts";
