// Runs a repository script in its own Deno process, for tests of command lines (exit codes, the
// one-line errors on stderr, --help on stdout).

/** What a script printed and how it exited. */
export interface ScriptResult {
  /** Exit code. */
  code: number;
  /** Standard output, decoded. */
  stdout: string;
  /** Standard error, decoded. */
  stderr: string;
}

/** Runs `deno run --allow-all <script> <args>` without colours and collects its output. */
export async function runScript(script: string, args: string[]): Promise<ScriptResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}
