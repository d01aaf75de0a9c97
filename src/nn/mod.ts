/**
 * The transformer runtime: model configuration and presets, the Qwen-style decoder on the
 * autograd, its float64 reference, supervised pretraining, the KV cache, and the rollout engine
 * (batched GPU sampling with processed and raw log-probs and a top-k capture, one readback per
 * batch), plus checkpoints in Hugging Face format.
 *
 * @example
 * ```ts
 * import { modelConfig, RolloutEngine, Transformer } from "./mod.ts";
 * const model = Transformer.init(modelConfig("actor", 18), { seed: 1 });
 * const engine = new RolloutEngine(model, { maxBatch: 64, maxPromptLength: 8, maxNewTokens: 8, captureK: 4 });
 * const r = await engine.generate(prompts, { seed: 1, temperature: 1, stopId: 2 });
 * ```
 *
 * @module
 */
export * from "./config.ts";
export * from "./anchors.ts";
export * from "./transformer.ts";
export * from "./reference.ts";
export * from "./kv_cache.ts";
export * from "./sampling_reference.ts";
export {
  allocSampleBuffers,
  disposeSampleBuffers,
  MAX_STOP_IDS,
  NO_STOP,
  recordSampleStep,
  resetSampleState,
  type SampleBuffers,
  type SampleOutputs,
  type SampleStepArgs,
  unpackSampleOutputs,
} from "./sample_step.ts";
export * from "./rollout.ts";
export * from "./replay.ts";
export * from "./pretrain.ts";
export * from "./load.ts";
export * from "./checkpoint/mod.ts";
