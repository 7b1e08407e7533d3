/**
 * The playground's expression language: a small recursive-descent parser (no `eval`, no `new Function`) for
 * expressions in x and y, and a compiler from its syntax tree to chainrule ops, so that `graph` can trace it.
 *
 *   expr    := term (("+" | "-") term)*
 *   term    := unary (("*" | "/") unary | unary)*        a unary right after another is multiplied: 2x, 3(x+1)
 *   unary   := ("-" | "+") unary | power
 *   power   := primary ("^" unary)?                      right-associative: 2^-x, x^y^2 = x^(y^2); ** works too
 *   primary := number | name | name "(" expr ")" | "(" expr ")"
 *
 * As in mathematics, -x^2 is -(x^2). Names are x, y, the constants pi and e, and the functions listed in
 * {@link FUNCTIONS}. A mistake throws an {@link ExprError} carrying the position (0-based) it was found at.
 */
import * as cr from "../../src/index.ts";

/** A syntax tree node. `pos` is where it starts in the source. */
export type Expr =
  | { kind: "num"; value: number; pos: number }
  | { kind: "var"; name: "x" | "y"; pos: number }
  | { kind: "neg"; arg: Expr; pos: number }
  | { kind: "bin"; op: "+" | "-" | "*" | "/" | "^"; left: Expr; right: Expr; pos: number }
  | { kind: "call"; fn: string; arg: Expr; pos: number };

/** A syntax error at a position of the source. */
export class ExprError extends SyntaxError {
  override name = "ExprError";
  /** 0-based index into the source where the problem is. */
  readonly pos: number;
  constructor(message: string, pos: number) {
    super(message);
    this.pos = pos;
  }
}

/** One-argument functions: the tensor op, and the same function on a plain number (constant folding). */
export const FUNCTIONS: Readonly<
  Record<string, { op: (t: cr.Tensor) => cr.Tensor; num: (v: number) => number }>
> = {
  sin: { op: (t) => t.sin(), num: Math.sin },
  cos: { op: (t) => t.cos(), num: Math.cos },
  tan: { op: (t) => t.tan(), num: Math.tan },
  exp: { op: (t) => t.exp(), num: Math.exp },
  log: { op: (t) => t.log(), num: Math.log },
  sqrt: { op: (t) => t.sqrt(), num: Math.sqrt },
  abs: { op: (t) => t.abs(), num: Math.abs },
  tanh: { op: (t) => t.tanh(), num: Math.tanh },
  sigmoid: { op: (t) => t.sigmoid(), num: (v) => 1 / (1 + Math.exp(-v)) },
  relu: { op: (t) => t.relu(), num: (v) => Math.max(v, 0) },
  softplus: { op: (t) => t.softplus(), num: (v) => Math.log1p(Math.exp(v)) },
};

const CONSTANTS: Readonly<Record<string, number>> = { pi: Math.PI, e: Math.E };

type Token =
  | { t: "num"; value: number; pos: number; end: number }
  | { t: "name"; name: string; pos: number; end: number }
  | { t: "op"; op: string; pos: number; end: number }
  | { t: "end"; pos: number; end: number };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\n") {
      i++;
      continue;
    }
    const num = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(src.slice(i));
    if (num !== null) {
      out.push({ t: "num", value: Number(num[0]), pos: i, end: i + num[0].length });
      i += num[0].length;
      continue;
    }
    const name = /^[A-Za-z_]\w*/.exec(src.slice(i));
    if (name !== null) {
      out.push({ t: "name", name: name[0], pos: i, end: i + name[0].length });
      i += name[0].length;
      continue;
    }
    if (src.startsWith("**", i)) {
      out.push({ t: "op", op: "^", pos: i, end: i + 2 });
      i += 2;
      continue;
    }
    if ("+-*/^()".includes(c)) {
      out.push({ t: "op", op: c, pos: i, end: i + 1 });
      i++;
      continue;
    }
    throw new ExprError(`unexpected character "${c}" at ${i + 1}`, i);
  }
  out.push({ t: "end", pos: src.length, end: src.length });
  return out;
}

const known = () => `x, y, pi, e, or a function: ${Object.keys(FUNCTIONS).join(", ")}`;

/** Parse `src` into a syntax tree; throws {@link ExprError} with the position of the first mistake. */
export function parse(src: string): Expr {
  const toks = tokenize(src);
  let k = 0;
  const peek = () => toks[k];
  const isOp = (tok: Token, op: string) => tok.t === "op" && tok.op === op;
  const describe = (tok: Token) =>
    tok.t === "end" ? "the end" : `"${src.slice(tok.pos, tok.end)}" at ${tok.pos + 1}`;

  const expr = (): Expr => {
    let left = term();
    for (let tok = peek(); isOp(tok, "+") || isOp(tok, "-"); tok = peek()) {
      k++;
      left = { kind: "bin", op: (tok as { op: "+" | "-" }).op, left, right: term(), pos: tok.pos };
    }
    return left;
  };
  const startsPrimary = (tok: Token) => tok.t === "num" || tok.t === "name" || isOp(tok, "(");
  const term = (): Expr => {
    let left = unary();
    for (let tok = peek(); ; tok = peek()) {
      if (isOp(tok, "*") || isOp(tok, "/")) {
        k++;
        left = { kind: "bin", op: (tok as { op: "*" | "/" }).op, left, right: unary(), pos: tok.pos };
      } else if (startsPrimary(tok)) {
        left = { kind: "bin", op: "*", left, right: unary(), pos: tok.pos }; // implicit: 2x, x(y+1)
      } else return left;
    }
  };
  const unary = (): Expr => {
    const tok = peek();
    if (isOp(tok, "-")) {
      k++;
      return { kind: "neg", arg: unary(), pos: tok.pos };
    }
    if (isOp(tok, "+")) {
      k++;
      return unary();
    }
    return power();
  };
  const power = (): Expr => {
    const base = primary();
    const tok = peek();
    if (!isOp(tok, "^")) return base;
    k++;
    return { kind: "bin", op: "^", left: base, right: unary(), pos: tok.pos };
  };
  const closeParen = (open: Token) => {
    const tok = peek();
    if (!isOp(tok, ")")) {
      throw new ExprError(
        `expected ")" to close the "(" at ${open.pos + 1}, found ${describe(tok)}`,
        tok.pos,
      );
    }
    k++;
  };
  const primary = (): Expr => {
    const tok = peek();
    if (tok.t === "num") {
      k++;
      return { kind: "num", value: tok.value, pos: tok.pos };
    }
    if (tok.t === "name") {
      k++;
      const name = tok.name;
      if (name === "x" || name === "y") return { kind: "var", name, pos: tok.pos };
      if (name in CONSTANTS) return { kind: "num", value: CONSTANTS[name], pos: tok.pos };
      if (name in FUNCTIONS) {
        const open = peek();
        if (!isOp(open, "(")) {
          throw new ExprError(`${name} needs parentheses: ${name}(...), found ${describe(open)}`, open.pos);
        }
        k++;
        const arg = expr();
        closeParen(open);
        return { kind: "call", fn: name, arg, pos: tok.pos };
      }
      throw new ExprError(`unknown name "${name}" at ${tok.pos + 1}; use ${known()}`, tok.pos);
    }
    if (isOp(tok, "(")) {
      k++;
      const inner = expr();
      closeParen(tok);
      return inner;
    }
    throw new ExprError(`expected a number, x, y, a function or "(", found ${describe(tok)}`, tok.pos);
  };

  const tree = expr();
  const rest = peek();
  if (rest.t !== "end") throw new ExprError(`unexpected ${describe(rest)}`, rest.pos);
  return tree;
}

/** The expression back as text, fully parenthesised (for checking how it was read). */
export function show(e: Expr): string {
  switch (e.kind) {
    case "num":
      return String(e.value);
    case "var":
      return e.name;
    case "neg":
      return `(-${show(e.arg)})`;
    case "bin":
      return `(${show(e.left)} ${e.op} ${show(e.right)})`;
    case "call":
      return `${e.fn}(${show(e.arg)})`;
  }
}

/** Which of x and y an expression uses. */
export function variables(e: Expr): Set<"x" | "y"> {
  const out = new Set<"x" | "y">();
  const walk = (n: Expr) => {
    if (n.kind === "var") out.add(n.name);
    else if (n.kind === "neg" || n.kind === "call") walk(n.arg);
    else if (n.kind === "bin") {
      walk(n.left);
      walk(n.right);
    }
  };
  walk(e);
  return out;
}

const BINARY = {
  "+": [cr.add, (a: number, b: number) => a + b],
  "-": [cr.sub, (a: number, b: number) => a - b],
  "*": [cr.mul, (a: number, b: number) => a * b],
  "/": [cr.div, (a: number, b: number) => a / b],
  "^": [cr.pow, (a: number, b: number) => a ** b],
} as const;

/**
 * The function (x, y) => value of the expression, built from chainrule ops (constant parts are folded into
 * numbers, which the ops take as literals). An expression without x and y gives a constant tensor of x's dtype.
 */
export function compile(e: Expr): (x: cr.Tensor, y: cr.Tensor) => cr.Tensor {
  const run = (n: Expr, x: cr.Tensor, y: cr.Tensor): cr.Tensor | number => {
    switch (n.kind) {
      case "num":
        return n.value;
      case "var":
        return n.name === "x" ? x : y;
      case "neg": {
        const a = run(n.arg, x, y);
        return typeof a === "number" ? -a : a.neg();
      }
      case "call": {
        const a = run(n.arg, x, y);
        const f = FUNCTIONS[n.fn];
        return typeof a === "number" ? f.num(a) : f.op(a);
      }
      case "bin": {
        const a = run(n.left, x, y);
        const b = run(n.right, x, y);
        const [op, num] = BINARY[n.op];
        return typeof a === "number" && typeof b === "number" ? num(a, b) : op(a, b);
      }
    }
  };
  return (x, y) => {
    const v = run(e, x, y);
    return typeof v === "number" ? cr.fullLike(x, v) : v;
  };
}
