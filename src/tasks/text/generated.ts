/**
 * Seeded arithmetic word problems: the `text` task's problems when the user brings no file.
 *
 * A problem is `terms` numbers of exactly `digits` digits each (drawn uniformly, so no leading
 * zeros and never 0) joined by operators drawn uniformly from `ops`, evaluated with the usual
 * precedence (`*` before `+` and `-`, then left to right) in BigInt, so the answer is an exact
 * integer, negative when the expression is. The prompt is plain English in one of a few templates
 * drawn by the rng: a story with probability 1/2 when one fits the expression, else a formula.
 * - formulas: `What is 37 + 58 * 2?`, `Compute 37 + 58 * 2.`, `Calculate …`, `Evaluate the
 *   expression ….`;
 * - stories:
 *   - only `+` and `-`, with a running total never below zero: someone who has some items, then
 *     gets or gives away some ("Alice has 37 apples. Then Alice gets 58 more. …");
 *   - three or more terms, only `+`: items collected over that many days (spelt in words);
 *   - `a * b`: bags of items; `a * b * c`: crates of boxes of items; `a * b + c`: bags of items and
 *     some more outside them.
 * The numbers appear in the prompt in the order of the expression and no other digit does, so the
 * expression (returned with each problem) can be read back from any prompt.
 *
 * @example
 * ```ts
 * generateArithmeticProblems(new Rng(1), 1, GENERATED_DEFAULTS);
 * // [{ prompt: "Compute 85 - 96.", answer: "-11", expression: "85 - 96" }]
 * ```
 *
 * @module
 */
import type { Rng } from "../../util/rng.ts";
import type { TextProblem } from "./problems.ts";

/** What {@link generateArithmeticProblems} draws. */
export interface GeneratedProblemOptions {
  /** Digits of every number, 1 to 9. */
  digits: number;
  /** Numbers per problem, 2 to 6. */
  terms: number;
  /** The operators drawn from: a non-empty subset of `+-*` without repeats. */
  ops: string;
}

/** A generated problem, with the expression its prompt states (`37 + 58 * 2`). */
export interface GeneratedProblem extends TextProblem {
  /** The numbers and operators in order, separated by single spaces. */
  expression: string;
}

/** Two-digit numbers, two of them, any of `+ - *`. */
export const GENERATED_DEFAULTS: GeneratedProblemOptions = { digits: 2, terms: 2, ops: "+-*" };

/**
 * `n` problems from `rng` only (same seed and stream, same problems).
 *
 * @example
 * ```ts
 * const [p] = generateArithmeticProblems(new Rng(7), 1, { digits: 1, terms: 3, ops: "+*" });
 * // p.prompt: "Ines has 5 bags with 9 shells in each bag, and 9 shells more outside the bags. …"
 * // p.expression: "5 * 9 + 9", p.answer: "54"
 * ```
 */
export function generateArithmeticProblems(
  rng: Rng,
  n: number,
  options: GeneratedProblemOptions,
): GeneratedProblem[] {
  checkOptions(options);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`the number of generated problems must be an integer >= 0, got ${n}`);
  }
  const low = 10n ** BigInt(options.digits - 1);
  const span = 10 ** options.digits - 10 ** (options.digits - 1);
  const out: GeneratedProblem[] = [];
  for (let i = 0; i < n; i++) {
    const terms: bigint[] = [];
    const ops: string[] = [];
    for (let t = 0; t < options.terms; t++) {
      if (t > 0) ops.push(options.ops[rng.int(options.ops.length)]);
      terms.push(low + BigInt(rng.int(span)));
    }
    // Half the problems are stories when one fits, so that words are not drowned by formulas.
    const stories = STORIES.filter((tpl) => tpl.fits(terms, ops));
    const pool = stories.length > 0 && rng.uniform() < 0.5 ? stories : FORMULAS;
    const template = pool[rng.int(pool.length)];
    const story: Story = {
      name: NAMES[rng.int(NAMES.length)],
      item: ITEMS[rng.int(ITEMS.length)],
    };
    const expression = terms.map((x, t) => (t === 0 ? `${x}` : `${ops[t - 1]} ${x}`)).join(" ");
    out.push({
      prompt: template.write(terms, ops, expression, story),
      answer: evaluate(terms, ops).toString(),
      expression,
    });
  }
  return out;
}

/** Throws a clear error unless `options` are in range. */
function checkOptions(o: GeneratedProblemOptions): void {
  if (!Number.isInteger(o.digits) || o.digits < 1 || o.digits > 9) {
    throw new RangeError(`generated problems: digits must be an integer in 1..9, got ${o.digits}`);
  }
  if (!Number.isInteger(o.terms) || o.terms < 2 || o.terms > 6) {
    throw new RangeError(`generated problems: terms must be an integer in 2..6, got ${o.terms}`);
  }
  if (
    typeof o.ops !== "string" || !/^[+\-*]+$/.test(o.ops) || new Set(o.ops).size !== o.ops.length
  ) {
    throw new RangeError(
      `generated problems: ops must be a non-empty subset of '+-*' without repeats, got '${o.ops}'`,
    );
  }
}

/** `terms` joined by `ops` with `*` first, then `+` and `-` left to right. */
function evaluate(terms: readonly bigint[], ops: readonly string[]): bigint {
  let sum = 0n;
  let sign = 1n;
  let product = terms[0];
  for (let t = 0; t < ops.length; t++) {
    if (ops[t] === "*") {
      product *= terms[t + 1];
    } else {
      sum += sign * product;
      sign = ops[t] === "+" ? 1n : -1n;
      product = terms[t + 1];
    }
  }
  return sum + sign * product;
}

interface Story {
  name: string;
  item: [singular: string, plural: string];
}

interface Template {
  fits(terms: readonly bigint[], ops: readonly string[]): boolean;
  write(terms: readonly bigint[], ops: readonly string[], expression: string, s: Story): string;
}

const NAMES = ["Alice", "Ben", "Carmen", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Kofi"];
const ITEMS: [string, string][] = [
  ["apple", "apples"],
  ["marble", "marbles"],
  ["sticker", "stickers"],
  ["book", "books"],
  ["coin", "coins"],
  ["pencil", "pencils"],
  ["shell", "shells"],
  ["card", "cards"],
];
// Day counts in words, so that the only digits of a prompt are the expression's numbers.
const COUNT_WORDS = ["zero", "one", "two", "three", "four", "five", "six"];

/** `n` with the singular or the plural noun. */
function count(n: bigint, [singular, plural]: readonly [string, string]): string {
  return `${n} ${n === 1n ? singular : plural}`;
}

/** `a, b and c`. */
function list(terms: readonly bigint[]): string {
  return `${terms.slice(0, -1).join(", ")} and ${terms[terms.length - 1]}`;
}

const same = (ops: readonly string[], op: string) => ops.every((o) => o === op);

const FORMULAS: readonly Template[] = [
  { fits: () => true, write: (_t, _o, e) => `What is ${e}?` },
  { fits: () => true, write: (_t, _o, e) => `Compute ${e}.` },
  { fits: () => true, write: (_t, _o, e) => `Calculate ${e}.` },
  { fits: () => true, write: (_t, _o, e) => `Evaluate the expression ${e}.` },
];

const STORIES: readonly Template[] = [
  {
    // Someone's items going up and down; a story never has a negative number of items.
    fits: (terms, ops) => {
      if (ops.includes("*")) return false;
      let total = terms[0];
      for (let t = 0; t < ops.length; t++) {
        total += ops[t] === "+" ? terms[t + 1] : -terms[t + 1];
        if (total < 0n) return false;
      }
      return true;
    },
    write: (terms, ops, _e, { name, item }) => {
      const steps = ops.map((op, t) =>
        op === "+"
          ? `Then ${name} gets ${terms[t + 1]} more.`
          : `Then ${name} gives ${terms[t + 1]} away.`
      );
      return `${name} has ${count(terms[0], item)}. ${steps.join(" ")} How many ${
        item[1]
      } does ${name} have now?`;
    },
  },
  {
    fits: (terms, ops) => terms.length >= 3 && same(ops, "+"),
    write: (terms, _o, _e, { name, item }) =>
      `${name} collects ${list(terms)} ${item[1]} on ${
        COUNT_WORDS[terms.length]
      } days in a row. How many ${item[1]} does ${name} collect in all?`,
  },
  {
    fits: (terms, ops) => terms.length === 2 && ops[0] === "*",
    write: ([a, b], _o, _e, { name, item }) =>
      `${name} buys ${count(a, ["bag", "bags"])} with ${count(b, item)} in each bag. ` +
      `How many ${item[1]} does ${name} buy in total?`,
  },
  {
    fits: (terms, ops) => terms.length === 3 && same(ops, "*"),
    write: ([a, b, c], _o, _e, { item }) =>
      `A shop has ${count(a, ["crate", "crates"])}. Each crate holds ${
        count(b, ["box", "boxes"])
      }` +
      ` and each box holds ${count(c, item)}. How many ${item[1]} does the shop have?`,
  },
  {
    fits: (terms, ops) => terms.length === 3 && ops[0] === "*" && ops[1] === "+",
    write: ([a, b, c], _o, _e, { name, item }) =>
      `${name} has ${count(a, ["bag", "bags"])} with ${count(b, item)} in each bag, and ` +
      `${count(c, item)} more outside the bags. How many ${item[1]} does ${name} have?`,
  },
];
