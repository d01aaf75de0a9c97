/**
 * `arithmetic`: character-level integer arithmetic, `12+345=` → `357`.
 *
 * Prompt: `<bos>` then `a`, one operator, `b`, `=`, with `a` and `b` non-negative decimal integers
 * without leading zeros whose digit counts are drawn uniformly from `[minDigits, maxDigits]` (then
 * the value uniformly among numbers with that many digits). Answer: the exact result in decimal, a
 * leading `-` when negative, no leading zeros, followed by the stop token; with `reverseAnswer` the
 * digits come least significant first (the sign stays in front), which small transformers learn
 * far more easily because carries then flow in generation order.
 *
 * Reward: 1 if the tokens before the first stop equal the reference exactly, else 0 (no stop → 0).
 * Nothing is tolerated: no spaces, no leading zeros, no `+` sign, no `-0`.
 *
 * Vocabulary (18 ids): `<pad>` `<bos>` `<eos>`, the digits `0`–`9`, `+ - * =`, and space (unused by
 * the prompts; there so that hand-written text may be tokenized).
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";
import { resolveOptions } from "./options.ts";
import type { Example, Task, TaskOptions } from "./task.ts";
import { exactMatchReward } from "./task.ts";
import { CharTokenizer } from "./tokenizer.ts";

/** The options of `arithmetic`, with defaults and ranges. */
export const ARITHMETIC_OPTIONS = {
  minDigits: { type: "int", default: 1, min: 1, max: 18, description: "fewest digits per operand" },
  maxDigits: { type: "int", default: 3, min: 1, max: 18, description: "most digits per operand" },
  ops: {
    type: "string",
    default: "+-",
    description: "operators to draw from, a non-empty subset of '+-*'",
    check: (v: string) =>
      v.length > 0 && /^[+\-*]+$/.test(v) && new Set(v).size === v.length
        ? null
        : `must be a non-empty subset of '+-*' without repeats, got '${v}'`,
  },
  reverseAnswer: {
    type: "boolean",
    default: false,
    description: "write the answer's digits least significant first",
  },
} as const;

const ALPHABET = "0123456789+-*= ";

/** Exact result of `a op b` in the answer format (BigInt, so every digit count is exact). */
export function arithmeticAnswerText(
  a: bigint,
  op: string,
  b: bigint,
  reverseAnswer: boolean,
): string {
  const r = op === "+" ? a + b : op === "-" ? a - b : op === "*" ? a * b : null;
  if (r === null) throw new Error(`unknown arithmetic operator '${op}'`);
  const negative = r < 0n;
  let digits = (negative ? -r : r).toString();
  if (reverseAnswer) digits = Array.from(digits).reverse().join("");
  return (negative ? "-" : "") + digits;
}

class ArithmeticTask implements Task {
  readonly name = "arithmetic";
  readonly description: string;
  readonly tokenizer = new CharTokenizer(ALPHABET);
  readonly options: Readonly<TaskOptions>;
  readonly maxPromptLength: number;
  readonly maxAnswerLength: number;
  readonly #minDigits: number;
  readonly #maxDigits: number;
  readonly #ops: string;
  readonly #reverse: boolean;

  constructor(given: TaskOptions) {
    const o = resolveOptions("arithmetic", ARITHMETIC_OPTIONS, given);
    if (o.minDigits > o.maxDigits) {
      throw new Error(
        `task 'arithmetic': minDigits (${o.minDigits}) must not exceed maxDigits (${o.maxDigits})`,
      );
    }
    this.options = Object.freeze({ ...o });
    this.#minDigits = o.minDigits;
    this.#maxDigits = o.maxDigits;
    this.#ops = o.ops;
    this.#reverse = o.reverseAnswer;
    const d = o.maxDigits;
    this.maxPromptLength = 1 + d + 1 + d + 1;
    // '+' adds a carry digit, '-' a sign (0 - 999 = -999), '*' doubles the digits.
    this.maxAnswerLength = Math.max(...Array.from(o.ops, (op) => (op === "*" ? 2 * d : d + 1)));
    this.description = `Integer arithmetic '${o.ops}' on ${o.minDigits}–${o.maxDigits}-digit ` +
      `operands, character-level: '<bos>12+345=' → '357<eos>'` +
      (o.reverseAnswer ? " (answer digits reversed: '753')" : "") +
      ". Reward 1 for an exact answer before the stop token, else 0.";
  }

  sample(rng: Rng, n: number): Example[] {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`sample(n) needs n >= 0, got ${n}`);
    const out: Example[] = [];
    for (let i = 0; i < n; i++) {
      const a = this.#operand(rng);
      const op = this.#ops[rng.int(this.#ops.length)];
      const b = this.#operand(rng);
      const text = `${a}${op}${b}=`;
      const prompt = new Int32Array(text.length + 1);
      prompt[0] = this.tokenizer.bosId;
      prompt.set(this.tokenizer.encode(text), 1);
      const answer = this.tokenizer.encode(
        arithmeticAnswerText(BigInt(a), op, BigInt(b), this.#reverse),
      );
      out.push({ prompt, answer });
    }
    return out;
  }

  #operand(rng: Rng): string {
    const digits = this.#minDigits + rng.int(this.#maxDigits - this.#minDigits + 1);
    // Digit by digit: exact for every digit count (a float draw of an 18-digit number is not).
    let s = digits === 1 ? String(rng.int(10)) : String(1 + rng.int(9));
    for (let k = 1; k < digits; k++) s += String(rng.int(10));
    return s;
  }

  referenceAnswer(prompt: ArrayLike<number>): Int32Array {
    const tok = this.tokenizer;
    if (prompt.length < 1 || prompt[0] !== tok.bosId) {
      throw new Error("arithmetic prompt must start with <bos>");
    }
    const text = tok.decode(Array.from(prompt).slice(1));
    const m = /^(0|[1-9][0-9]*)([+\-*])(0|[1-9][0-9]*)=$/.exec(text);
    if (m === null) {
      throw new Error(
        `not an arithmetic prompt: ${JSON.stringify(text)} (expected digits, one of '+-*', ` +
          `digits, '=')`,
      );
    }
    return tok.encode(arithmeticAnswerText(BigInt(m[1]), m[2], BigInt(m[3]), this.#reverse));
  }

  reward(prompt: ArrayLike<number>, completion: ArrayLike<number>): number {
    return exactMatchReward(this.referenceAnswer(prompt), completion, this.tokenizer.eosId);
  }

  isCorrect(prompt: ArrayLike<number>, completion: ArrayLike<number>): boolean {
    return this.reward(prompt, completion) === 1;
  }
}

/**
 * The `arithmetic` task; see the module notes and `ARITHMETIC_OPTIONS`.
 *
 * @example
 * ```ts
 * const task = createArithmeticTask({ maxDigits: 2, ops: "+*" });
 * ```
 */
export function createArithmeticTask(options: TaskOptions = {}): Task {
  return new ArithmeticTask(options);
}
