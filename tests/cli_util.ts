/**
 * Helpers of the CLI tests: run a command in-process with console output captured.
 *
 * @module
 */

/** Runs `fn` with `console.log` and `console.error` captured; restores them afterwards. */
export async function quietly<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; out: string; err: string }> {
  const log = console.log, error = console.error;
  let out = "", err = "";
  console.log = (...a: unknown[]) => void (out += a.join(" ") + "\n");
  console.error = (...a: unknown[]) => void (err += a.join(" ") + "\n");
  try {
    return { value: await fn(), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}
