/**
 * The task registry: tasks by name, and the `name:key=value,…` spec string the CLI uses.
 *
 * @module
 */
import { ARITHMETIC_OPTIONS, createArithmeticTask } from "./arithmetic.ts";
import { describeOptions, type OptionDecl } from "./options.ts";
import type { Task, TaskOptions } from "./task.ts";
import { loadTextTask, TEXT_TASK_OPTIONS } from "./text/text_task.ts";
import { createWordSortTask, WORDSORT_OPTIONS } from "./wordsort.ts";

/** A registered task: how to build it and what it accepts. */
export interface TaskEntry {
  /** One line for listings. */
  summary: string;
  /** The options it accepts. */
  options: Record<string, OptionDecl>;
  /** Builds the task; throws on unknown or bad options. */
  create(options: TaskOptions): Task;
  /** Builds a task that reads files (then `create` throws and `loadTask` must be used). */
  load?(options: TaskOptions): Promise<Task>;
}

const REGISTRY: Record<string, TaskEntry> = {
  arithmetic: {
    summary: "character-level integer arithmetic, '12+345=' → '357' (vocabulary 18)",
    options: ARITHMETIC_OPTIONS,
    create: createArithmeticTask,
  },
  text: {
    summary: "problems with a final answer in a checkpoint's own tokenizer and chat template " +
      "(jackpot rl on Hugging Face folders)",
    options: TEXT_TASK_OPTIONS,
    create: () => {
      throw new Error("task 'text' reads files: build it with loadTask or loadTaskFromSpec");
    },
    load: loadTextTask,
  },
  wordsort: {
    summary: "sort a list of pseudo-words alphabetically (vocabulary 1,028 by default)",
    options: WORDSORT_OPTIONS,
    create: createWordSortTask,
  },
};

/** The registered task names, sorted. */
export function taskNames(): string[] {
  return Object.keys(REGISTRY).sort();
}

/** The registry entry of `name`; throws listing the known names when there is none. */
export function taskEntry(name: string): TaskEntry {
  if (!Object.hasOwn(REGISTRY, name)) {
    throw new Error(`unknown task '${name}'; known tasks: ${taskNames().join(", ")}`);
  }
  return REGISTRY[name];
}

/**
 * The task `name` with `options` (defaults for the rest).
 *
 * @example
 * ```ts
 * const task = createTask("wordsort", { maxItems: 6 });
 * ```
 */
export function createTask(name: string, options: TaskOptions = {}): Task {
  return taskEntry(name).create(options);
}

/**
 * Parses `name` or `name:key=value,key=value` (the CLI's `--task` value) into a name and string
 * options; `createTask` converts and checks the values. A value holds a comma written `\\,` (a
 * system prompt, a path); {@linkcode escapeTaskOptionValue} writes one. Other backslashes stay as
 * they are, so Windows paths need no escaping.
 *
 * @example
 * ```ts
 * parseTaskSpec("arithmetic:maxDigits=4,ops=+*"); // { name: "arithmetic", options: { maxDigits: "4", ops: "+*" } }
 * parseTaskSpec("text:system=Be brief\\, and exact"); // options.system === "Be brief, and exact"
 * ```
 */
export function parseTaskSpec(spec: string): { name: string; options: TaskOptions } {
  const colon = spec.indexOf(":");
  const name = (colon < 0 ? spec : spec.slice(0, colon)).trim();
  if (name === "") throw new Error(`task spec '${spec}' has no task name`);
  const options: TaskOptions = {};
  if (colon >= 0) {
    for (const part of splitUnescaped(spec.slice(colon + 1))) {
      if (part.trim() === "") continue;
      const eq = part.indexOf("=");
      if (eq <= 0) {
        throw new Error(`task spec '${spec}': '${part}' is not key=value`);
      }
      const key = part.slice(0, eq).trim();
      if (Object.hasOwn(options, key)) throw new Error(`task spec '${spec}': '${key}' given twice`);
      options[key] = part.slice(eq + 1).replaceAll("\\,", ",");
    }
  }
  return { name, options };
}

/** `text` split at the commas that no backslash escapes (the escapes are kept). */
function splitUnescaped(text: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "," && text[i - 1] !== "\\") {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/**
 * `value` written for a task spec: each comma escaped as `\\,`, so that {@linkcode parseTaskSpec}
 * gives `value` back.
 *
 * @example
 * ```ts
 * `text:tokenizer=${escapeTaskOptionValue("runs/a,b/policy")}`; // "text:tokenizer=runs/a\\,b/policy"
 * ```
 */
export function escapeTaskOptionValue(value: string): string {
  return value.replaceAll(",", "\\,");
}

/** The task described by a spec string: `createTask(parseTaskSpec(spec))`. */
export function createTaskFromSpec(spec: string): Task {
  const { name, options } = parseTaskSpec(spec);
  return createTask(name, options);
}

/**
 * The task `name` with `options`, reading its files first when it has any (the `text` task);
 * every other task is {@link createTask}'s.
 *
 * @example
 * ```ts
 * const task = await loadTask("text", { tokenizer: "models/Qwen3-0.6B" });
 * ```
 */
export async function loadTask(name: string, options: TaskOptions = {}): Promise<Task> {
  const entry = taskEntry(name);
  return entry.load ? await entry.load(options) : entry.create(options);
}

/** The task of a spec string, its files read: `loadTask(parseTaskSpec(spec))`. */
export async function loadTaskFromSpec(spec: string): Promise<Task> {
  const { name, options } = parseTaskSpec(spec);
  return await loadTask(name, options);
}

/** Help text listing every task with its options. */
export function describeTasks(): string {
  const lines: string[] = [];
  for (const name of taskNames()) {
    const e = REGISTRY[name];
    lines.push(`${name}: ${e.summary}`);
    for (const o of describeOptions(e.options)) lines.push(`  ${o}`);
  }
  return lines.join("\n");
}
