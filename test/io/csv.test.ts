/**
 * CSV: RFC 4180 quoting (delimiters, doubled quotes and line breaks inside quotes), line endings, headers,
 * delimiters, error lines, and numeric conversion with named rows and columns in errors.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { FormatError } from "../../src/errors.ts";
import { csvToNumbers, parseCsv } from "../../src/io/csv.ts";

function throwsFormat(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FormatError, `expected FormatError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test("header and plain records", () => {
  const t = parseCsv("a,b,c\n1,2,3\n4,5,6\n");
  assert.deepEqual(t.columns, ["a", "b", "c"]);
  assert.deepEqual(t.rows, [
    ["1", "2", "3"],
    ["4", "5", "6"],
  ]);
  assert.deepEqual(t.lines, [2, 3]);
});

test("RFC 4180 quoting: delimiters, doubled quotes and line breaks inside quotes", () => {
  const text = 'name,quote,n\r\n"Smith, J.","He said ""hi""",1\r\n"multi\r\nline\nfield","",2\r\n';
  const t = parseCsv(text);
  assert.deepEqual(t.rows, [
    ["Smith, J.", 'He said "hi"', "1"],
    ["multi\r\nline\nfield", "", "2"],
  ]);
  assert.deepEqual(t.lines, [2, 3]);
});

test("line endings CRLF, LF and CR; no final newline; empty fields; BOM; blank lines", () => {
  const expected = [
    ["1", "", "3"],
    ["", "", ""],
  ];
  for (const nl of ["\r\n", "\n", "\r"]) {
    const t = parseCsv(`x,y,z${nl}1,,3${nl},,`);
    assert.deepEqual(t.rows, expected, JSON.stringify(nl));
  }
  assert.deepEqual(parseCsv("\uFEFFa,b\n1,2").columns, ["a", "b"]);
  const blank = parseCsv("a,b\n\n1,2\n\r\n3,4\n\n");
  assert.deepEqual(blank.rows, [
    ["1", "2"],
    ["3", "4"],
  ]);
  assert.deepEqual(blank.lines, [3, 5]);
  assert.deepEqual(parseCsv(""), { columns: [], rows: [], lines: [] });
  assert.deepEqual(parseCsv("a,b\n").rows, []);
});

test("a quote inside an unquoted field is literal", () => {
  assert.deepEqual(parseCsv("h\n5'11\"\n", {}).rows, [["5'11\""]]);
});

test("no header: columns are named by index", () => {
  const t = parseCsv("1;2\n3;4", { header: false, delimiter: ";" });
  assert.deepEqual(t.columns, ["0", "1"]);
  assert.deepEqual(t.rows, [
    ["1", "2"],
    ["3", "4"],
  ]);
  assert.deepEqual(t.lines, [1, 2]);
  const tabs = parseCsv('a\tb\n"x\ty"\tz\n', { delimiter: "\t" });
  assert.deepEqual(tabs.rows, [["x\ty", "z"]]);
});

test("errors name the line", () => {
  throwsFormat(() => parseCsv('a,b\n1,"open\n2,3\n'), /line 2: quoted field is never closed/);
  throwsFormat(() => parseCsv('a,b\n"x"y,2\n'), /line 2: unexpected "y" after a closing quote/);
  throwsFormat(
    () => parseCsv('a,b\n"multi\nline",2\n3\n'),
    /line 4: record has 1 fields but the first record has 2/,
  );
  throwsFormat(() => parseCsv("a,b\n1,2,3\n"), /line 2: record has 3 fields but the first record has 2/);
  throwsFormat(() => parseCsv("a\n", { delimiter: "" }), /delimiter must be one character/);
  throwsFormat(() => parseCsv("a\n", { delimiter: '"' }), /delimiter must be one character/);
  throwsFormat(() => parseCsv("a\n", { delimiter: "::" }), /delimiter must be one character/);
});

test("csvToNumbers builds a row-major Float64Array", () => {
  const m = csvToNumbers("x,y,z\n1, -2.5 ,3e2\n.5,+7,-1E-3\nNaN,inf,-Infinity\n");
  assert.deepEqual(m.columns, ["x", "y", "z"]);
  assert.equal(m.rows, 3);
  assert.equal(m.cols, 3);
  assert.ok(m.data instanceof Float64Array);
  assert.deepEqual([...m.data], [1, -2.5, 300, 0.5, 7, -0.001, Number.NaN, Infinity, -Infinity]);
  const parsed = parseCsv("1,2\n3,4", { header: false });
  assert.deepEqual([...csvToNumbers(parsed).data], [1, 2, 3, 4]);
  const headerOnly = csvToNumbers("a,b\n");
  assert.deepEqual([headerOnly.rows, headerOnly.cols, headerOnly.data.length], [0, 2, 0]);
});

test("csvToNumbers names the row, line and column of a bad cell", () => {
  throwsFormat(
    () => csvToNumbers("age,height\n31,1.80\nabc,1.75\n"),
    /row 2 \(line 3\), column 'age' \(1\): "abc" is not a number/,
  );
  throwsFormat(
    () => csvToNumbers("a,b\n1,0x10\n"),
    /row 1 \(line 2\), column 'b' \(2\): "0x10" is not a number/,
  );
  throwsFormat(() => csvToNumbers("a,b\n1,\n"), /column 'b' \(2\): "" is empty \(pass emptyAs/);
  throwsFormat(() => csvToNumbers("a,b\n1,2 3\n"), /"2 3" is not a number/);
  throwsFormat(() => csvToNumbers("a,b\n1,1e\n"), /"1e" is not a number/);
  const filled = csvToNumbers("a,b\n1,\n, 2\n", { emptyAs: Number.NaN });
  assert.deepEqual([...filled.data], [1, Number.NaN, Number.NaN, 2]);
  throwsFormat(
    () => csvToNumbers({ columns: ["a"], rows: [["1", "2"]] }),
    /the header has 1 columns but the rows have 2/,
  );
});
