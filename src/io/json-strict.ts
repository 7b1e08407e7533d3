/**
 * A strict JSON parser (RFC 8259) for untrusted file headers.
 *
 * `JSON.parse` silently keeps the last of two duplicate keys, builds plain objects (where a key "__proto__"
 * is special) and recurses without limit. A file format that must "never trust a header" needs all three
 * handled, so this parser returns objects as `Map`s in source order, rejects duplicate keys, lone surrogate
 * escapes and nesting deeper than `maxDepth`, and reports the character offset of each error.
 */
import { FormatError } from "../errors.ts";

/** A parsed JSON value; objects are Maps (source order, any key allowed). */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/** A parsed JSON object. */
export type JsonObject = Map<string, JsonValue>;

/**
 * Parse `text` as one JSON value (surrounding whitespace allowed). Errors are FormatErrors prefixed with
 * `what` (for example "parseSafetensors: header").
 *
 * @example
 * const v = parseJsonStrict('{"a": [1, 2]}', "demo"); // Map { "a" => [1, 2] }
 * parseJsonStrict('{"a": 1, "a": 2}', "demo"); // throws FormatError: duplicate key "a"
 */
export function parseJsonStrict(text: string, what: string, maxDepth = 64): JsonValue {
  const p = new Parser(text, what, maxDepth);
  p.skipWs();
  const v = p.value(0);
  p.skipWs();
  if (p.pos !== text.length) p.fail("unexpected text after the JSON value");
  return v;
}

/**
 * True for a JSON object produced by parseJsonStrict.
 *
 * @example
 * isJsonObject(parseJsonStrict("{}", "demo")); // true
 */
export function isJsonObject(v: JsonValue): v is JsonObject {
  return v instanceof Map;
}

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Parser {
  pos = 0;
  constructor(
    readonly text: string,
    readonly what: string,
    readonly maxDepth: number,
  ) {}

  fail(msg: string, at = this.pos): never {
    if (at >= this.text.length && !msg.startsWith("unexpected end")) msg = `unexpected end of input (${msg})`;
    throw new FormatError(`${this.what}: invalid JSON at character ${at}: ${msg}`);
  }

  skipWs(): void {
    const t = this.text;
    let i = this.pos;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.pos = i;
  }

  value(depth: number): JsonValue {
    const t = this.text;
    const c = t.charCodeAt(this.pos);
    if (c === 0x7b /* { */) return this.object(depth + 1);
    if (c === 0x5b /* [ */) return this.array(depth + 1);
    if (c === 0x22 /* " */) return this.string();
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) return this.number();
    for (const [word, v] of [
      ["true", true],
      ["false", false],
      ["null", null],
    ] as const) {
      if (t.startsWith(word, this.pos)) {
        this.pos += word.length;
        return v;
      }
    }
    if (this.pos >= t.length) this.fail("unexpected end of input");
    this.fail(`unexpected character ${JSON.stringify(t[this.pos])}`);
  }

  checkDepth(depth: number): void {
    if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth} levels`);
  }

  object(depth: number): JsonObject {
    this.checkDepth(depth);
    const out: JsonObject = new Map();
    this.pos++; // {
    this.skipWs();
    if (this.text.charCodeAt(this.pos) === 0x7d /* } */) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      const keyAt = this.pos;
      if (this.text.charCodeAt(this.pos) !== 0x22) this.fail("expected a string key");
      const key = this.string();
      if (out.has(key)) this.fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
      this.skipWs();
      if (this.text.charCodeAt(this.pos) !== 0x3a /* : */) this.fail("expected ':' after an object key");
      this.pos++;
      this.skipWs();
      out.set(key, this.value(depth));
      this.skipWs();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x7d) return out;
      if (c !== 0x2c /* , */) this.fail("expected ',' or '}' in an object", this.pos - 1);
    }
  }

  array(depth: number): JsonValue[] {
    this.checkDepth(depth);
    const out: JsonValue[] = [];
    this.pos++; // [
    this.skipWs();
    if (this.text.charCodeAt(this.pos) === 0x5d /* ] */) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      out.push(this.value(depth));
      this.skipWs();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x5d) return out;
      if (c !== 0x2c) this.fail("expected ',' or ']' in an array", this.pos - 1);
    }
  }

  number(): number {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.text);
    if (m === null) this.fail("malformed number");
    this.pos += m[0].length;
    return Number(m[0]);
  }

  string(): string {
    const t = this.text;
    const start = this.pos;
    let i = this.pos + 1; // after the opening quote
    let out = "";
    let runStart = i;
    for (;;) {
      if (i >= t.length) this.fail("unterminated string", start);
      const c = t.charCodeAt(i);
      if (c === 0x22) {
        out += t.slice(runStart, i);
        this.pos = i + 1;
        return out;
      }
      if (c < 0x20) this.fail("unescaped control character in a string", i);
      if (c !== 0x5c /* \ */) {
        i++;
        continue;
      }
      out += t.slice(runStart, i);
      const e = t[i + 1];
      switch (e) {
        case '"':
        case "\\":
        case "/":
          out += e;
          i += 2;
          break;
        case "b":
          out += "\b";
          i += 2;
          break;
        case "f":
          out += "\f";
          i += 2;
          break;
        case "n":
          out += "\n";
          i += 2;
          break;
        case "r":
          out += "\r";
          i += 2;
          break;
        case "t":
          out += "\t";
          i += 2;
          break;
        case "u": {
          const hi = this.hex4(i + 2);
          i += 6;
          if (hi >= 0xdc00 && hi <= 0xdfff) this.fail("lone low surrogate escape", i - 6);
          if (hi >= 0xd800 && hi <= 0xdbff) {
            // A high surrogate must be followed by an escaped low surrogate (UTF-16 pair).
            const lo = t.startsWith("\\u", i) ? this.hex4(i + 2) : -1;
            if (lo < 0xdc00 || lo > 0xdfff) this.fail("lone high surrogate escape", i - 6);
            out += String.fromCharCode(hi, lo);
            i += 6;
          } else out += String.fromCharCode(hi);
          break;
        }
        default:
          this.fail(`invalid escape '\\${e ?? ""}'`, i);
      }
      runStart = i;
    }
  }

  hex4(at: number): number {
    const h = this.text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail("invalid \\u escape", at - 2);
    return Number.parseInt(h, 16);
  }
}
