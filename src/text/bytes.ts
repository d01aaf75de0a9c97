/**
 * GPT-2's byte-level alphabet: every byte 0..255 is written as one printable Unicode character, so
 * that a byte-level BPE vocabulary is a set of ordinary strings and any text, once UTF-8 encoded,
 * is spelled by the 256 base tokens (nothing is unencodable).
 *
 * The map is `bytes_to_unicode` of GPT-2 (and of Hugging Face `tokenizers`,
 * `pre_tokenizers/byte_level.rs`): the printable bytes `!`..`~`, `¡`..`¬` and `®`..`ÿ` stand for
 * themselves; the other 68 bytes (controls, space, 0x7F..0xA0, 0xAD) take the code points 256,
 * 257, ... in byte order. Space is therefore `Ġ` (U+0120) and `\n` is `Ċ` (U+010A).
 *
 * @module
 */

/** `BYTE_TO_CHAR[b]`: the UTF-16 code unit standing for byte `b` (all are below U+0144). */
export const BYTE_TO_CHAR: Uint16Array = (() => {
  const table = new Uint16Array(256);
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = printable(b) ? b : 256 + n++;
  return table;
})();

/** `CHAR_TO_BYTE[c]`: the byte a code unit `c < 512` stands for, or -1 when it is not one. */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const table = new Int16Array(512).fill(-1);
  for (let b = 0; b < 256; b++) table[BYTE_TO_CHAR[b]] = b;
  return table;
})();

/** The byte-level spelling of one byte: `byteChar(0x20) === "Ġ"`. */
export function byteChar(byte: number): string {
  return String.fromCharCode(BYTE_TO_CHAR[byte]);
}

// Reused scratch for byteLevel; grown when a longer piece comes.
let scratch = new Uint16Array(256);

/**
 * The UTF-8 bytes of `text`, each written as its byte-level character (what the ByteLevel
 * pre-tokenizer does to every piece). A lone surrogate, which no Rust string can hold, is encoded
 * as U+FFFD, as `TextEncoder` does.
 *
 * @example
 * ```ts
 * byteLevel(" héllo"); // "ĠhÃ©llo"
 * ```
 */
export function byteLevel(text: string): string {
  const n = text.length;
  if (scratch.length < 3 * n) scratch = new Uint16Array(3 * n + 64);
  const out = scratch;
  let k = 0;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[k++] = BYTE_TO_CHAR[c];
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out[k++] = BYTE_TO_CHAR[0xf0 | (cp >> 18)];
        out[k++] = BYTE_TO_CHAR[0x80 | ((cp >> 12) & 63)];
        out[k++] = BYTE_TO_CHAR[0x80 | ((cp >> 6) & 63)];
        out[k++] = BYTE_TO_CHAR[0x80 | (cp & 63)];
        continue;
      }
      c = 0xfffd;
    }
    if (c < 0x800) {
      out[k++] = BYTE_TO_CHAR[0xc0 | (c >> 6)];
      out[k++] = BYTE_TO_CHAR[0x80 | (c & 63)];
    } else {
      out[k++] = BYTE_TO_CHAR[0xe0 | (c >> 12)];
      out[k++] = BYTE_TO_CHAR[0x80 | ((c >> 6) & 63)];
      out[k++] = BYTE_TO_CHAR[0x80 | (c & 63)];
    }
  }
  // fromCharCode.apply has an argument-count limit; chunk long pieces.
  let s = "";
  for (let at = 0; at < k; at += 8192) {
    s += String.fromCharCode.apply(null, out.subarray(at, Math.min(k, at + 8192)) as never);
  }
  return s;
}

const utf8 = new TextEncoder();

/**
 * The bytes a token string stands for, as the ByteLevel decoder reads it: when every character is
 * a byte-level character, the bytes they stand for; otherwise (an added token such as `<think>` is
 * one, if it has a character outside the alphabet) the token's own UTF-8 bytes.
 */
export function tokenStringBytes(token: string): Uint8Array {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < 512 ? CHAR_TO_BYTE[c] : -1;
    if (b < 0) return utf8.encode(token);
    out[i] = b;
  }
  return out;
}
