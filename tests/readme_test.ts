// The README's TypeScript examples are run as written (from the repository root), so the
// documentation cannot drift from the library.
import assert from "node:assert/strict";

const readme = await Deno.readTextFile("README.md");
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

Deno.test("the README has TypeScript examples", () => {
  assert.ok(blocks.length >= 1);
});

blocks.forEach((code, i) => {
  Deno.test(`README example ${i + 1} runs`, async () => {
    const file = `./.readme_example_${i + 1}.ts`;
    await Deno.writeTextFile(file, code);
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", file],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `example ${i + 1} failed:\n${stderr}`);
    } finally {
      await Deno.remove(file);
    }
  });
});
