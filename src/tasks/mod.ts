/**
 * Tasks with verifiable rewards: tokenizers, example generators, exact-match rewards, and the
 * supervised / prompt batches a trainer consumes. Start with `createTask(name, options)`.
 *
 * @module
 */
export * from "./task.ts";
export * from "./tokenizer.ts";
export * from "./registry.ts";
export { describeOptions, type OptionDecl } from "./options.ts";
export { ARITHMETIC_OPTIONS, arithmeticAnswerText, createArithmeticTask } from "./arithmetic.ts";
export {
  createWordSortTask,
  pseudoWords,
  WORDSORT_OPTIONS,
  WORDSORT_SEPARATOR,
} from "./wordsort.ts";
export { passAtK, type SampledScore, scoreSamples } from "./metrics.ts";
export {
  CheckpointTokenizer,
  loadTextTask,
  TEXT_TASK_OPTIONS,
  TextTask,
  type TextTaskSettings,
} from "./text/text_task.ts";
export {
  ANSWER_FORMATS,
  type AnswerFormat,
  answersMatch,
  extractFinalAnswer,
  normalizeAnswer,
} from "./text/answer.ts";
export { parseProblemsJsonl, ProblemFileError, type TextProblem } from "./text/problems.ts";
export {
  generateArithmeticProblems,
  GENERATED_DEFAULTS,
  type GeneratedProblem,
  type GeneratedProblemOptions,
} from "./text/generated.ts";
