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

/**
 * The argv that starts this same program again (a cluster job runs it): the binary itself when it
 * was built with `deno compile`, else `deno run` with the CLI's permissions, the config file found
 * above the CLI's entry module (it maps the npm imports), and that entry module.
 */
export function selfCommand(): string[] {
  const main = Deno.mainModule;
  // deno compile serves the embedded modules from a virtual folder named deno-compile-<name>.
  if (!main.startsWith("file:") || main.includes("/deno-compile-")) return [Deno.execPath()];
  // From source the CLI is main.ts beside this module (whatever the main module is: a notebook, a
  // test); in a bundle this module has no file of its own and the bundle is the CLI.
  const fromSource = import.meta.url.endsWith("/src/cli/runtime.ts");
  const entryUrl = new URL(fromSource ? new URL("./main.ts", import.meta.url) : main);
  const path = (url: URL) => decodeURIComponent(url.pathname);
  const entry = path(entryUrl);
  const run = [
    Deno.execPath(),
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
  ];
  for (let dir = new URL(".", entryUrl); dir.pathname !== "/"; dir = new URL("..", dir)) {
    const config = path(new URL("deno.json", dir));
    if (isFile(config)) return [...run, "--config", config, entry];
  }
  return [...run, entry];
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Ends the process with `code`. */
export function exitProcess(code: number): never {
  Deno.exit(code);
}

/**
 * Calls `onInterrupt` on Ctrl-C (SIGINT) or SIGTERM (what a cluster scheduler sends at a job's time
 * limit, and `kill` by default) until the returned function is called. Long commands use it to stop
 * at a safe point instead of dying between a temporary file and its rename.
 */
export function onInterrupt(onInterrupt: () => void): () => void {
  const handler = () => onInterrupt();
  const added: Deno.Signal[] = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, handler);
      added.push(signal);
    } catch {
      // signals unsupported here (e.g. SIGTERM on Windows): nothing to undo
    }
  }
  return () => added.forEach((signal) => Deno.removeSignalListener(signal, handler));
}

/** True when stderr is an interactive terminal (progress bars redraw in place only then). */
export function stderrIsTerminal(): boolean {
  return Deno.stderr.isTerminal();
}
