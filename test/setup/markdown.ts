/**
 * Running documentation as printed: the fenced blocks of a markdown file, and bash to run them with.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

/** The fenced blocks of a markdown file: language and body, in order. */
export function fences(markdown: string): { lang: string; body: string }[] {
  return [...markdown.matchAll(/^```(\S*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2] }));
}

/** Runs `script` with bash -euo pipefail and `env` added; on failure, throws with the tail of what it printed. */
export async function runBash(script: string, env: Record<string, string>, timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  try {
    return await promisify(execFile)("bash", ["-euo", "pipefail", "-c", script], { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { code?: unknown; signal?: unknown; stdout?: string; stderr?: string };
    const tail = (s = "") => s.split("\n").filter((l) => !l.startsWith("npm warn")).slice(-40).join("\n");
    throw new Error(`the script failed (exit ${String(e.code)}, signal ${String(e.signal)})\n--- stdout (end) ---\n${tail(e.stdout)}\n--- stderr (end) ---\n${tail(e.stderr)}`);
  }
}
