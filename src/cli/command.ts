/**
 * The shape of a CLI command and the validation helpers every command uses.
 *
 * Flags are parsed with `node:util`'s `parseArgs`: `@std/cli` lives on JSR, which this project's
 * build machines cannot reach, and `parseArgs` is built into Deno's Node layer (no dependency),
 * strict about unknown flags, and enough for `--name value` / `--flag` options.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** A bad command line or option value: reported as one sentence with exit code 2, no stack trace. */
export class UsageError extends Error {
  /** @param message one sentence naming the problem. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One option of a command, as shown in `--help` and parsed by `parseCommandArgs`. */
export interface OptionSpec {
  /** `string` takes a value, `boolean` is a switch. */
  type: "string" | "boolean";
  /** One line for `--help`. */
  description: string;
  /** The default shown in `--help` (and used when the flag is absent). */
  default?: string | boolean;
  /** Placeholder for the value in `--help`, e.g. `N` or `DIR`. */
  valueName?: string;
}

/** A `jackpot <name>` command. */
export interface Command {
  /** The word after `jackpot`. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Paragraph shown by `jackpot <name> --help` after the usage line. */
  description: string;
  /** The command's options, keyed by long flag name (without `--`). */
  options: Record<string, OptionSpec>;
  /** Runs the command on parsed values; returns the exit code. Throw `UsageError` for bad values. */
  run(values: ParsedValues): Promise<number>;
}

/** Parsed option values: strings for valued options, booleans for switches. */
export type ParsedValues = Record<string, string | boolean | undefined>;

/** Parses `argv` against a command's options; unknown flags and stray positionals are UsageErrors. */
export function parseCommandArgs(command: Command, argv: string[]): ParsedValues {
  const options: Record<string, { type: "string" | "boolean"; default?: string | boolean }> = {
    help: { type: "boolean" },
  };
  for (const [name, spec] of Object.entries(command.options)) {
    options[name] = spec.default === undefined
      ? { type: spec.type }
      : { type: spec.type, default: spec.default };
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true });
    if (positionals.length > 0) {
      throw new UsageError(
        `jackpot ${command.name} takes no positional arguments, got '${positionals[0]}'` +
          ` (see jackpot ${command.name} --help)`,
      );
    }
    return values as ParsedValues;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    // parseArgs' messages name the flag; keep them but strip Node's error-code boilerplate.
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    if (unknown) {
      throw new UsageError(`unknown option '${unknown[1]}' (see jackpot ${command.name} --help)`);
    }
    const ambiguous = /Option '(--[\w-]+)[^']*' argument is ambiguous/.exec(message);
    if (ambiguous) {
      // `--rate -1`: parseArgs cannot tell a negative number from a flag.
      throw new UsageError(
        `${ambiguous[1]} got a value starting with '-'; write it as ${ambiguous[1]}=VALUE`,
      );
    }
    throw new UsageError(`${message} (see jackpot ${command.name} --help)`);
  }
}

/** The `--help` text of a command. */
export function formatHelp(command: Command): string {
  const lines = [
    `Usage: jackpot ${command.name} [options]`,
    "",
    command.description,
    "",
    "Options:",
  ];
  const entries = Object.entries(command.options);
  const heads = entries.map(([name, spec]) =>
    spec.type === "string" ? `--${name} ${spec.valueName ?? "VALUE"}` : `--${name}`
  );
  const width = Math.max(10, ...heads.map((h) => h.length)) + 2;
  entries.forEach(([, spec], i) => {
    const dflt = spec.default === undefined || spec.default === false
      ? ""
      : ` (default: ${spec.default})`;
    lines.push(`  ${heads[i].padEnd(width)}${spec.description}${dflt}`);
  });
  lines.push(`  ${"--help".padEnd(width)}Show this help`);
  return lines.join("\n");
}

function requireString(values: ParsedValues, name: string): string {
  const raw = values[name];
  if (typeof raw !== "string") throw new UsageError(`--${name} needs a value`);
  return raw;
}

/** A finite number option within [min, max] (either bound optional, `exclusiveMin` for > min). */
export function numberOption(
  values: ParsedValues,
  name: string,
  bounds: { min?: number; max?: number; exclusiveMin?: boolean } = {},
): number {
  const raw = requireString(values, name);
  const x = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(x)) {
    throw new UsageError(`--${name} must be a number, got '${raw}'`);
  }
  checkBounds(name, x, bounds);
  return x;
}

/** An integer option within [min, max]. */
export function integerOption(
  values: ParsedValues,
  name: string,
  bounds: { min?: number; max?: number } = {},
): number {
  const raw = requireString(values, name);
  if (!/^[+-]?\d+$/.test(raw.trim())) {
    throw new UsageError(`--${name} must be an integer, got '${raw}'`);
  }
  const x = Number(raw);
  checkBounds(name, x, bounds);
  return x;
}

/** A comma-separated list of numbers, each within the bounds; at least one entry. */
export function numberListOption(
  values: ParsedValues,
  name: string,
  bounds: { min?: number; max?: number; exclusiveMin?: boolean } = {},
): number[] {
  const raw = requireString(values, name);
  const parts = raw.split(",").map((s) => s.trim());
  if (parts.length === 0 || parts.some((s) => s === "")) {
    throw new UsageError(`--${name} must be a comma-separated list of numbers, got '${raw}'`);
  }
  return parts.map((s) => {
    const x = Number(s);
    if (!Number.isFinite(x)) {
      throw new UsageError(`--${name} must be a list of numbers, '${s}' is not a number`);
    }
    checkBounds(name, x, bounds);
    return x;
  });
}

/** An option whose value must be one of `choices`. */
export function choiceOption<T extends string>(
  values: ParsedValues,
  name: string,
  choices: readonly T[],
): T {
  const raw = requireString(values, name);
  if (!(choices as readonly string[]).includes(raw)) {
    throw new UsageError(`--${name} must be one of ${choices.join(", ")}; got '${raw}'`);
  }
  return raw as T;
}

/** A comma-separated subset of `choices` (at least one). */
export function choiceListOption<T extends string>(
  values: ParsedValues,
  name: string,
  choices: readonly T[],
): T[] {
  const raw = requireString(values, name);
  const parts = raw.split(",").map((s) => s.trim());
  for (const p of parts) {
    if (!(choices as readonly string[]).includes(p)) {
      throw new UsageError(`--${name} entries must be among ${choices.join(", ")}; got '${p}'`);
    }
  }
  return parts as T[];
}

function checkBounds(
  name: string,
  x: number,
  { min, max, exclusiveMin }: { min?: number; max?: number; exclusiveMin?: boolean },
): void {
  if (min !== undefined && (exclusiveMin ? !(x > min) : !(x >= min))) {
    throw new UsageError(`--${name} must be ${exclusiveMin ? ">" : ">="} ${min}, got ${x}`);
  }
  if (max !== undefined && !(x <= max)) {
    throw new UsageError(`--${name} must be <= ${max}, got ${x}`);
  }
}
