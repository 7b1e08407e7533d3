/**
 * A tiny XML well-formedness checker for the SVG tests (written here so the tests need no XML library):
 * one optional XML declaration, comments, start/end/empty tags with quoted attributes, a tag stack that must
 * balance, exactly one root element, no duplicate attributes, and only the five predefined entities or
 * numeric character references in text and attribute values. Returns a flat list of elements with their
 * attributes and decoded text, so tests can look for tick labels and legend names.
 */

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  /** Decoded text directly inside this element. */
  text: string;
  /** Names of the enclosing elements, outermost first. */
  ancestors: string[];
}

const NAME = "[A-Za-z_][A-Za-z0-9_.:-]*";
const ENTITY = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);/g;

function decode(s: string, where: string): string {
  const stripped = s.replace(ENTITY, "");
  if (stripped.includes("&")) throw new Error(`xml: bare or unknown '&' in ${where}: ${JSON.stringify(s)}`);
  if (stripped.includes("<")) throw new Error(`xml: raw '<' in ${where}: ${JSON.stringify(s)}`);
  return s.replace(ENTITY, (e) => {
    if (e === "&amp;") return "&";
    if (e === "&lt;") return "<";
    if (e === "&gt;") return ">";
    if (e === "&quot;") return '"';
    if (e === "&apos;") return "'";
    const code = e[2] === "x" ? Number.parseInt(e.slice(3, -1), 16) : Number.parseInt(e.slice(2, -1), 10);
    return String.fromCodePoint(code);
  });
}

/** Parse `doc`, throwing an Error that says what is wrong if it is not well-formed XML. */
export function parseXml(doc: string): XmlElement[] {
  let i = 0;
  const decl = /^<\?xml[^?]*\?>/.exec(doc);
  if (decl) i = decl[0].length;
  const stack: XmlElement[] = [];
  const all: XmlElement[] = [];
  let roots = 0;
  const tagRe = new RegExp(`^<(/?)(${NAME})((?:\\s+${NAME}\\s*=\\s*"[^"]*")*)\\s*(/?)>`);
  const attrRe = new RegExp(`(${NAME})\\s*=\\s*"([^"]*)"`, "g");
  while (i < doc.length) {
    const lt = doc.indexOf("<", i);
    const text = doc.slice(i, lt < 0 ? doc.length : lt);
    if (text.length > 0) {
      const decoded = decode(text, "text");
      if (stack.length === 0) {
        if (decoded.trim() !== "")
          throw new Error(`xml: text outside the root element: ${JSON.stringify(text)}`);
      } else {
        stack[stack.length - 1]!.text += decoded;
      }
    }
    if (lt < 0) break;
    if (doc.startsWith("<!--", lt)) {
      const end = doc.indexOf("-->", lt + 4);
      if (end < 0) throw new Error("xml: unterminated comment");
      i = end + 3;
      continue;
    }
    const m = tagRe.exec(doc.slice(lt));
    if (!m) throw new Error(`xml: malformed tag at offset ${lt}: ${JSON.stringify(doc.slice(lt, lt + 60))}`);
    const [whole, close, name, attrText, selfClose] = m;
    i = lt + whole.length;
    if (close) {
      if (attrText || selfClose) throw new Error(`xml: end tag </${name}> with attributes or '/>'`);
      const open = stack.pop();
      if (!open || open.name !== name) {
        throw new Error(`xml: </${name}> does not close <${open?.name ?? "(nothing)"}>`);
      }
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of attrText!.matchAll(attrRe)) {
      if (a[1]! in attrs) throw new Error(`xml: duplicate attribute ${a[1]} on <${name}>`);
      attrs[a[1]!] = decode(a[2]!, `attribute ${a[1]} of <${name}>`);
    }
    if (stack.length === 0) {
      roots++;
      if (roots > 1) throw new Error(`xml: second root element <${name}>`);
    }
    const el: XmlElement = { name: name!, attrs, text: "", ancestors: stack.map((e) => e.name) };
    all.push(el);
    if (!selfClose) stack.push(el);
  }
  if (stack.length > 0) throw new Error(`xml: unclosed <${stack[stack.length - 1]!.name}>`);
  if (roots !== 1) throw new Error("xml: no root element");
  return all;
}

/** Decoded contents of all `<text>` elements. */
export function texts(els: XmlElement[]): string[] {
  return els.filter((e) => e.name === "text").map((e) => e.text);
}
