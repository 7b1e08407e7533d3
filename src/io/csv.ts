/**
 * CSV (RFC 4180) reading, and conversion of numeric CSV to a dense Float64Array matrix.
 *
 * RFC 4180: records end with CRLF (LF and lone CR are accepted too); fields are separated by the delimiter;
 * a field may be enclosed in double quotes, and then may contain delimiters, line breaks and doubled quotes
 * ("" stands for "). Every record must have the same number of fields. Beyond the RFC, as most readers do: a
 * leading UTF-8 byte-order mark is dropped, empty lines are skipped, and a quote inside an unquoted field is
 * kept as a literal character. After a closing quote only a delimiter or a line break may follow.
 */
import { FormatError } from "../errors.ts";

/** Options for {@link parseCsv}. */
export interface CsvOptions {
  /** First record holds the column names (default true). Without it, columns are named "0", "1", ... */
  header?: boolean;
  /** Field separator, one character other than a quote or a line break (default ","). */
  delimiter?: string;
}

/** A parsed CSV table: column names and the data records (all of the same length). */
export interface CsvTable {
  columns: string[];
  rows: string[][];
  /** 1-based line number where each data row starts (for error messages). */
  lines: number[];
}

/**
 * Parse CSV text. Throws a FormatError naming the line for an unterminated quote, text after a closing quote,
 * or a record whose field count differs from the first record's.
 *
 * @example
 * parseCsv('name,note\nAda,"likes ""maths"", logic"\n');
 * // { columns: ["name", "note"], rows: [["Ada", 'likes "maths", logic']], lines: [2] }
 */
export function parseCsv(text: string, opts: CsvOptions = {}): CsvTable {
  const op = "parseCsv";
  const delimiter = opts.delimiter ?? ",";
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === "\n" || delimiter === "\r") {
    throw new FormatError(
      `${op}: delimiter must be one character other than '"' or a line break, got ${JSON.stringify(delimiter)}`,
    );
  }
  const records: string[][] = [];
  const lines: number[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const n = text.length;

  while (i < n) {
    // Skip empty lines between records.
    const c0 = text[i];
    if (c0 === "\n" || c0 === "\r") {
      i += c0 === "\r" && text[i + 1] === "\n" ? 2 : 1;
      line++;
      continue;
    }
    const startLine = line;
    const record: string[] = [];
    for (;;) {
      // One field starts at i.
      let field: string;
      if (text[i] === '"') {
        const quoteLine = line;
        let j = i + 1;
        field = "";
        for (;;) {
          const q = text.indexOf('"', j);
          if (q < 0) {
            throw new FormatError(`${op}: line ${quoteLine}: quoted field is never closed (missing '"')`);
          }
          const chunk = text.slice(j, q);
          field += chunk;
          line += countBreaks(chunk);
          if (text[q + 1] === '"') {
            field += '"';
            j = q + 2;
          } else {
            i = q + 1;
            break;
          }
        }
        const after = text[i];
        if (i < n && after !== delimiter && after !== "\n" && after !== "\r") {
          throw new FormatError(
            `${op}: line ${line}: unexpected ${JSON.stringify(after)} after a closing quote (expected ${JSON.stringify(delimiter)} or a line break)`,
          );
        }
      } else {
        let j = i;
        while (j < n) {
          const c = text[j];
          if (c === delimiter || c === "\n" || c === "\r") break;
          j++;
        }
        field = text.slice(i, j);
        i = j;
      }
      record.push(field);
      if (i < n && text[i] === delimiter) {
        i++;
        continue; // another field follows (possibly empty, at end of line)
      }
      // End of record: consume the line break.
      if (i < n) {
        i += text[i] === "\r" && text[i + 1] === "\n" ? 2 : 1;
        line++;
      }
      break;
    }
    if (records.length > 0 && record.length !== records[0].length) {
      throw new FormatError(
        `${op}: line ${startLine}: record has ${record.length} fields but the first record has ${records[0].length}`,
      );
    }
    records.push(record);
    lines.push(startLine);
  }

  const header = opts.header ?? true;
  if (header) {
    if (records.length === 0) return { columns: [], rows: [], lines: [] };
    return { columns: records[0], rows: records.slice(1), lines: lines.slice(1) };
  }
  const width = records.length > 0 ? records[0].length : 0;
  return { columns: Array.from({ length: width }, (_, k) => String(k)), rows: records, lines };
}

function countBreaks(s: string): number {
  let k = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\n") k++;
    else if (c === "\r" && s[i + 1] !== "\n") k++;
  }
  return k;
}

/** Options for {@link csvToNumbers}. */
export interface CsvNumbersOptions extends CsvOptions {
  /** Value for empty cells; without it an empty cell is an error. NaN is a common choice. */
  emptyAs?: number;
}

/** A numeric matrix read from CSV: `rows` x `cols`, row-major in `data`. */
export interface CsvMatrix {
  columns: string[];
  data: Float64Array;
  rows: number;
  cols: number;
}

// A decimal number as people write it (no hex, no empty string, unlike Number()).
const NUMBER_RE = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const SPECIAL: Record<string, number> = {
  nan: Number.NaN,
  inf: Number.POSITIVE_INFINITY,
  "+inf": Number.POSITIVE_INFINITY,
  "-inf": Number.NEGATIVE_INFINITY,
  infinity: Number.POSITIVE_INFINITY,
  "+infinity": Number.POSITIVE_INFINITY,
  "-infinity": Number.NEGATIVE_INFINITY,
};

/**
 * Read CSV text (or an already parsed table) as a Float64Array matrix. Cells may have surrounding spaces;
 * NaN, inf and infinity (any case, optionally signed) are accepted. A non-numeric cell is a FormatError
 * naming its row, line and column.
 *
 * @example
 * const m = csvToNumbers("x,y\n1,2\n3,4.5\n");
 * // { columns: ["x", "y"], data: Float64Array [1, 2, 3, 4.5], rows: 2, cols: 2 }
 */
export function csvToNumbers(
  input: string | { columns: string[]; rows: string[][]; lines?: number[] },
  opts: CsvNumbersOptions = {},
): CsvMatrix {
  const table = typeof input === "string" ? parseCsv(input, opts) : input;
  const rows = table.rows.length;
  const cols = rows > 0 ? table.rows[0].length : table.columns.length;
  if (rows > 0 && table.columns.length !== cols) {
    throw new FormatError(
      `csvToNumbers: the header has ${table.columns.length} columns but the rows have ${cols}`,
    );
  }
  const data = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = table.rows[r];
    if (row.length !== cols) {
      throw new FormatError(`csvToNumbers: row ${r + 1} has ${row.length} cells, expected ${cols}`);
    }
    for (let c = 0; c < cols; c++) {
      const cell = row[c].trim();
      let v: number | undefined;
      if (NUMBER_RE.test(cell)) v = Number(cell);
      else if (cell === "" && opts.emptyAs !== undefined) v = opts.emptyAs;
      else v = SPECIAL[cell.toLowerCase()];
      if (v === undefined) {
        const where = table.lines?.[r] !== undefined ? ` (line ${table.lines[r]})` : "";
        const what = cell === "" ? "is empty (pass emptyAs to fill empty cells)" : "is not a number";
        throw new FormatError(
          `csvToNumbers: row ${r + 1}${where}, column '${table.columns[c]}' (${c + 1}): ${JSON.stringify(row[c])} ${what}`,
        );
      }
      data[r * cols + c] = v;
    }
  }
  return { columns: [...table.columns], data, rows, cols };
}
