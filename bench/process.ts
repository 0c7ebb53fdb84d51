/**
 * A sessiond in a process of its own (Node 24 from node_modules, sources through tsx), so that its memory
 * can be measured apart from the benchmark's client.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { freePort } from "../src/net/free-port.js";
import { TEST_ADMIN_KEY as BENCH_KEY } from "../test/setup/auth.js";
import net from "node:net";
import path from "node:path";

/** Resident set size of process `pid` in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(line?.match(/(\d+)/)?.[1] ?? 0) * 1024;
}

/** Starts `src/main.ts` the way `npm start` does (same V8 flags) on a free port over `databaseUrl`; resolves once it listens. */
export async function startServerProcess(databaseUrl: string): Promise<{ pid: number; url: string; stop(): void }> {
  const port = await freePort();
  const child = spawn(path.resolve("node_modules/.bin/node"), ["--max-semi-space-size=4", "--import", "tsx", "src/main.ts"], {
    env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warn", SESSIOND_BOOTSTRAP_ADMIN_KEY: BENCH_KEY },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server process did not start")), 30_000);
    const poll = setInterval(() => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        clearInterval(poll);
        clearTimeout(timer);
        resolve();
      });
      s.on("error", () => s.destroy());
    }, 100);
    child.on("exit", (code) => reject(new Error(`server process exited with ${code}`)));
  });
  return { pid: child.pid!, url: `http://127.0.0.1:${port}`, stop: () => child.kill("SIGTERM") };
}
