/**
 * Command-line flags of the bench scripts, with the CLI's manners: `--help` prints the usage, and
 * an unknown flag or a bad value is one line on stderr and exit code 2, never a stack trace or a
 * NaN carried into a benchmark. Parsing is `node:util`'s `parseArgs` (as in src/cli/command.ts;
 * `@std/cli` is on JSR, which the build machines cannot reach); the number checks are the CLI's.
 *
 * @example
 * ```ts
 * const values = benchArgs("bench/obrs/main.ts", "the OBRS pipeline", {
 *   rows: { type: "string", help: "rows of the logits" },
 * });
 * const rows = benchInt("bench/obrs/main.ts", values, "rows", 4096, { min: 1 });
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  integerOption,
  numberListOption,
  numberOption,
  type ParsedValues,
  UsageError,
} from "../src/cli/command.ts";

/** One flag of a bench script. */
export interface BenchOption {
  /** `string` takes a value, `boolean` is a switch. */
  type: "string" | "boolean";
  /** Used when the flag is absent. */
  default?: string | boolean;
  /** One line for `--help`. */
  help: string;
}

type Values<O extends Record<string, BenchOption>> = {
  [K in keyof O]: O[K]["type"] extends "boolean" ? boolean
    : O[K]["default"] extends string ? string
    : string | undefined;
};

/** The usage text of a bench script: its summary and one line per flag. */
export function benchUsage(
  script: string,
  summary: string,
  options: Record<string, BenchOption>,
): string {
  const heads = Object.entries(options).map(([name, o]) =>
    o.type === "string" ? `--${name} VALUE` : `--${name}`
  );
  const width = Math.max(10, ...heads.map((h) => h.length)) + 2;
  const lines = Object.values(options).map((o, i) => {
    const dflt = o.default === undefined || o.default === false ? "" : ` (default: ${o.default})`;
    return `  ${heads[i].padEnd(width)}${o.help}${dflt}`;
  });
  const invocation = script.startsWith("deno ") ? script : `deno run -A ${script}`;
  return [
    `Usage: ${invocation} [options]`,
    "",
    summary,
    "",
    "Options:",
    ...lines,
    `  ${"--help".padEnd(width)}show this help`,
  ].join("\n");
}

/** Prints `script: message` to stderr and exits with code 2. */
export function benchUsageError(script: string, message: string): never {
  console.error(`${script}: ${message} (see --help)`);
  Deno.exit(2);
}

/**
 * Parses `args` (default: the process's) against `options`; `--help` prints the usage and exits
 * 0, an unknown flag or a positional argument exits 2 with one line naming it.
 */
export function benchArgs<const O extends Record<string, BenchOption>>(
  script: string,
  summary: string,
  options: O,
  args: string[] = Deno.args,
): Values<O> {
  const config: Record<string, { type: "string" | "boolean"; default?: string | boolean }> = {
    help: { type: "boolean", default: false },
  };
  for (const [name, o] of Object.entries(options)) {
    config[name] = o.default === undefined
      ? { type: o.type }
      : { type: o.type, default: o.default };
  }
  let values: Record<string, unknown>;
  try {
    const parsed = parseArgs({ args, options: config, allowPositionals: true });
    if (parsed.positionals.length > 0) {
      benchUsageError(script, `takes no positional arguments, got '${parsed.positionals[0]}'`);
    }
    values = parsed.values;
  } catch (e) {
    // parseArgs' messages name the flag; keep the first sentence, without Node's advice text.
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    benchUsageError(script, unknown ? `unknown option '${unknown[1]}'` : message);
  }
  if (values.help) {
    console.log(benchUsage(script, summary, options));
    Deno.exit(0);
  }
  for (const [name, o] of Object.entries(options)) {
    if (o.type === "boolean") values[name] = values[name] === true;
  }
  return values as Values<O>;
}

// Runs a CLI validator, turning its UsageError into the bench's one-line exit.
function checked<T>(script: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof UsageError) benchUsageError(script, e.message);
    throw e;
  }
}

/** Flag `name` as an integer within the bounds, or `fallback` when it is absent. */
export function benchInt<F extends number | undefined>(
  script: string,
  values: Record<string, unknown>,
  name: string,
  fallback: F,
  bounds: { min?: number; max?: number } = {},
): number | F {
  if (values[name] === undefined) return fallback;
  return checked(script, () => integerOption(values as ParsedValues, name, bounds));
}

/** Flag `name` as a finite number within the bounds, or `fallback` when it is absent. */
export function benchNumber(
  script: string,
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  bounds: { min?: number; max?: number; exclusiveMin?: boolean } = {},
): number {
  if (values[name] === undefined) return fallback;
  return checked(script, () => numberOption(values as ParsedValues, name, bounds));
}

/** Flag `name` as a comma-separated list of integers within the bounds, or `fallback`. */
export function benchIntList(
  script: string,
  values: Record<string, unknown>,
  name: string,
  fallback: number[],
  bounds: { min?: number; max?: number } = {},
): number[] {
  if (values[name] === undefined) return fallback;
  const list = checked(script, () => numberListOption(values as ParsedValues, name, bounds));
  const bad = list.find((x) => !Number.isInteger(x));
  if (bad !== undefined) benchUsageError(script, `--${name} entries must be integers, got ${bad}`);
  return list;
}

/** Flag `name` as one of `choices`, or `fallback` when it is absent. */
export function benchChoice<T extends string>(
  script: string,
  values: Record<string, unknown>,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!(choices as readonly string[]).includes(String(raw))) {
    benchUsageError(script, `--${name} must be one of ${choices.join(", ")}; got '${raw}'`);
  }
  return raw as T;
}
