/**
 * A checkpoint folder's chat template: the Jinja program that turns a list of messages into the
 * prompt text an instruct model was trained on, as transformers' `apply_chat_template` runs it.
 *
 * The template comes from `chat_template.jinja` (transformers 4.50 and later save it there) or
 * else from `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates, of
 * which "default" is used). It is run by `@huggingface/jinja`, the Hugging Face port of Jinja that
 * transformers.js runs chat templates with (Qwen's use namespaces, reversed slices, string methods
 * and `tojson`), with the variables transformers passes: `messages`, `add_generation_prompt`,
 * `bos_token`, `eos_token`, `pad_token`, `unk_token`, plus any the caller adds (Qwen3's
 * `enable_thinking`). Its `strip`, `lstrip` and `rstrip` are given Python's semantics (see
 * `PYTHON_STRIP`).
 *
 * @module
 */
import { Template } from "@huggingface/jinja";

/** One chat turn. */
export interface ChatMessage {
  /** "system", "user" or "assistant" (templates may accept others, such as "tool"). */
  role: string;
  /** The text of the turn. */
  content: string;
}

/** Options of {@link ChatTemplate.render}. */
export interface RenderOptions {
  /** End with the start of an assistant turn (default true: the prompt of a generation). */
  addGenerationPrompt?: boolean;
  /** More template variables, e.g. `{ enable_thinking: false }` for Qwen3. */
  variables?: Record<string, unknown>;
}

/** A template that cannot be read, parsed or run; the message names the file. */
export class ChatTemplateError extends Error {
  /** @param file the template's file; @param problem what went wrong. */
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "ChatTemplateError";
  }
}

/** The special-token strings a template may use, by variable name. */
export type TemplateSpecials = Partial<
  Record<"bos_token" | "eos_token" | "pad_token" | "unk_token", string | null>
>;

/**
 * A parsed chat template.
 *
 * @example
 * ```ts
 * const chat = await ChatTemplate.read("models/Qwen3-0.6B");
 * const prompt = chat?.render([{ role: "user", content: "2+2?" }], {
 *   variables: { enable_thinking: false },
 * });
 * ```
 */
export class ChatTemplate {
  /** The Jinja source. */
  readonly source: string;
  /** Where it came from (named in errors). */
  readonly file: string;
  /** The special tokens passed to it. */
  readonly specials: TemplateSpecials;
  #template: Template;

  /** Parses `source`; a syntax error is a {@link ChatTemplateError} naming `file`. */
  constructor(source: string, file: string, specials: TemplateSpecials = {}) {
    this.source = source;
    this.file = file;
    this.specials = specials;
    try {
      this.#template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(file, `the chat template does not parse (${message(e)})`);
    }
    rewriteStripCalls(this.#template.parsed);
  }

  /**
   * The template of folder `dir` (see the module comment for where it is looked for), or null
   * when it has none. A file that is not JSON, a `chat_template` of the wrong type, or a template
   * that does not parse is a {@link ChatTemplateError}.
   */
  static async read(dir: string): Promise<ChatTemplate | null> {
    const configPath = `${dir}/tokenizer_config.json`;
    const config = await readJson(configPath);
    const specials: TemplateSpecials = {};
    for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"] as const) {
      specials[key] = tokenText(config?.[key]);
    }
    const jinjaPath = `${dir}/chat_template.jinja`;
    const jinja = await readOptionalText(jinjaPath);
    if (jinja !== null) return new ChatTemplate(jinja, jinjaPath, specials);
    const t = config?.chat_template;
    if (t === undefined || t === null) return null;
    if (typeof t === "string") return new ChatTemplate(t, configPath, specials);
    if (Array.isArray(t)) {
      const named = t.find((x) => (x as { name?: unknown } | null)?.name === "default") as
        | { template?: unknown }
        | undefined;
      if (named === undefined || typeof named.template !== "string") {
        throw new ChatTemplateError(
          configPath,
          `chat_template lists ${t.length} named templates but no "default" one`,
        );
      }
      return new ChatTemplate(named.template, configPath, specials);
    }
    throw new ChatTemplateError(configPath, "chat_template is neither a string nor a list");
  }

  /**
   * The prompt text of `messages`. An error the template raises (`raise_exception`, e.g. roles
   * that do not alternate) or meets is a {@link ChatTemplateError} with its message.
   */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    try {
      return this.#template.render({
        ...this.specials,
        ...options.variables,
        ...PYTHON_STRIP,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: options.addGenerationPrompt ?? true,
      });
    } catch (e) {
      throw new ChatTemplateError(this.file, `the chat template failed: ${message(e)}`);
    }
  }
}

// Python's str.isspace() characters: what strip() removes without an argument.
const PY_WHITESPACE = new Set(
  "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" +
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
);

function pyStrip(s: unknown, chars: unknown, left: boolean, right: boolean): string {
  if (typeof s !== "string") throw new Error(`strip() of a ${s === null ? "none" : typeof s}`);
  if (chars !== undefined && chars !== null && typeof chars !== "string") {
    throw new Error("strip() takes a string of characters");
  }
  const set = typeof chars === "string" ? new Set(chars) : PY_WHITESPACE;
  const units = [...s]; // whole code points, as Python's str
  let a = 0, b = units.length;
  if (left) { while (a < b && set.has(units[a])) a++; }
  if (right) { while (b > a && set.has(units[b - 1])) b--; }
  return units.slice(a, b).join("");
}

/**
 * `@huggingface/jinja` 0.5.11 runs `s.strip(chars)`, `lstrip` and `rstrip` as JavaScript's trim,
 * ignoring `chars`, where Python (and so transformers) strips exactly the given characters:
 * Qwen3's template calls `content.lstrip('\n')` and `reasoning_content.strip('\n')` on assistant
 * turns, so a turn starting with a tab would render differently. Such calls are rewritten in the
 * parsed template into calls of these functions, passed as template variables.
 */
const PYTHON_STRIP: Record<string, (s: unknown, chars?: unknown) => string> = {
  __jackpot_py_strip: (s, chars) => pyStrip(s, chars, true, true),
  __jackpot_py_lstrip: (s, chars) => pyStrip(s, chars, true, false),
  __jackpot_py_rstrip: (s, chars) => pyStrip(s, chars, false, true),
};

interface AstNode {
  type?: unknown;
  [key: string]: unknown;
}

// Rewrites `x.strip(c)` (and lstrip, rstrip; with or without c) into `__jackpot_py_strip(x, c)`
// in place, everywhere in the tree.
function rewriteStripCalls(root: unknown): void {
  const seen = new Set<object>();
  const visit = (node: unknown): void => {
    if (typeof node !== "object" || node === null || seen.has(node)) return;
    seen.add(node);
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    const n = node as AstNode;
    const callee = n.callee as AstNode | undefined;
    const property = callee?.property as AstNode | undefined;
    const name = typeof property?.value === "string" ? `__jackpot_py_${property.value}` : "";
    if (
      n.type === "CallExpression" && callee?.type === "MemberExpression" && !callee.computed &&
      property?.type === "Identifier" && name in PYTHON_STRIP && Array.isArray(n.args) &&
      n.args.length <= 1
    ) {
      n.args = [callee.object, ...n.args];
      n.callee = { type: "Identifier", value: name };
    }
    for (const v of Object.values(n)) visit(v);
  };
  visit(root);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// tokenizer_config.json writes a token as a string or as an AddedToken object with `content`.
function tokenText(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (
    typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string"
  ) {
    return (v as { content: string }).content;
  }
  return null;
}

async function readOptionalText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new ChatTemplateError(path, `cannot read the file (${message(e)})`);
  }
}

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  const text = await readOptionalText(path);
  if (text === null) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ChatTemplateError(path, `not JSON (${message(e)})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ChatTemplateError(path, "not a JSON object");
  }
  return v as Record<string, unknown>;
}

/**
 * `messages` in ChatML, ending where the assistant's answer starts: the layout Qwen2, Qwen2.5 and
 * Qwen3 instruct models are trained on, which their chat templates produce with
 * `add_generation_prompt` (Qwen2.5's template adds a default system turn when none is given,
 * Qwen3's none: pass a system message to match either exactly). The fallback for a folder without
 * a template; the caller checks that the tokenizer has `<|im_start|>` and `<|im_end|>`.
 *
 * @example
 * ```ts
 * chatMLPrompt([{ role: "user", content: "2+2?" }]);
 * // "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
 * ```
 */
export function chatMLPrompt(messages: readonly ChatMessage[]): string {
  return messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join("") +
    "<|im_start|>assistant\n";
}
