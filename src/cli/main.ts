/**
 * The `jackpot` command line: `jackpot <command> [options]`.
 *
 * Exit codes: 0 success, 1 a run failed (one sentence on stderr; the stack only with
 * JACKPOT_DEBUG=1), 2 a usage error (unknown command, unknown flag, bad value), 130 interrupted.
 *
 * @module
 */
import { type Command, formatHelp, parseCommandArgs, UsageError } from "./command.ts";
import { commands } from "./commands/mod.ts";
import { exitProcess, JACKPOT_VERSION, programArgs } from "./runtime.ts";
import { GpuUnavailableError } from "../gpu/device.ts";

/** The top-level `--help` text. */
export function topLevelHelp(list: readonly Command[] = commands): string {
  const width = Math.max(...list.map((c) => c.name.length)) + 2;
  return [
    "jackpot — Jackpot (optimal budgeted rejection sampling) workbench for RL of language models",
    "",
    "Usage: jackpot <command> [options]",
    "       jackpot <command> --help",
    "",
    "Commands:",
    ...list.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    "",
    "Options:",
    "  --help     Show this help",
    "  --version  Show the version",
  ].join("\n");
}

/**
 * Runs the CLI on `argv` and returns the exit code (never throws): the testable core of `main`.
 */
export async function runCli(argv: string[], list: readonly Command[] = commands): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(topLevelHelp(list));
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    console.log(`jackpot ${JACKPOT_VERSION}`);
    return 0;
  }
  const command = list.find((c) => c.name === name);
  if (!command) {
    console.error(
      `jackpot: unknown command '${name}'; the commands are ${list.map((c) => c.name).join(", ")}` +
        " (see jackpot --help)",
    );
    return 2;
  }
  try {
    const values = parseCommandArgs(command, rest);
    if (values.help) {
      console.log(formatHelp(command));
      return 0;
    }
    return await command.run(values);
  } catch (e) {
    return reportError(command.name, e);
  }
}

function reportError(name: string, e: unknown): number {
  if (e instanceof UsageError) {
    console.error(`jackpot ${name}: ${e.message}`);
    return 2;
  }
  if (e instanceof GpuUnavailableError) {
    console.error(`jackpot ${name}: ${e.message}`);
    return 1;
  }
  const message = e instanceof Error ? e.message : String(e);
  console.error(`jackpot ${name}: ${message}`);
  if (Deno.env.get("JACKPOT_DEBUG") === "1" && e instanceof Error) console.error(e.stack);
  return 1;
}

if (import.meta.main) {
  exitProcess(await runCli(programArgs()));
}
