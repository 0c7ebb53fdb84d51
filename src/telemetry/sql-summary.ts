/**
 * `db.query.summary` of OpenTelemetry's database conventions: a short, low-cardinality name for a SQL
 * statement made of its operations and the tables they act on, in order (`SELECT sessions`,
 * `INSERT turns`, `WITH`-queries as `DELETE memories SELECT`), used as the database span's name. Only
 * keywords and table names are kept: literals, parameters, column names and comments never are, so a
 * summary holds nothing a caller sent.
 */

/** Statements' operations that may also appear inside another statement (subqueries, CTEs). */
const DML = new Set(["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE"]);

/** Operations recognised as the first word of a statement only. */
const STATEMENTS = new Set([
  ...DML,
  "VALUES", "TABLE", "CREATE", "ALTER", "DROP", "TRUNCATE", "CALL", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT",
  "RELEASE", "SET", "SHOW", "RESET", "LOCK", "COPY", "VACUUM", "ANALYZE", "EXPLAIN", "DO", "LISTEN", "UNLISTEN", "NOTIFY", "PREPARE", "EXECUTE",
  "DEALLOCATE", "DISCARD", "GRANT", "REVOKE", "COMMENT", "REFRESH", "CLUSTER", "REINDEX",
]);

/** Words after which a table name follows. */
const TARGET_BEFORE = new Set(["FROM", "JOIN", "INTO", "UPDATE"]);

/** Words that are never a table name or an alias. */
const KEYWORDS = new Set([
  ...DML, "FROM", "WHERE", "GROUP", "ORDER", "LIMIT", "OFFSET", "FETCH", "HAVING", "WINDOW", "UNION", "INTERSECT", "EXCEPT", "ON", "USING", "AS", "SET",
  "VALUES", "RETURNING", "JOIN", "LEFT", "RIGHT", "FULL", "INNER", "OUTER", "CROSS", "NATURAL", "LATERAL", "ONLY", "DEFAULT", "FOR", "AND", "OR",
  "NOT", "CASE", "WHEN", "THEN", "ELSE", "END", "WITH", "DO", "INTO", "IN", "IS", "NULL", "TABLE", "OVERRIDING", "TABLESAMPLE",
]);

/** Words after which UPDATE or DELETE is part of another statement: `FOR UPDATE`, `FOR NO KEY UPDATE`, `ON DELETE CASCADE`, `ON CONFLICT ... DO UPDATE`. */
const NOT_AN_OPERATION_AFTER = new Set(["FOR", "KEY", "ON", "DO"]);

/** Longest summary (the conventions' limit), and how much of a statement is read for one. */
const MAX_SUMMARY = 255;
const MAX_SCAN = 16 * 1024;

type Token = { kind: "word" | "quoted" | "punct" | "other"; text: string };

/** The tokens of `sql` that matter for a summary: words, quoted identifiers, `(`, `)`, `,`, `.`, `;`. */
function* tokens(sql: string): Generator<Token> {
  const n = Math.min(sql.length, MAX_SCAN);
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c <= 32) {
      i++;
    } else if (c === 45 /* - */ && sql.charCodeAt(i + 1) === 45) {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? n : end + 1;
    } else if (c === 47 /* / */ && sql.charCodeAt(i + 1) === 42) {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === 39 /* ' */) {
      // A string: '' inside is an escaped quote, which the loop reads as two strings: harmless.
      const end = sql.indexOf("'", i + 1);
      i = end < 0 ? n : end + 1;
      yield { kind: "other", text: "" };
    } else if (c === 34 /* " */) {
      const end = sql.indexOf('"', i + 1);
      yield { kind: "quoted", text: sql.slice(i + 1, end < 0 ? n : end) };
      i = end < 0 ? n : end + 1;
    } else if (c === 36 /* $ */) {
      // $1 is a parameter; $tag$ ... $tag$ (or $$ ... $$) a dollar-quoted string.
      const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i, i + 64))?.[0];
      if (tag) {
        const end = sql.indexOf(tag, i + tag.length);
        i = end < 0 ? n : end + tag.length;
      } else {
        i++;
        while (i < n && isWordChar(sql.charCodeAt(i))) i++;
      }
      yield { kind: "other", text: "" };
    } else if (isWordStart(c)) {
      const start = i;
      while (i < n && isWordChar(sql.charCodeAt(i))) i++;
      yield { kind: "word", text: sql.slice(start, i) };
    } else if (c === 40 || c === 41 || c === 44 || c === 46 || c === 59) {
      i++;
      yield { kind: "punct", text: String.fromCharCode(c) };
    } else {
      i++;
      while (i < n && !isWordStart(sql.charCodeAt(i)) && "()[],.;'\"$-/ \t\r\n".indexOf(sql[i]) < 0) i++;
      yield { kind: "other", text: "" };
    }
  }
}

function isWordStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c >= 128;
}

function isWordChar(c: number): boolean {
  return isWordStart(c) || (c >= 48 && c <= 57) || c === 36;
}

const isName = (t: Token | undefined): t is Token => t !== undefined && (t.kind === "quoted" || (t.kind === "word" && !KEYWORDS.has(t.text.toUpperCase())));
const isPunct = (t: Token | undefined, text: string) => t !== undefined && t.kind === "punct" && t.text === text;

/** The (schema-qualified) name starting at `ts[i]`, and the index after it; undefined when there is none. */
function nameAt(ts: Token[], i: number): { name: string; next: number } | undefined {
  if (!isName(ts[i])) return undefined;
  let name = ts[i].text;
  let next = i + 1;
  while (isPunct(ts[next], ".") && isName(ts[next + 1])) {
    name += `.${ts[next + 1].text}`;
    next += 2;
  }
  return { name, next };
}

/** The summary of `sql`, e.g. `SELECT sessions participants`; "" when no operation is recognised. */
export function summarize(sql: string): string {
  const ts = [...tokens(sql)];
  const parts: string[] = [];
  let length = -1;
  const add = (part: string) => {
    if (length + 1 + part.length > MAX_SUMMARY) return false;
    parts.push(part);
    length += 1 + part.length;
    return true;
  };
  let statementStart = true;
  scan: for (let i = 0; i < ts.length; i++) {
    const t = ts[i];
    if (t.kind !== "word") {
      if (isPunct(t, ";")) statementStart = true;
      else if (!isPunct(t, "(")) statementStart = false;
      continue;
    }
    const upper = t.text.toUpperCase();
    const previous = ts[i - 1]?.kind === "word" ? ts[i - 1].text.toUpperCase() : "";
    const partOfAnother = NOT_AN_OPERATION_AFTER.has(previous);
    const operation = statementStart ? STATEMENTS.has(upper) : DML.has(upper) && !partOfAnother;
    statementStart = false;
    if (operation && !add(t.text)) break;
    if (!TARGET_BEFORE.has(upper) || partOfAnother) continue;
    // The table(s): `name [AS] [alias]`, and for FROM more of them after commas. A name followed by
    // `(` is a function (unnest($1)), except after INTO, where the column list follows.
    let j = i + 1;
    for (;;) {
      while (ts[j]?.kind === "word" && /^(ONLY|LATERAL)$/i.test(ts[j].text)) j++;
      const found = nameAt(ts, j);
      if (!found || (upper !== "INTO" && isPunct(ts[found.next], "("))) break;
      if (!add(found.name)) break scan;
      j = found.next;
      if (ts[j]?.kind === "word" && ts[j].text.toUpperCase() === "AS") j++;
      if (isName(ts[j])) j++;
      if (upper !== "FROM" || !isPunct(ts[j], ",")) break;
      j++;
    }
    i = Math.max(i, j - 1);
  }
  return parts.join(" ");
}
