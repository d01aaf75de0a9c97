/**
 * Oniguruma (Ruby syntax, UTF-8) regular expressions, as Hugging Face `tokenizers` compiles the
 * `Split` patterns of a tokenizer.json, translated to JavaScript `u`-flag RegExps.
 *
 * Where the two dialects agree the text is copied; where they differ it is rewritten so that the
 * JavaScript pattern matches what Oniguruma matches:
 *
 * - `\s` is Oniguruma's Unicode whitespace, U+0009..U+000D, U+0085 and the Zs, Zl, Zp categories
 *   (JavaScript's `\s` lacks U+0085 and adds U+FEFF); `\S` is its complement.
 * - `\d` is `\p{Nd}` and `\w` is `[\p{L}\p{M}\p{Nd}\p{Pc}]` (JavaScript's are ASCII only); `\h` is
 *   a hexadecimal digit.
 * - `.` excludes only `\n`; `^` and `$` are line anchors at `\n` (Ruby's meaning); `\A`, `\z`, `\Z`
 *   are the string anchors.
 * - `(...)` becomes `(?:...)` (captures are never read); `(?i:...)` and `(?-i:...)` are kept (V8
 *   supports modifier groups); `\p{^X}` becomes `\P{X}`; `\x{HHHH}` becomes `\u{HHHH}`; a lone
 *   `{` or `}` is a literal; `{,n}` is `{0,n}`.
 *
 * Everything else that has no exact JavaScript equivalent is refused with an error naming the
 * construct and its position: possessive quantifiers, atomic groups, isolated options `(?i)`,
 * backreferences and subexpression calls, `\b` (Oniguruma's is Unicode-aware), `\R`, `\X`, `\G`,
 * `\K`, nested classes and `&&` intersections, POSIX brackets, and options other than `i`.
 *
 * @module
 */

/** Oniguruma's Unicode `\s`, as the body of a JavaScript character class. */
export const ONIG_SPACE = "\\t-\\r\\x85\\p{Zs}\\u2028\\u2029";
/** Oniguruma's Unicode `\w`, as the body of a JavaScript character class. */
export const ONIG_WORD = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";

/** A pattern that this translator does not accept; the message names the construct. */
export class RegexTranslationError extends Error {
  constructor(pattern: string, at: number, what: string) {
    super(`cannot translate regex ${JSON.stringify(pattern)} at offset ${at}: ${what}`);
    this.name = "RegexTranslationError";
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  t: "\\t",
  n: "\\n",
  r: "\\r",
  f: "\\f",
  v: "\\v",
  a: "\\x07",
  e: "\\x1B",
};

/**
 * `c` written so that it is a literal in a JavaScript `u` pattern. Outside a class only the syntax
 * characters and `/` may be escaped (`\-` is an error there); inside, `-` must be.
 */
function literal(c: string, inClass = false): string {
  if (/[\^$\\.*+?()[\]{}|\/]/.test(c) || (inClass && c === "-")) return "\\" + c;
  return c;
}

/** `\p{name}` of Oniguruma as JavaScript, checked by compiling it. */
function property(name: string, negated: boolean, pattern: string, at: number): string {
  if (name.startsWith("^")) {
    negated = !negated;
    name = name.slice(1);
  }
  for (const candidate of [name, `Script=${name}`]) {
    const text = `\\${negated ? "P" : "p"}{${candidate}}`;
    try {
      new RegExp(text, "u");
      return text;
    } catch {
      // try the next spelling
    }
  }
  throw new RegexTranslationError(pattern, at, `unknown Unicode property \\p{${name}}`);
}

/**
 * Translates an Oniguruma pattern into the source of an equivalent JavaScript `u` pattern.
 *
 * @example
 * ```ts
 * translateOnigurumaRegex("\\d+|."); // "\\p{Nd}+|[^\\n]"
 * ```
 */
export function translateOnigurumaRegex(pattern: string): string {
  const chars = Array.from(pattern);
  // Offsets in errors are in code points of the pattern.
  let i = 0;
  let out = "";
  let depth = 0;
  let mark = 0; // where the construct being read starts, for error messages
  const fail = (what: string): never => {
    throw new RegexTranslationError(pattern, mark, what);
  };

  /** Reads one escape (i at the backslash); `inClass` selects class-body output. */
  const escape = (inClass: boolean): string => {
    mark = i;
    const c = chars[i + 1];
    if (c === undefined) fail("pattern ends with a lone backslash");
    i += 2;
    if (c in SIMPLE_ESCAPES) return SIMPLE_ESCAPES[c];
    switch (c) {
      case "s":
        return inClass ? ONIG_SPACE : `[${ONIG_SPACE}]`;
      case "S":
        return inClass ? fail("\\S inside a character class") : `[^${ONIG_SPACE}]`;
      case "w":
        return inClass ? ONIG_WORD : `[${ONIG_WORD}]`;
      case "W":
        return inClass ? fail("\\W inside a character class") : `[^${ONIG_WORD}]`;
      case "d":
        return "\\p{Nd}";
      case "D":
        return "\\P{Nd}";
      case "h":
        return inClass ? "0-9a-fA-F" : "[0-9a-fA-F]";
      case "H":
        return inClass ? fail("\\H inside a character class") : "[^0-9a-fA-F]";
      case "p":
      case "P": {
        if (chars[i] !== "{") fail(`\\${c} without {name}`);
        const end = chars.indexOf("}", i);
        if (end < 0) fail(`unterminated \\${c}{`);
        const name = chars.slice(i + 1, end).join("");
        const at = i;
        i = end + 1;
        return property(name, c === "P", pattern, at);
      }
      case "x": {
        if (chars[i] === "{") {
          const end = chars.indexOf("}", i);
          const hex = end < 0 ? "" : chars.slice(i + 1, end).join("");
          if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) fail("malformed \\x{...}");
          i = end + 1;
          return `\\u{${hex}}`;
        }
        const hex = chars.slice(i, i + 2).join("");
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) fail("malformed \\xHH");
        // Oniguruma's \xHH is one byte of the UTF-8 text: only ASCII bytes are characters.
        if (parseInt(hex, 16) > 0x7f) fail(`\\x${hex} is a raw UTF-8 byte, not a character`);
        i += 2;
        return `\\x${hex}`;
      }
      case "u": {
        const hex = chars.slice(i, i + 4).join("");
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("malformed \\uHHHH");
        i += 4;
        return `\\u${hex}`;
      }
      case "b":
        return inClass ? "\\x08" : fail("\\b (word boundary) has no exact JavaScript equivalent");
      case "A":
        return inClass ? fail("\\A inside a character class") : "(?<![\\s\\S])";
      case "z":
        return inClass ? fail("\\z inside a character class") : "(?![\\s\\S])";
      case "Z":
        return inClass ? fail("\\Z inside a character class") : "(?=\\n?(?![\\s\\S]))";
    }
    if (/[0-9A-Za-z]/.test(c)) return fail(`unsupported escape \\${c}`);
    return literal(c, inClass);
  };

  const characterClass = (): string => {
    const start = i;
    i++;
    let body = "";
    if (chars[i] === "^") {
      body += "^";
      i++;
    }
    let first = true;
    for (;;) {
      const c = chars[i];
      if (c === undefined) {
        i = start;
        fail("unterminated character class");
      }
      if (c === "]" && !first) break;
      if (c === "[") {
        if (chars[i + 1] === ":") fail("POSIX bracket expressions are not supported");
        fail("nested character classes are not supported");
      }
      if (c === "&" && chars[i + 1] === "&") fail("class intersection && is not supported");
      if (c === "\\") body += escape(true);
      else {
        body += c === "-" ? "-" : literal(c, true);
        i++;
      }
      first = false;
    }
    i++;
    return `[${body}]`;
  };

  /** After an atom: copies a quantifier if one follows, refusing possessive forms. */
  const quantifier = (): void => {
    mark = i;
    const c = chars[i];
    let q = "";
    if (c === "*" || c === "+" || c === "?") {
      q = c;
      i++;
    } else if (c === "{") {
      const rest = chars.slice(i, i + 24).join("");
      const m = /^\{(\d*)(,?)(\d*)\}/.exec(rest);
      if (!m || (m[1] === "" && m[3] === "")) return; // a literal brace, handled by the caller
      q = `{${m[1] === "" ? "0" : m[1]}${m[2]}${m[3]}}`;
      i += m[0].length;
      if (chars[i] === "+") fail("possessive interval quantifiers are not supported");
      // Oniguruma reads {n}? as an optional {n}, JavaScript as a lazy one.
      if (chars[i] === "?" && m[2] === "") fail("{n}? (an optional {n} in Oniguruma)");
      if (chars[i] === "?") {
        q += "?";
        i++;
      }
      out += q;
      return;
    } else return;
    if (chars[i] === "+") fail("possessive quantifiers (?+, *+, ++) are not supported");
    if (chars[i] === "?") {
      q += "?";
      i++;
    }
    out += q;
  };

  while (i < chars.length) {
    const c = chars[i];
    mark = i;
    if (c === "\\") {
      out += escape(false);
      quantifier();
    } else if (c === "[") {
      out += characterClass();
      quantifier();
    } else if (c === "(") {
      const rest = chars.slice(i, i + 6).join("");
      if (rest.startsWith("(?#")) {
        const end = chars.indexOf(")", i);
        if (end < 0) fail("unterminated comment group");
        i = end + 1;
        continue;
      }
      const opts = /^\(\?(-?i):/.exec(rest);
      if (opts) {
        out += `(?${opts[1]}:`;
        i += opts[0].length;
      } else if (/^\(\?(<=|<!|=|!|:)/.test(rest)) {
        const m = /^\(\?(<=|<!|=|!|:)/.exec(rest)!;
        out += m[0];
        i += m[0].length;
      } else if (rest.startsWith("(?")) {
        fail(`unsupported group ${JSON.stringify(rest.slice(0, 4))}`);
      } else {
        out += "(?:";
        i++;
      }
      depth++;
    } else if (c === ")") {
      if (depth === 0) fail("unbalanced )");
      depth--;
      out += ")";
      i++;
      quantifier();
    } else if (c === "|") {
      out += "|";
      i++;
    } else if (c === ".") {
      out += "[^\\n]";
      i++;
      quantifier();
    } else if (c === "^") {
      out += "(?<![^\\n])";
      i++;
    } else if (c === "$") {
      out += "(?![^\\n])";
      i++;
    } else if (c === "*" || c === "+" || c === "?") {
      fail(`quantifier ${c} with nothing to repeat`);
    } else {
      if (c === "{" && /^\{\d*,?\d*\}/.test(chars.slice(i, i + 24).join(""))) {
        if (!/^\{,?\}/.test(chars.slice(i, i + 3).join(""))) {
          fail("interval quantifier with nothing to repeat");
        }
      }
      out += literal(c);
      i++;
      quantifier();
    }
  }
  if (depth !== 0) fail("unbalanced (");
  return out;
}

/**
 * A global `u` RegExp matching what the Oniguruma `pattern` matches.
 * Throws a `RegexTranslationError` naming the construct that cannot be translated.
 */
export function onigurumaRegExp(pattern: string): RegExp {
  const source = translateOnigurumaRegex(pattern);
  try {
    return new RegExp(source, "gu");
  } catch (e) {
    throw new RegexTranslationError(
      pattern,
      0,
      `its translation ${JSON.stringify(source)} does not compile: ${(e as Error).message}`,
    );
  }
}

/** `text` as the source of a JavaScript `u` pattern that matches it literally. */
export function escapeLiteral(text: string): string {
  return Array.from(text).map((c) => literal(c)).join("");
}

/** A global `u` RegExp matching the literal `text` (a `Split` pattern of the `String` kind). */
export function literalRegExp(text: string): RegExp {
  return new RegExp(escapeLiteral(text), "gu");
}
