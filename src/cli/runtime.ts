/**
 * The runtime seam: the few runtime-specific facts and calls the CLI needs (versions, exit,
 * arguments, signals), kept here so a port to another runtime touches one file.
 *
 * @module
 */
import pkg from "../../package.json" with { type: "json" };

/** jackpot's own version (from package.json). */
export const JACKPOT_VERSION: string = pkg.version;

/** Versions of jackpot and of the runtime it runs on. */
export function runtimeVersions(): Record<string, string> {
  const d = (globalThis as { Deno?: { version: Record<string, string> } }).Deno;
  return d
    ? {
      jackpot: JACKPOT_VERSION,
      deno: d.version.deno,
      v8: d.version.v8,
      typescript: d.version.typescript,
    }
    : { jackpot: JACKPOT_VERSION };
}

/** Command-line arguments after the program name. */
export function programArgs(): string[] {
  return [...Deno.args];
}

/** Ends the process with `code`. */
export function exitProcess(code: number): never {
  Deno.exit(code);
}

/**
 * Calls `onInterrupt` on Ctrl-C (SIGINT) until the returned function is called. Long commands use
 * it to stop at a safe point instead of dying between a temporary file and its rename.
 */
export function onInterrupt(onInterrupt: () => void): () => void {
  const handler = () => onInterrupt();
  try {
    Deno.addSignalListener("SIGINT", handler);
  } catch {
    return () => {}; // signals unsupported here (e.g. Windows service): nothing to undo
  }
  return () => Deno.removeSignalListener("SIGINT", handler);
}

/** True when stderr is an interactive terminal (progress bars redraw in place only then). */
export function stderrIsTerminal(): boolean {
  return Deno.stderr.isTerminal();
}
