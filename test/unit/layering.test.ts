/**
 * The layering rules of `npm run lint` (.ci/dependency-cruiser.cjs) hold for src/, and they do catch
 * what they forbid: a fixture tree with a domain file importing db/ (and Connect), a db file importing
 * handlers/, and a cycle is reported rule by rule.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { cruise, type IConfiguration, type IReporterOutput } from "dependency-cruiser";
import { afterAll, describe, expect, it } from "vitest";

const config = createRequire(import.meta.url)(path.resolve(".ci/dependency-cruiser.cjs")) as IConfiguration;

/** The violations (rule name, from, to) of cruising `dirs` from `cwd` with the project's rules. */
async function violations(dirs: string[], cwd: string): Promise<string[]> {
  const here = process.cwd();
  process.chdir(cwd);
  try {
    const result: IReporterOutput = await cruise(dirs, { ruleSet: { forbidden: config.forbidden }, ...config.options, tsConfig: undefined, validate: true } as never);
    const output = typeof result.output === "string" ? JSON.parse(result.output) : result.output;
    return output.summary.violations.map((v: { rule: { name: string }; from: string; to: string }) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
  } finally {
    process.chdir(here);
  }
}

const fixture = mkdtempSync(path.join(os.tmpdir(), "sessiond-layering-"));
afterAll(() => rmSync(fixture, { recursive: true, force: true }));

function write(file: string, text: string) {
  mkdirSync(path.dirname(path.join(fixture, file)), { recursive: true });
  writeFileSync(path.join(fixture, file), text);
}

describe("layering rules", () => {
  it("find no violation in src/", async () => {
    expect(await violations(["src"], process.cwd())).toEqual([]);
  }, 60_000);

  it("report a domain file importing db/, a db file importing handlers/, and a cycle", async () => {
    write("src/domain/rules.ts", 'import { table } from "../db/table.js";\nexport const rule = () => table;\n');
    write("src/db/table.ts", 'import { mapper } from "../handlers/mapper.js";\nexport const table = mapper;\n');
    write("src/handlers/mapper.ts", "export const mapper = 1;\n");
    write("src/domain/a.ts", 'import { b } from "./b.js";\nexport const a = () => b;\n');
    write("src/domain/b.ts", 'import { a } from "./a.js";\nexport const b = () => a;\n');
    expect(await violations(["src"], fixture)).toEqual([
      "db-not-to-handlers: src/db/table.ts -> src/handlers/mapper.ts",
      "domain-not-to-db: src/domain/rules.ts -> src/db/table.ts",
      "no-circular: src/domain/a.ts -> src/domain/b.ts",
    ]);
  }, 60_000);
});
