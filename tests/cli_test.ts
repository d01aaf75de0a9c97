// The CLI's contract: help, version, unknown commands and flags answered by one sentence and exit
// code 2, run failures by exit code 1 without a stack trace.
import assert from "node:assert/strict";
import { runCli, topLevelHelp } from "../src/cli/main.ts";
import { type Command, numberOption, UsageError } from "../src/cli/command.ts";
import { GpuUnavailableError } from "../src/gpu/device.ts";

function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  return fn().then((code) => ({ code, out: out.join("\n"), err: err.join("\n") })).finally(() => {
    console.log = log;
    console.error = error;
  });
}

const fake: Command = {
  name: "fake",
  summary: "A test command",
  description: "Fails in the ways a command can fail.",
  options: {
    rate: { type: "string", description: "A rate", default: "0.5", valueName: "X" },
    mode: { type: "string", description: "usage | gpu | crash | ok", default: "ok" },
  },
  run(values) {
    const rate = numberOption(values, "rate", { min: 0, max: 1 });
    if (values.mode === "usage") throw new UsageError("--mode usage was asked for");
    if (values.mode === "gpu") throw new GpuUnavailableError("No WebGPU adapter was found.");
    if (values.mode === "crash") throw new TypeError("something broke");
    console.log(`rate=${rate}`);
    return Promise.resolve(0);
  },
};

Deno.test("help, version and the command list", async () => {
  const help = await capture(() => runCli(["--help"], [fake]));
  assert.equal(help.code, 0);
  assert.match(help.out, /fake\s+A test command/);
  assert.equal(topLevelHelp([fake]), help.out);
  const none = await capture(() => runCli([], [fake]));
  assert.equal(none.code, 2);
  const version = await capture(() => runCli(["--version"]));
  assert.match(version.out, /^jackpot \d+\.\d+\.\d+/);
  const sub = await capture(() => runCli(["fake", "--help"], [fake]));
  assert.equal(sub.code, 0);
  assert.match(sub.out, /--rate X\s+A rate \(default: 0.5\)/);
});

Deno.test("unknown commands, unknown flags and bad values exit 2 with one line", async () => {
  for (
    const [argv, pattern] of [
      [["nope"], /unknown command 'nope'; the commands are fake/],
      [["fake", "--bogus"], /bogus/],
      // parseArgs' own text ("... To specify a positional argument starting with a '-' ...") is
      // two sentences about something else; the user typed an unknown option.
      [["fake", "--bogus"], /^jackpot fake: unknown option '--bogus' \(see jackpot fake --help\)$/],
      [["fake", "-x"], /^jackpot fake: unknown option '-x' \(see jackpot fake --help\)$/],
      [["fake", "stray"], /takes no positional arguments, got 'stray'/],
      [["fake", "--rate", "abc"], /--rate must be a number, got 'abc'/],
      [["fake", "--rate", "2"], /--rate must be <= 1, got 2/],
      [["fake", "--rate=-1"], /--rate must be >= 0, got -1/],
      [["fake", "--rate", "-1"], /--rate got a value starting with .-.; write it as --rate=VALUE/],
      [["fake", "--mode", "usage"], /--mode usage was asked for/],
    ] as const
  ) {
    const r = await capture(() => runCli([...argv], [fake]));
    assert.equal(r.code, 2, `${argv.join(" ")} should exit 2`);
    assert.match(r.err, pattern);
    assert.equal(r.err.split("\n").length, 1, `one line for ${argv.join(" ")}: ${r.err}`);
    assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
  }
});

Deno.test("failures during a run exit 1 with the message and no stack trace", async () => {
  for (const mode of ["gpu", "crash"]) {
    const r = await capture(() => runCli(["fake", "--mode", mode], [fake]));
    assert.equal(r.code, 1);
    assert.match(r.err, mode === "gpu" ? /No WebGPU adapter/ : /something broke/);
    assert.doesNotMatch(r.err, /\bat .*\.ts:\d+/);
  }
  const ok = await capture(() => runCli(["fake", "--rate", "0.25"], [fake]));
  assert.equal(ok.code, 0);
  assert.equal(ok.out, "rate=0.25");
});

Deno.test("jackpot info reports the adapter through a real process", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "src/cli/main.ts", "info", "--json"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const facts = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(typeof facts.fallbackAdapter, "boolean");
  assert.ok(facts.limits.maxStorageBufferBindingSize > 0);
  assert.equal(facts.runtime.deno, Deno.version.deno);
});
