/**
 * Confusion matrices for classifiers: `confusionMatrix` counts (true class, predicted class) pairs, and
 * `confusionMatrixSvg` draws them as a standalone SVG heat map. Rows are the true class and columns the
 * prediction; each cell shows its count and is coloured by its share of the row (so a rare class is as
 * readable as a common one); the right-hand column gives per-class accuracy (recall = diagonal / row total)
 * and the title gives the overall accuracy.
 */
import { ShapeError } from "../errors.ts";
import { escapeXml, px, svgDocument, textEl, textWidth } from "./svg.ts";

/**
 * Count predictions per (true, predicted) class pair: `m[t][p]` is how many samples of true class t were
 * predicted as p. Classes are integers in [0, k).
 *
 * @example
 * confusionMatrix([0, 1, 1], [0, 1, 0], 2) // [[1, 1], [0, 1]]
 */
export function confusionMatrix(pred: ArrayLike<number>, truth: ArrayLike<number>, k: number): number[][] {
  if (!(Number.isInteger(k) && k >= 1)) {
    throw new RangeError(`confusionMatrix: k (number of classes) must be a positive integer, got ${k}`);
  }
  if (pred.length !== truth.length) {
    throw new ShapeError(
      `confusionMatrix: pred has length ${pred.length} but truth has length ${truth.length}; expected equal lengths`,
    );
  }
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i]!;
    const t = truth[i]!;
    if (!(Number.isInteger(p) && p >= 0 && p < k) || !(Number.isInteger(t) && t >= 0 && t < k)) {
      throw new RangeError(
        `confusionMatrix: at index ${i} pred = ${p}, truth = ${t}; expected integers in [0, ${k})`,
      );
    }
    m[t]![p]!++;
  }
  return m;
}

/** Options of {@link confusionMatrixSvg}. */
export interface ConfusionSvgOptions {
  /** Title prefix; the overall accuracy is appended (default "Confusion matrix"). */
  title?: string;
  /** Cell side in px (default: 48 for few classes, shrinking to fit about 520 px, at least 14). */
  cellSize?: number;
}

/** White -> dark blue ramp ("Blues"-like), t in [0, 1]. */
const BLUES: readonly (readonly [number, number, number])[] = [
  [247, 251, 255],
  [198, 219, 239],
  [107, 174, 214],
  [33, 113, 181],
  [8, 48, 107],
];

function blues(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (BLUES.length - 1);
  const i = Math.min(BLUES.length - 2, Math.floor(x));
  const f = x - i;
  const a = BLUES[i]!;
  const b = BLUES[i + 1]!;
  const hex = (j: number) =>
    Math.round(a[j]! + f * (b[j]! - a[j]!))
      .toString(16)
      .padStart(2, "0");
  return `#${hex(0)}${hex(1)}${hex(2)}`;
}

function pct(num: number, den: number): string {
  return den > 0 ? `${((100 * num) / den).toFixed(1)}%` : "n/a";
}

/**
 * A confusion matrix as a standalone SVG heat map (row = true class, column = predicted class, colour =
 * row-normalised share, counts in the cells, per-class accuracy on the right, overall accuracy in the title).
 * Hovering a cell in a browser shows its details.
 *
 * @example
 * const m = confusionMatrix(predictions, labels, 10);
 * writeFileSync("confusion.svg", confusionMatrixSvg(m, ["T-shirt", "Trouser", ...]));
 */
export function confusionMatrixSvg(
  matrix: number[][],
  labels?: string[],
  opts: ConfusionSvgOptions = {},
): string {
  const k = matrix.length;
  if (k === 0)
    throw new ShapeError("confusionMatrixSvg: matrix is empty; expected a k x k matrix with k >= 1");
  matrix.forEach((row, i) => {
    if (row.length !== k) {
      throw new ShapeError(
        `confusionMatrixSvg: row ${i} has ${row.length} entries in a matrix with ${k} rows; expected a square matrix`,
      );
    }
    row.forEach((v, j) => {
      if (!(Number.isFinite(v) && v >= 0)) {
        throw new RangeError(`confusionMatrixSvg: matrix[${i}][${j}] = ${v}; expected a non-negative count`);
      }
    });
  });
  const names = labels ?? Array.from({ length: k }, (_, i) => String(i));
  if (names.length !== k) {
    throw new ShapeError(
      `confusionMatrixSvg: ${names.length} labels for a ${k} x ${k} matrix; expected ${k}`,
    );
  }

  const rowSum = matrix.map((r) => r.reduce((a, b) => a + b, 0));
  const total = rowSum.reduce((a, b) => a + b, 0);
  let correct = 0;
  for (let i = 0; i < k; i++) correct += matrix[i]![i]!;
  const title = `${opts.title ?? "Confusion matrix"} (accuracy ${pct(correct, total)}, ${correct}/${total})`;

  const cell = opts.cellSize ?? Math.max(14, Math.min(48, Math.floor(520 / k)));
  let maxDigits = 1;
  for (const row of matrix) for (const v of row) maxDigits = Math.max(maxDigits, formatCount(v).length);
  const cellFont = Math.min(12, (cell * 0.9) / (0.6 * maxDigits), cell * 0.45);
  let labelW = 0;
  for (const n of names) labelW = Math.max(labelW, textWidth(n, 11));
  // Column labels are rotated when they do not fit under a cell.
  const rotate = labelW > cell - 4;
  const colLabelH = rotate ? labelW * 0.72 + 14 : 18;

  const left = 12 + 20 + labelW + 8;
  const top = 48;
  const gridW = k * cell;
  const accW = 64;
  const titleW = textWidth(title, 15);
  const width = Math.max(left + gridW + 10 + accW + 12, titleW + 24);
  const height = top + gridW + colLabelH + 30;

  const body: string[] = [];
  body.push(textEl(width / 2, 26, title, "middle", `font-size="15" font-weight="bold" fill="#111"`));
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const v = matrix[i]![j]!;
      const share = rowSum[i]! > 0 ? v / rowSum[i]! : 0;
      const x = left + j * cell;
      const y = top + i * cell;
      const tip = `true ${names[i]}, predicted ${names[j]}: ${v} (${pct(v, rowSum[i]!)} of row)`;
      body.push(
        `<g><title>${escapeXml(tip)}</title>` +
          `<rect x="${px(x)}" y="${px(y)}" width="${px(cell)}" height="${px(cell)}" fill="${blues(share)}"/>`,
      );
      if (cellFont >= 5) {
        const color = share > 0.5 ? "#ffffff" : "#222222";
        const weight = i === j ? ` font-weight="bold"` : "";
        body.push(
          textEl(
            x + cell / 2,
            y + cell / 2 + cellFont * 0.35,
            formatCount(v),
            "middle",
            `font-size="${px(cellFont)}" fill="${color}"${weight}`,
          ),
        );
      }
      body.push("</g>");
    }
  }
  // Thin cell borders and a frame, so empty (white) cells still read as a grid.
  body.push(`<g stroke="#d0d0d0" stroke-width="0.5">`);
  for (let i = 1; i < k; i++) {
    const o = px(top + i * cell);
    const c = px(left + i * cell);
    body.push(`<line x1="${px(left)}" y1="${o}" x2="${px(left + gridW)}" y2="${o}"/>`);
    body.push(`<line x1="${c}" y1="${px(top)}" x2="${c}" y2="${px(top + gridW)}"/>`);
  }
  body.push("</g>");
  body.push(
    `<rect x="${px(left)}" y="${px(top)}" width="${px(gridW)}" height="${px(gridW)}" fill="none" stroke="#333333"/>`,
  );

  body.push(`<g fill="#333333">`);
  names.forEach((n, i) => {
    body.push(textEl(left - 6, top + (i + 0.5) * cell + 4, n, "end"));
    const cx = left + (i + 0.5) * cell;
    const ty = top + gridW + 14;
    if (rotate) body.push(textEl(cx, ty, n, "end", `transform="rotate(-40 ${px(cx)} ${px(ty)})"`));
    else body.push(textEl(cx, ty, n, "middle"));
  });
  body.push("</g>");

  // Per-class accuracy column.
  const ax = left + gridW + 10;
  body.push(
    textEl(ax + accW / 2, top - 6, "accuracy", "middle", `font-size="11" font-weight="bold" fill="#222"`),
  );
  body.push(`<g font-size="${px(Math.min(11, cell * 0.45))}" fill="#222">`);
  for (let i = 0; i < k; i++) {
    body.push(textEl(ax + accW / 2, top + (i + 0.5) * cell + 4, pct(matrix[i]![i]!, rowSum[i]!), "middle"));
  }
  body.push("</g>");

  const lx = 16;
  const ly = top + gridW / 2;
  body.push(
    textEl(
      lx,
      ly,
      "true class",
      "middle",
      `font-size="13" fill="#222" transform="rotate(-90 ${px(lx)} ${px(ly)})"`,
    ),
  );
  body.push(
    textEl(
      left + gridW / 2,
      top + gridW + colLabelH + 18,
      "predicted class",
      "middle",
      `font-size="13" fill="#222"`,
    ),
  );
  return svgDocument(width, height, body, title);
}

/** Counts as integers when they are, else 3 significant digits (for averaged or weighted matrices). */
function formatCount(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
}
