/**
 * Problem files of the `text` task: JSONL, one problem per line.
 *
 * Each non-blank line is one JSON object. Its prompt is the first present field of `prompt`,
 * `question`, `problem`; its answer the first present of `answer`, `final_answer`, `solution`,
 * `ground_truth`. Other fields are ignored, so GSM8K (`question`, `answer`), MATH (`problem`,
 * `solution`) and most RL data sets load as they are. The prompt is kept verbatim (the chat template
 * wraps it); it must be a string with something besides whitespace.
 *
 * The reference answer is the final answer of the answer field:
 * - a number (`42`, `-1.5`) is its decimal text;
 * - a string with a `\boxed{…}` (MATH solutions) gives the last box's content (see `answer.ts`);
 * - else a string with `####` (GSM8K: reasoning, then `#### 42`) gives the text after the last one;
 * - else a one-line string is the answer itself, trimmed; a string of several lines without a box
 *   or `####` is refused (it is a worked solution with no marked final answer), and so is a
 *   `solution` field without one.
 * The answer must not normalize to nothing (`normalizeAnswer` in `answer.ts`).
 *
 * Accepted as well: a UTF-8 byte-order mark, Windows line endings, blank lines. A line over 1 MB
 * (UTF-8) is refused: it is much more likely a wrong file than a problem. Every error is a
 * {@link ProblemFileError} whose message starts with `FILE:LINE: ` and says what is wrong.
 *
 * @example
 * ```ts
 * const text = '{"question": "2+3?", "answer": "2+3=5\\n#### 5"}\n' +
 *   '{"problem": "1/2+1/4?", "answer": 0.75}';
 * parseProblemsJsonl(text, "train.jsonl");
 * // [{ prompt: "2+3?", answer: "5" }, { prompt: "1/2+1/4?", answer: "0.75" }]
 * ```
 *
 * @module
 */
import { extractFinalAnswer, hasBoxedAnswer, normalizeAnswer } from "./answer.ts";

/** One problem: the prompt text shown to the model and its reference final answer. */
export interface TextProblem {
  /** What the user asks, before any chat template. */
  prompt: string;
  /** The reference final answer (compared with `answersMatch`). */
  answer: string;
}

/** A problem file that cannot be read as problems; `source` and `line` say where. */
export class ProblemFileError extends Error {
  /** The file (as named by the caller). */
  readonly source: string;
  /** 1-based line number of the problem. */
  readonly line: number;

  /** An error at `source:line` with the reason `reason`. */
  constructor(source: string, line: number, reason: string) {
    super(`${source}:${line}: ${reason}`);
    this.name = "ProblemFileError";
    this.source = source;
    this.line = line;
  }
}

/** Field names of the prompt, in the order they are looked up. */
export const PROMPT_FIELDS: readonly string[] = ["prompt", "question", "problem"];
/** Field names of the answer, in the order they are looked up. */
export const ANSWER_FIELDS: readonly string[] = [
  "answer",
  "final_answer",
  "solution",
  "ground_truth",
];

/** Longest line accepted, in UTF-8 bytes. */
export const MAX_LINE_BYTES = 1 << 20;

/**
 * Problems of a JSONL text (one JSON object per line; blank lines skipped). `source` names the file
 * in errors.
 *
 * @example
 * ```ts
 * const problems = parseProblemsJsonl(await Deno.readTextFile(path), path);
 * ```
 */
export function parseProblemsJsonl(text: string, source: string): TextProblem[] {
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  const problems: TextProblem[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    if (line.trim() === "") continue;
    problems.push(parseLine(line, (reason) => new ProblemFileError(source, i + 1, reason)));
  }
  if (problems.length === 0) {
    throw new ProblemFileError(source, 1, "no problems: the file is empty or only blank lines");
  }
  return problems;
}

function parseLine(line: string, fail: (reason: string) => ProblemFileError): TextProblem {
  // Only a line that could be over the limit is encoded: a UTF-16 code unit is at most 3 bytes.
  if (line.length * 3 > MAX_LINE_BYTES) {
    const bytes = new TextEncoder().encode(line).length;
    if (bytes > MAX_LINE_BYTES) {
      throw fail(`line of ${bytes} bytes is over the 1 MB limit of one problem (is this JSONL?)`);
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    throw fail(`invalid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
    throw fail(`expected a JSON object with a prompt and an answer, got ${kind}`);
  }
  const record = value as Record<string, unknown>;
  const promptField = PROMPT_FIELDS.find((f) => record[f] !== undefined && record[f] !== null);
  if (promptField === undefined) {
    throw fail(`no prompt: expected one of the fields ${PROMPT_FIELDS.join(", ")}`);
  }
  const prompt = record[promptField];
  if (typeof prompt !== "string") {
    throw fail(`the prompt field '${promptField}' must be a string, got ${typeof prompt}`);
  }
  if (prompt.trim() === "") throw fail(`the prompt field '${promptField}' is empty`);
  const answerField = ANSWER_FIELDS.find((f) => record[f] !== undefined && record[f] !== null);
  if (answerField === undefined) {
    throw fail(`no answer: expected one of the fields ${ANSWER_FIELDS.join(", ")}`);
  }
  return { prompt, answer: finalAnswer(answerField, record[answerField], fail) };
}

/** The reference final answer of an answer field's value (rules in the module documentation). */
function finalAnswer(
  field: string,
  value: unknown,
  fail: (reason: string) => ProblemFileError,
): string {
  let answer: string | null;
  if (typeof value === "number") {
    answer = String(value);
  } else if (typeof value !== "string") {
    throw fail(`the answer field '${field}' must be a string or a number, got ${typeof value}`);
  } else if (hasBoxedAnswer(value)) {
    answer = extractFinalAnswer(value, "boxed");
    if (answer === null) {
      throw fail(`the answer field '${field}' has a \\boxed{} that is empty or never closed`);
    }
  } else if (value.includes("####")) {
    answer = extractFinalAnswer(value, "hashes");
    if (answer === null) throw fail(`the answer field '${field}' has nothing after its last ####`);
  } else if (field === "solution" || value.trim().includes("\n")) {
    throw fail(
      `no final answer in the ${field === "solution" ? "solution" : "multi-line answer"} ` +
        `(expected a \\boxed{…} or a '#### answer' line)`,
    );
  } else {
    answer = value.trim();
  }
  if (normalizeAnswer(answer) === "") throw fail(`the answer field '${field}' is empty`);
  return answer;
}
