/**
 * Chat templates (src/text/chat_template.ts): a template written in the style of Qwen's
 * (namespace, reversed slice, string methods, `is defined`, `raise_exception`, `tojson`) renders
 * random conversations exactly as a TypeScript transcription of it does; where a folder's
 * template is looked for; and every failure names its file.
 */
import assert from "node:assert/strict";
import { type ChatMessage, ChatTemplate, ChatTemplateError } from "../src/text/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { renderReference, TEST_TEMPLATE } from "./text_util.ts";

function randomText(rng: Rng): string {
  const pieces = [
    "a",
    "Ω",
    "世界",
    " ",
    "\n",
    "\t",
    "</think>",
    "<think>",
    "2+2",
    "🙂",
    "'",
    '"',
    "\\",
  ];
  return Array.from({ length: rng.int(12) }, () => pieces[rng.int(pieces.length)]).join("");
}

Deno.test("chat template: random conversations render as the hand transcription of the template", () => {
  const rng = new Rng(31, 1);
  let cases = 0;
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + rng.int(5);
    const messages: ChatMessage[] = Array.from({ length: n }, (_, i) => ({
      role: i === 0 && rng.uniform() < 0.4 ? "system" : ["user", "assistant"][rng.int(2)],
      content: randomText(rng),
    }));
    const addGenerationPrompt = rng.uniform() < 0.7;
    const thinking = [undefined, true, false][rng.int(3)];
    const tools = rng.uniform() < 0.2
      ? [{ name: "calc", parameters: { x: rng.int(100), note: randomText(rng) } }]
      : undefined;
    const bos = [null, "<s>", "<|endoftext|>"][rng.int(3)];
    const t = new ChatTemplate(TEST_TEMPLATE, "test.jinja", { bos_token: bos, eos_token: "</s>" });
    const variables: Record<string, unknown> = {};
    if (thinking !== undefined) variables.enable_thinking = thinking;
    if (tools) variables.tools = tools;
    const got = t.render(messages, { addGenerationPrompt, variables });
    const want = renderReference(messages, {
      addGenerationPrompt,
      enableThinking: thinking,
      tools,
      bos,
      eos: "</s>",
    });
    assert.equal(got, want, `trial ${trial}: ${JSON.stringify(messages)}`);
    cases++;
  }
  assert.equal(cases, 300);
});

Deno.test("chat template: found in chat_template.jinja first, then tokenizer_config.json (string or named list)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jackpot-chat-" });
  try {
    assert.equal(await ChatTemplate.read(dir), null, "no files: no template");
    const config = (chat_template: unknown) =>
      Deno.writeTextFile(
        `${dir}/tokenizer_config.json`,
        JSON.stringify({
          bos_token: { content: "<s>", lstrip: false },
          eos_token: "</s>",
          pad_token: null,
          chat_template,
        }),
      );
    await config(undefined);
    assert.equal(await ChatTemplate.read(dir), null, "no chat_template key");
    await config("A{{ bos_token }}{{ eos_token }}{{ messages[0].content }}");
    const a = (await ChatTemplate.read(dir))!;
    assert.equal(a.render([{ role: "user", content: "x" }]), "A<s></s>x");
    assert.match(a.file, /tokenizer_config\.json$/);
    await config([{ name: "tool_use", template: "T" }, {
      name: "default",
      template: "D{{ 1 + 1 }}",
    }]);
    assert.equal((await ChatTemplate.read(dir))!.render([]), "D2");
    await Deno.writeTextFile(`${dir}/chat_template.jinja`, "J{{ add_generation_prompt }}");
    const j = (await ChatTemplate.read(dir))!;
    assert.equal(j.render([], { addGenerationPrompt: false }), "Jfalse");
    assert.match(j.file, /chat_template\.jinja$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat template: bad files, syntax errors and raised exceptions are errors naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jackpot-chat-bad-" });
  const named = (file: RegExp, problem: RegExp) => (e: unknown) =>
    e instanceof ChatTemplateError && file.test(e.message) && problem.test(e.message);
  try {
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "{ not json");
    await assert.rejects(
      () => ChatTemplate.read(dir),
      named(/tokenizer_config\.json/, /not JSON/),
    );
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ chat_template: 3 }));
    await assert.rejects(
      () => ChatTemplate.read(dir),
      named(/tokenizer_config/, /neither a string nor a list/),
    );
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ chat_template: [{ name: "rag", template: "R" }] }),
    );
    await assert.rejects(
      () => ChatTemplate.read(dir),
      named(/tokenizer_config/, /no "default" one/),
    );
    await Deno.writeTextFile(`${dir}/chat_template.jinja`, "{% for m in messages %}unclosed");
    await assert.rejects(
      () => ChatTemplate.read(dir),
      named(/chat_template\.jinja/, /does not parse/),
    );
    const t = new ChatTemplate(TEST_TEMPLATE, "qwen-like.jinja");
    assert.throws(
      () => t.render([{ role: "tool", content: "42" }]),
      named(/qwen-like\.jinja/, /role tool is not supported/),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat template: strip, lstrip and rstrip strip what Python's do (the given characters, else Python's whitespace)", () => {
  const cases: [string, string][] = [
    ["{{ '\\t\\nab\\n\\t'.lstrip('\\n') }}", "\t\nab\n\t"],
    ["{{ '\\n\\tab'.lstrip('\\n') }}", "\tab"],
    ["{{ '\\t\\nab\\n\\t'.rstrip('\\t') }}", "\t\nab\n"],
    ["{{ 'xxabxyx'.strip('xy') }}", "ab"],
    ["{{ 'xxab'.strip('') }}", "xxab"],
    ["{{ s.strip() }}", "ab\ufeff"],
    ["{{ s.lstrip() }}", "ab\ufeff"],
    ["{{ s.rstrip() }}", "\x1c\u3000ab\ufeff"],
    ["{{ '🙂a🙂'.strip('🙂') }}", "a"],
    ["{{ ('<think>\\nr\\n</think>\\n\\n\\tx'.split('</think>')[-1]).lstrip('\\n') }}", "\tx"],
  ];
  for (const [source, want] of cases) {
    const t = new ChatTemplate(source, "strip.jinja");
    assert.equal(t.render([], { variables: { s: "\x1c\u3000ab\ufeff" } }), want, source);
  }
});
