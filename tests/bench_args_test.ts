// The bench scripts' command lines (bench/args.ts): a bad flag or value is one line naming it and
// exit code 2, never a stack trace or a NaN carried into a run; --help prints the flags, exit 0.
// Each case fails before any GPU work, so the processes end in about a second.
import assert from "node:assert/strict";
import { benchUsage } from "../bench/args.ts";
import { runScript } from "./script_util.ts";

const BAD: [script: string, args: string[], names: string][] = [
  ["bench/main.ts", ["--suite", "copy,nope"], "unknown suite 'nope'"],
  ["bench/main.ts", ["--frobnicate"], "unknown option '--frobnicate'"],
  ["bench/obrs/main.ts", ["--rows", "abc"], "--rows must be an integer, got 'abc'"],
  ["bench/obrs/main.ts", ["--k", "0"], "--k must be >= 1"],
  ["bench/obrs/main.ts", ["--vocab", "100", "--k", "101"], "--k must be <= 100"],
  ["bench/tensor/main.ts", ["--cols", "1.5"], "--cols must be an integer, got '1.5'"],
  ["bench/attention/main.ts", ["--repeats", "-2"], "--repeats"],
  ["bench/nn/main.ts", ["--anchors", "0.8M,3M"], "unknown anchor '3M'"],
  ["bench/matmul/main.ts", ["--versions", "v5,v99"], "unknown matmul version(s): v99"],
  ["bench/matmul/main.ts", ["--warm-ms", "soon"], "--warm-ms must be an integer"],
  ["bench/matmul/swiglu_down.ts", ["--json"], "--json"],
  ["bench/matmul/add_rms_qkv.ts", ["--rounds", "0"], "--rounds must be >= 1"],
  ["bench/nn/profile.ts", ["--top", "many"], "--top must be an integer, got 'many'"],
  ["bench/nn/dispatches.ts", ["stray"], "takes no positional arguments, got 'stray'"],
  ["bench/nn/dispatches.ts", ["--defer-split-mb", "lots"], "--defer-split-mb must be a number"],
  ["bench/nn/main.ts", ["--attention", "flash"], "--attention must be fused, composed or auto"],
  ["bench/nn/main.ts", ["--as-gpu"], "--as-gpu needs --host-only"],
];

for (const [script, args, names] of BAD) {
  Deno.test(`${script} ${args.join(" ")}: one line naming the problem, exit 2`, async () => {
    const r = await runScript(script, args);
    assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
    assert.ok(lines[0].includes(names), `'${lines[0]}' should name: ${names}`);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  });
}

Deno.test("bench --help lists every flag and exits 0", async () => {
  const r = await runScript("bench/nn/main.ts", ["--help"]);
  assert.equal(r.code, 0, r.stderr);
  for (const flag of ["--small", "--host-only", "--anchors", "--attention", "--defer-split-mb"]) {
    assert.ok(r.stdout.includes(flag), `${flag} in:\n${r.stdout}`);
  }
});

Deno.test("benchUsage shows defaults and the invocation", () => {
  const text = benchUsage("bench/x.ts", "Does x.", {
    k: { type: "string", default: "20", help: "top-k size" },
    small: { type: "boolean", help: "small shapes" },
  });
  assert.match(text, /^Usage: deno run -A bench\/x\.ts \[options\]/);
  assert.match(text, /--k VALUE\s+top-k size \(default: 20\)/);
  assert.match(text, /--small\s+small shapes\n/);
  assert.match(benchUsage("deno task bench", "", {}), /^Usage: deno task bench \[options\]/);
});
