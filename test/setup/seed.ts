/**
 * Builds realistic session contents with plain SQL (the APIs that write participants, turns, traces
 * and annotations come with their own features): used by cascade tests and benchmarks.
 */
import type { DataSource } from "typeorm";

/** How much to put under each session. */
export interface SessionContents {
  participants?: number;
  turnsPerParticipant?: number;
  traces?: number;
  spansPerTrace?: number;
  annotationsPerTrace?: number;
  memories?: number;
}

/** Inserts `n` sessions in namespace `namespace` (created if missing); returns their uuids. */
export async function seedSessions(ds: DataSource, n: number, namespace = "default", opts: { prefix?: string; user?: string; labels?: Record<string, string> } = {}): Promise<string[]> {
  await ds.query("INSERT INTO namespaces (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [namespace]);
  const rows: { id: string }[] = await ds.query(
    `INSERT INTO sessions (namespace_id, external_id, user_id, labels, expire_time, max_requests_per_minute, create_time, update_time)
     SELECT n.id, $2 || g, $3, $4::jsonb, now() + interval '10 minutes', 10,
            clock_timestamp() - (($1 - g) * interval '1 millisecond'), now()
     FROM namespaces n, generate_series(1, $1) g WHERE n.name = $5 ORDER BY g RETURNING id`,
    [n, opts.prefix ?? `seed-${Date.now().toString(36)}-`, opts.user ?? "", JSON.stringify(opts.labels ?? {}), namespace],
  );
  return rows.map((r) => r.id);
}

/** The database id of the namespace `name` (it must exist): what its sessions' global ids carry. */
export async function namespaceIdOf(ds: DataSource, name: string): Promise<string> {
  const [row]: { id: string }[] = await ds.query("SELECT id FROM namespaces WHERE name = $1", [name]);
  if (!row) throw new Error(`namespace "${name}" does not exist`);
  return row.id;
}

/**
 * Fills the given sessions with participants, turns, traces, spans, annotations (on traces, attached to
 * their session) and memories, in a few set-based statements, and sets the session counters as every
 * writer must (see SessionEntity): tests then check counters against the rows themselves.
 */
export async function seedContents(ds: DataSource, sessionIds: string[], c: SessionContents): Promise<void> {
  const p = c.participants ?? 0;
  const t = c.turnsPerParticipant ?? 0;
  const tr = c.traces ?? 0;
  const sp = c.spansPerTrace ?? 0;
  const an = c.annotationsPerTrace ?? 0;
  const mem = c.memories ?? 0;
  const ids = sessionIds;
  await ds.query(
    `INSERT INTO participants (namespace_id, session_id, participant_id, kind)
     SELECT s.namespace_id, s.id, 'p' || g, CASE WHEN g = 1 THEN 'user' ELSE 'agent' END
     FROM sessions s, generate_series(1, $2) g WHERE s.id = ANY($1)`,
    [ids, p],
  );
  await ds.query(
    `INSERT INTO turns (namespace_id, session_id, participant_ref, seq, role, content)
     SELECT pa.namespace_id, pa.session_id, pa.id,
            row_number() OVER (PARTITION BY pa.session_id ORDER BY pa.participant_id, g), 'user', 'turn ' || g
     FROM participants pa, generate_series(1, $2) g WHERE pa.session_id = ANY($1)`,
    [ids, t],
  );
  await ds.query(
    `INSERT INTO traces (namespace_id, session_id, otel_trace_id, root_name, span_count)
     SELECT s.namespace_id, s.id, md5(s.id::text || g), 'root', $3
     FROM sessions s, generate_series(1, $2) g WHERE s.id = ANY($1)`,
    [ids, tr, sp],
  );
  await ds.query(
    `INSERT INTO spans (namespace_id, trace_id, otel_span_id, otel_parent_span_id, name, start_time, end_time)
     SELECT t.namespace_id, t.id, lpad(to_hex(g), 16, '0'), CASE WHEN g = 1 THEN NULL ELSE lpad('1', 16, '0') END,
            'span ' || g, now(), now()
     FROM traces t, generate_series(1, $2) g WHERE t.session_id = ANY($1)`,
    [ids, sp],
  );
  await ds.query(
    `INSERT INTO annotations (namespace_id, session_id, trace_id, target_kind, target_key, name, annotator_kind, label)
     SELECT t.namespace_id, t.session_id, t.id, 'trace', 'trace:' || t.id, 'quality', 'human', 'good'
     FROM traces t, generate_series(1, $2) g WHERE t.session_id = ANY($1)`,
    [ids, an],
  );
  await ds.query(
    `INSERT INTO memories (namespace_id, source_session_id, subject_user, content)
     SELECT s.namespace_id, s.id, 'u', 'memory ' || g FROM sessions s, generate_series(1, $2) g WHERE s.id = ANY($1)`,
    [ids, mem],
  );
  await ds.query(
    `UPDATE sessions SET participant_count = $2::int, turn_count = $2::int * $3::int, trace_count = $4::int, span_count = $4::int * $5::int,
                         annotation_count = $4::int * $7::int, memories_extracted = $6::int
     WHERE id = ANY($1)`,
    [ids, p, t, tr, sp, mem, an],
  );
}

/** Counts rows per table that belong to the given sessions (spans via their traces). */
export async function countContents(ds: DataSource, sessionIds: string[]) {
  const [row] = await ds.query(
    `SELECT (SELECT count(*) FROM sessions WHERE id = ANY($1))::int AS sessions,
            (SELECT count(*) FROM participants WHERE session_id = ANY($1))::int AS participants,
            (SELECT count(*) FROM turns WHERE session_id = ANY($1))::int AS turns,
            (SELECT count(*) FROM traces WHERE session_id = ANY($1))::int AS traces,
            (SELECT count(*) FROM spans sp JOIN traces t ON t.namespace_id = sp.namespace_id AND t.id = sp.trace_id WHERE t.session_id = ANY($1))::int AS spans,
            (SELECT count(*) FROM annotations WHERE session_id = ANY($1))::int AS annotations,
            (SELECT count(*) FROM memories WHERE source_session_id = ANY($1))::int AS memories`,
    [sessionIds],
  );
  return row as { sessions: number; participants: number; turns: number; traces: number; spans: number; annotations: number; memories: number };
}

/**
 * countContents for each session of `sessionIds` apart, in one statement per table (not one call per
 * session: on a distributed database each call would ask every shard).
 */
export async function countContentsEach(ds: DataSource, sessionIds: string[]): Promise<Map<string, Awaited<ReturnType<typeof countContents>>>> {
  const out = new Map(sessionIds.map((id) => [id, { sessions: 0, participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0, memories: 0 }]));
  const add = async (key: keyof Awaited<ReturnType<typeof countContents>>, sql: string) => {
    for (const r of (await ds.query(sql, [sessionIds])) as { id: string; n: number }[]) out.get(r.id)![key] = r.n;
  };
  await add("sessions", "SELECT id, 1 AS n FROM sessions WHERE id = ANY($1)");
  await add("participants", "SELECT session_id AS id, count(*)::int AS n FROM participants WHERE session_id = ANY($1) GROUP BY 1");
  await add("turns", "SELECT session_id AS id, count(*)::int AS n FROM turns WHERE session_id = ANY($1) GROUP BY 1");
  await add("traces", "SELECT session_id AS id, count(*)::int AS n FROM traces WHERE session_id = ANY($1) GROUP BY 1");
  await add("spans", "SELECT t.session_id AS id, count(*)::int AS n FROM spans sp JOIN traces t ON t.namespace_id = sp.namespace_id AND t.id = sp.trace_id WHERE t.session_id = ANY($1) GROUP BY 1");
  await add("annotations", "SELECT session_id AS id, count(*)::int AS n FROM annotations WHERE session_id = ANY($1) GROUP BY 1");
  await add("memories", "SELECT source_session_id AS id, count(*)::int AS n FROM memories WHERE source_session_id = ANY($1) GROUP BY 1");
  return out;
}
