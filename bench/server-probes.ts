/**
 * What a benchmark reads about a sessiond process it started (bench/process.ts) from outside: its
 * database backends, its CPU time (Linux /proc) and its /metrics.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type pg from "pg";

/** The local ports of the established TCP connections of process `pid` to port `remotePort` (its sockets in /proc/<pid>/fd, looked up in /proc/<pid>/net/tcp*). */
export function localPortsTo(pid: number, remotePort: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const file of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${file}`, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]) || f[3] !== "01") continue; // 01: ESTABLISHED
      if (parseInt(f[2].split(":")[1], 16) === remotePort) ports.add(parseInt(f[1].split(":")[1], 16));
    }
  }
  return ports;
}

/** Backends of a process in pg_stat_activity: how many, how many not idle, how many are its LISTEN connection, by application_name/state. */
export interface Backends {
  count: number;
  busy: number;
  signals: number;
  by: Record<string, number>;
}

/**
 * The backends of process `pid` in `monitor`'s database: those whose client port is one of its
 * connections to the database server's `pgPort` (the monitor's own left out).
 */
export async function backendsOf(monitor: pg.Client, pid: number, pgPort: number): Promise<Backends> {
  const ports = localPortsTo(pid, pgPort);
  const { rows } = await monitor.query<{ client_port: number; application_name: string; state: string }>(
    "SELECT client_port, application_name, state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
  );
  const mine = rows.filter((r) => ports.has(r.client_port));
  const by: Record<string, number> = {};
  for (const r of mine) by[`${r.application_name}/${r.state}`] = (by[`${r.application_name}/${r.state}`] ?? 0) + 1;
  return { count: mine.length, busy: mine.filter((r) => r.state !== "idle").length, signals: mine.filter((r) => r.application_name === "sessiond-signals").length, by };
}

/** CPU ms process `pid` has used (/proc/<pid>/stat utime + stime, at 100 ticks/s). */
export function cpuMsOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** The values of the `names` lines (exactly as written, labels included) of the server's /metrics. */
export async function metricsOf(baseUrl: string, names: readonly string[]): Promise<Record<string, number>> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const name of names) {
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    if (line) out[name] = Number(line.slice(name.length + 1));
  }
  return out;
}
