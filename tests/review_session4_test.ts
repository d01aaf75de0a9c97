// Review of the decode fusions and bench/args.ts (session 4): regressions found, each with the
// behaviour it pins down.
import assert from "node:assert/strict";

async function runScript(script: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

// The anchors of bench/nn/main.ts's table, in the order printed (" 0.8M 0.82M  train B=4 ...").
function anchorsOf(stdout: string): string[] {
  return [...stdout.matchAll(/^\s*(\S+)\s+[\d.]+M\s+train /gm)].map((m) => m[1]);
}

// bench/args.ts's applyNnFlags filled in every anchor when --anchors was absent, which hid the
// script's own default: --small (what `deno task bench --small` passes on a CPU adapter) ran the
// 5M and 29M training steps too. --host-only keeps these runs to about a second each.
Deno.test("bench/nn/main.ts --small runs the 0.8M anchor only unless --anchors names others", async () => {
  const plain = await runScript("bench/nn/main.ts", ["--small", "--host-only"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.deepEqual(anchorsOf(plain.stdout), ["0.8M"], plain.stdout);
  const named = await runScript("bench/nn/main.ts", ["--small", "--host-only", "--anchors", "5M"]);
  assert.equal(named.code, 0, named.stderr);
  assert.deepEqual(anchorsOf(named.stdout), ["5M"], named.stdout);
});

// A bad value must be refused before the script opens the GPU (tests/bench_args_test.ts says each
// case "fails before any GPU work"): bench/tensor/main.ts read --rows/--cols/--repeats after
// initTensors (printing the adapter first), and bench/matmul/main.ts checked --versions after
// getGpu. A GPU opened first shows as output before the error: the adapter line on stdout, or
// the Vulkan loader's warnings on stderr where XDG_RUNTIME_DIR is unset (as on this machine).
for (
  const [script, args] of [
    ["bench/tensor/main.ts", ["--cols", "1.5"]],
    ["bench/tensor/main.ts", ["--repeats", "0"]],
    ["bench/matmul/main.ts", ["--versions", "v5,v99"]],
  ] as const
) {
  Deno.test(`${script} ${args.join(" ")}: refused before the GPU is opened`, async () => {
    const r = await runScript(script, [...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, "", "nothing printed before the error");
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line, got:\n${r.stderr}`);
  });
}
