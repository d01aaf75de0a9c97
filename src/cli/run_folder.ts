/**
 * What every command that writes a run folder shares: where the folder goes, and how a run is
 * interrupted. Ctrl-C aborts the run's signal, so work stops at its next safe point (between
 * trials, steps or files, never between a temporary file and its rename); the folder is then
 * incomplete, which its missing `config.json` (always written last) marks.
 *
 * @module
 */
import { UsageError } from "./command.ts";
import type { ParsedValues } from "./command.ts";
import { onInterrupt } from "./runtime.ts";
import { RunDirNotAFolderError, RunDirNotEmptyError, timestamp } from "../report/mod.ts";

/**
 * `--out` when given, else `runs/<command>-<UTC time>`. An empty or blank `--out` is a usage error
 * (a mistyped `--out "$DIR"` with DIR unset must not quietly write somewhere else).
 */
export function runFolder(values: ParsedValues, command: string): string {
  if (typeof values.out !== "string") return `runs/${command}-${timestamp()}`;
  if (values.out.trim() === "") {
    throw new UsageError(`--out must name a folder, got '${values.out}'`);
  }
  return values.out;
}

/** The exit code of an interrupted run. */
export const INTERRUPTED = 130;

/**
 * Runs `work` with Ctrl-C wired to its abort signal. Returns `{ value }`, or `{ exitCode: 130 }`
 * after saying the folder is incomplete when the run was interrupted. A non-empty folder without
 * `--force`, or an `--out` that is an existing file, becomes a usage error. A failed run removes
 * the folder when it created it and nothing was written into it.
 *
 * @example
 * ```ts
 * const run = await runInterruptibly("simulate", out, (signal) => simulate(config, out, { signal }));
 * if ("exitCode" in run) return run.exitCode;
 * ```
 */
export async function runInterruptibly<T>(
  command: string,
  out: string,
  work: (signal: AbortSignal) => Promise<T>,
  { marker = "config.json" }: {
    /** The file whose absence marks an incomplete folder (named in the interruption message). */
    marker?: string;
  } = {},
): Promise<{ value: T } | { exitCode: number }> {
  const controller = new AbortController();
  const existed = await Deno.stat(out).then(() => true, () => false);
  const stopListening = onInterrupt(() => controller.abort());
  try {
    return { value: await work(controller.signal) };
  } catch (e) {
    // A run that failed before writing anything (a bad combination of options found by the run
    // itself) should not leave an empty folder behind; a non-empty or pre-existing one stays.
    if (!existed && !controller.signal.aborted) await Deno.remove(out).catch(() => {});
    if (controller.signal.aborted) {
      console.error(
        `jackpot ${command}: interrupted; ${out}/ is incomplete (it has no ${marker})`,
      );
      return { exitCode: INTERRUPTED };
    }
    if (e instanceof RunDirNotEmptyError || e instanceof RunDirNotAFolderError) {
      throw new UsageError(e.message);
    }
    throw e;
  } finally {
    stopListening();
  }
}
