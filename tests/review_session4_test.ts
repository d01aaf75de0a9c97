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
