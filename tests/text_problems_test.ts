import assert from "node:assert/strict";
import { answersMatch, extractFinalAnswer } from "../src/tasks/text/answer.ts";
import {
  generateArithmeticProblems,
  GENERATED_DEFAULTS,
  type GeneratedProblemOptions,
} from "../src/tasks/text/generated.ts";
import {
  MAX_LINE_BYTES,
  parseProblemsJsonl,
  ProblemFileError,
  type TextProblem,
} from "../src/tasks/text/problems.ts";
import { Rng } from "../src/util/rng.ts";

const line = (o: unknown) => JSON.stringify(o);

Deno.test("parseProblemsJsonl: field aliases, GSM8K and MATH answers, numbers", () => {
  const text = [
    line({ prompt: "p1", answer: "42" }),
    line({ question: "p2", answer: "Half of 10 is 5.\nSo 5 + 2 = 7.\n#### 1,007" }),
    line({ problem: "p3", solution: "We get $\\boxed{\\frac{1}{2}}$, since \\boxed{x} is wrong." }),
    line({ question: "p4", final_answer: -2.5 }),
    line({ problem: "p5", ground_truth: "  \\frac{3}{4}  " }),
    line({ prompt: "p6", question: "ignored", answer: "1", solution: "\\boxed{2}", id: 17 }),
    line({ prompt: "p7", answer: null, final_answer: "8" }),
    line({ question: null, problem: "  p8 keeps its spaces ", answer: 0 }),
  ].join("\n");
  const want: TextProblem[] = [
    { prompt: "p1", answer: "42" },
    { prompt: "p2", answer: "1,007" },
    { prompt: "p3", answer: "x" },
    { prompt: "p4", answer: "-2.5" },
    { prompt: "p5", answer: "\\frac{3}{4}" },
    { prompt: "p6", answer: "1" },
    { prompt: "p7", answer: "8" },
    { prompt: "  p8 keeps its spaces ", answer: "0" },
  ];
  assert.deepEqual(parseProblemsJsonl(text, "f.jsonl"), want);
  assert.ok(answersMatch("1007", want[1].answer));
});

Deno.test("parseProblemsJsonl: BOM, CRLF, blank lines and no final newline", () => {
  const body = [line({ prompt: "a", answer: "1" }), "", "  ", line({ prompt: "b", answer: "2" })];
  const want = [{ prompt: "a", answer: "1" }, { prompt: "b", answer: "2" }];
  assert.deepEqual(parseProblemsJsonl("\uFEFF" + body.join("\r\n") + "\r\n", "f"), want);
  assert.deepEqual(parseProblemsJsonl(body.join("\n"), "f"), want);
  // A CR inside a JSON string is escaped, so only line ends lose theirs.
  assert.deepEqual(parseProblemsJsonl(line({ prompt: "x\r\ny", answer: "3" }) + "\r\n", "f"), [
    { prompt: "x\r\ny", answer: "3" },
  ]);
});

Deno.test("parseProblemsJsonl: every error names the file, the line and the reason", () => {
  const good = line({ prompt: "ok", answer: "1" });
  const cases: [bad: string, reason: RegExp][] = [
    ["{not json", /invalid JSON/],
    ["[1, 2]", /expected a JSON object.*got an array/],
    ["null", /expected a JSON object.*got null/],
    ['"text"', /expected a JSON object.*got string/],
    [
      line({ text: "q", answer: "1" }),
      /no prompt: expected one of the fields prompt, question, problem/,
    ],
    [line({ prompt: 5, answer: "1" }), /prompt field 'prompt' must be a string, got number/],
    [line({ question: "  \n", answer: "1" }), /prompt field 'question' is empty/],
    [
      line({ prompt: "q", label: "1" }),
      /no answer: expected one of the fields answer, final_answer, solution, ground_truth/,
    ],
    [line({ prompt: "q", answer: true }), /'answer' must be a string or a number, got boolean/],
    [line({ prompt: "q", answer: ["1"] }), /'answer' must be a string or a number, got object/],
    [line({ prompt: "q", solution: "so \\boxed{12" }), /\\boxed\{\} that is empty or never closed/],
    [line({ prompt: "q", answer: "\\boxed{ }" }), /\\boxed\{\} that is empty or never closed/],
    [line({ prompt: "q", answer: "work\n####  " }), /nothing after its last ####/],
    [line({ prompt: "q", solution: "It is 12." }), /no final answer in the solution/],
    [line({ prompt: "q", answer: "step 1\nstep 2\n12" }), /no final answer in the multi-line/],
    [line({ prompt: "q", answer: "   " }), /answer field 'answer' is empty/],
    [line({ prompt: "q", answer: "$ $" }), /answer field 'answer' is empty/],
    [line({ prompt: "q", answer: "x".repeat(MAX_LINE_BYTES) }), /bytes is over the 1 MB limit/],
  ];
  for (const [bad, reason] of cases) {
    const text = [good, "", bad, good].join("\n");
    assert.throws(
      () => parseProblemsJsonl(text, "data/train.jsonl"),
      (e: unknown) => {
        assert.ok(e instanceof ProblemFileError, String(e));
        assert.ok(e.message.startsWith("data/train.jsonl:3: "), e.message);
        assert.match(e.message, reason);
        assert.equal(e.line, 3);
        assert.equal(e.source, "data/train.jsonl");
        return true;
      },
    );
  }
  // Multi-byte characters count in bytes: under 1 MB of UTF-16 units, over 1 MB of UTF-8.
  const wide = line({ prompt: "é".repeat(MAX_LINE_BYTES / 2 + 8), answer: "1" });
  assert.throws(() => parseProblemsJsonl(wide, "w"), /^ProblemFileError: w:1: line of \d+ bytes/);
  const justUnder = line({ prompt: "q".repeat(MAX_LINE_BYTES - 40), answer: "1" });
  assert.equal(parseProblemsJsonl(justUnder, "u").length, 1);
  for (const empty of ["", "\uFEFF", "\n\r\n  \n"]) {
    assert.throws(
      () => parseProblemsJsonl(empty, "e.jsonl"),
      /^ProblemFileError: e\.jsonl:1: no problems/,
    );
  }
});

// ---- generated problems ----

/** Independent evaluator of `a op b op c …` by recursive descent over the expression's text. */
function evaluateText(expression: string): bigint {
  const tokens = expression.split(" ");
  let at = 0;
  const number = (): bigint => {
    const tok = tokens[at++];
    assert.match(tok, /^[1-9]\d*$/, `expected a number in ${expression}`);
    return BigInt(tok);
  };
  const product = (): bigint => {
    let v = number();
    while (tokens[at] === "*") {
      at++;
      v *= number();
    }
    return v;
  };
  let v = product();
  while (at < tokens.length) {
    const op = tokens[at++];
    assert.ok(op === "+" || op === "-", `unexpected '${op}' in ${expression}`);
    v = op === "+" ? v + product() : v - product();
  }
  return v;
}

Deno.test("generated problems: answers agree with an independent evaluator; prompts state them", () => {
  const seen = { negative: 0, story: 0, templates: new Set<string>() };
  const settings: GeneratedProblemOptions[] = [
    GENERATED_DEFAULTS,
    { digits: 1, terms: 2, ops: "+" },
    { digits: 1, terms: 3, ops: "*+" },
    { digits: 3, terms: 3, ops: "*" },
    { digits: 2, terms: 4, ops: "+-" },
    { digits: 9, terms: 6, ops: "-*+" },
  ];
  for (const [k, options] of settings.entries()) {
    for (const p of generateArithmeticProblems(new Rng(5, k), 300, options)) {
      const tokens = p.expression.split(" ");
      assert.equal(tokens.length, 2 * options.terms - 1, p.expression);
      for (let t = 0; t < tokens.length; t++) {
        if (t % 2 === 1) assert.ok(options.ops.includes(tokens[t]), p.expression);
        else assert.equal(tokens[t].length, options.digits, p.expression);
      }
      const want = evaluateText(p.expression);
      assert.equal(p.answer, want.toString(), p.expression);
      // The prompt's digits are exactly the expression's numbers, in order.
      const numbers = tokens.filter((_, t) => t % 2 === 0);
      assert.deepEqual(p.prompt.match(/\d+/g), numbers, p.prompt);
      if (!p.prompt.includes(p.expression)) {
        seen.story++;
        assert.ok(want >= 0n, `a story with a negative answer: ${p.prompt}`);
      }
      if (want < 0n) seen.negative++;
      seen.templates.add(p.prompt.replace(/\d+/g, "N").replace(/[A-Z][a-z]+ /g, "W ").slice(0, 12));
      // The answer written the way a model would is found and matched.
      for (const said of [`The answer is ${p.answer}.`, `So \\boxed{${p.answer}}`]) {
        assert.ok(answersMatch(extractFinalAnswer(said, "auto"), p.answer), said);
      }
      assert.ok(!answersMatch(extractFinalAnswer(`The answer is ${want + 1n}.`, "auto"), p.answer));
    }
  }
  assert.ok(seen.negative > 0, "some answers should be negative");
  assert.ok(seen.story > 100, `only ${seen.story} word problems`);
  assert.ok(seen.templates.size >= 6, `only ${seen.templates.size} prompt shapes`);
});

Deno.test("generated problems: the same seed and stream give the same problems", () => {
  const a = generateArithmeticProblems(new Rng(9, 1), 50, GENERATED_DEFAULTS);
  const b = generateArithmeticProblems(new Rng(9, 1), 50, GENERATED_DEFAULTS);
  const c = generateArithmeticProblems(new Rng(9, 2), 50, GENERATED_DEFAULTS);
  const d = generateArithmeticProblems(new Rng(10, 1), 50, GENERATED_DEFAULTS);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.notDeepEqual(a, d);
  assert.deepEqual(
    generateArithmeticProblems(new Rng(9, 1), 20, GENERATED_DEFAULTS),
    a.slice(0, 20),
  );
  assert.deepEqual(generateArithmeticProblems(new Rng(1), 0, GENERATED_DEFAULTS), []);
  assert.ok(new Set(a.map((p) => p.prompt)).size > 40, "prompts should vary");
});

Deno.test("generated problems: option and count errors", () => {
  const bad: [Partial<GeneratedProblemOptions>, RegExp][] = [
    [{ digits: 0 }, /digits must be an integer in 1\.\.9, got 0/],
    [{ digits: 10 }, /digits must be an integer in 1\.\.9, got 10/],
    [{ digits: 2.5 }, /digits must be an integer in 1\.\.9, got 2\.5/],
    [{ terms: 1 }, /terms must be an integer in 2\.\.6, got 1/],
    [{ terms: 7 }, /terms must be an integer in 2\.\.6, got 7/],
    [{ ops: "" }, /ops must be a non-empty subset of '\+-\*' without repeats, got ''/],
    [{ ops: "+/" }, /ops must be a non-empty subset.*got '\+\/'/],
    [{ ops: "++" }, /ops must be a non-empty subset.*got '\+\+'/],
  ];
  for (const [change, message] of bad) {
    assert.throws(
      () => generateArithmeticProblems(new Rng(1), 1, { ...GENERATED_DEFAULTS, ...change }),
      message,
    );
  }
  for (const n of [-1, 1.5, NaN]) {
    assert.throws(
      () => generateArithmeticProblems(new Rng(1), n, GENERATED_DEFAULTS),
      /number of generated problems must be an integer >= 0/,
    );
  }
});
