/**
 * Distribution over Citus. When the database has the `citus` extension, sessiond's tables are laid out
 * as Citus expects of a multi-tenant schema, with the namespace as the tenant:
 * - every namespaced table is distributed by namespace_id, all colocated with `sessions`, so one
 *   namespace's rows of every table live in the same shard group: a statement that names namespace_id
 *   runs on one worker, and the foreign keys (composite, namespace_id first) and their cascades stay
 *   inside one shard;
 * - namespaces, api_keys and retention_policies are reference tables (small, read everywhere; api_keys
 *   are found by secret across namespaces, and a NULL namespace_id means every namespace);
 * - audit_events, operations, operation_batches and schema_migrations stay local to the coordinator (an
 *   append-only log read across namespaces, the long-running operations every process looks through
 *   for work to claim, and the migrations' own bookkeeping).
 * On plain PostgreSQL nothing changes.
 *
 * Citus refuses one thing the schema declares: `ON DELETE SET NULL` on a foreign key that includes the
 * distribution column, even with a column list. memories.source_session_id's key therefore becomes
 * `ON DELETE NO ACTION` on Citus, and the application empties the link itself before a session goes
 * (sessiond_delete_sessions(), called by bulk-delete-store.ts deleteBatch, the one path every session
 * deletion takes, with each session row-locked so no memory can link to it meanwhile); the key still
 * refuses a dangling link.
 *
 * distribute() is idempotent: it does what is missing and nothing else. The Distribute migration runs it
 * on a new deployment; openDatabase runs it after the migrations on every start, so a deployment that
 * adds Citus later (or a later migration that adds a table) is distributed at its next start.
 */
import type { DataSource, EntityManager } from "typeorm";
import { APPEND_TURNS_SIGNATURE } from "./migrations/1796090000000-AppendTurnsFunction.js";

/** The reference tables, copied to every node. */
export const REFERENCE_TABLES = ["namespaces", "api_keys", "retention_policies"] as const;
/** The distributed tables, by namespace_id, colocated with the first. */
export const DISTRIBUTED_TABLES = ["sessions", "participants", "turns", "turn_requests", "traces", "spans", "annotations", "memories", "client_requests", "session_changes", "session_compactions"] as const;
/** Tables that stay on the coordinator alone. */
export const LOCAL_TABLES = ["audit_events", "operations", "operation_batches", "schema_migrations", "schema_metadata"] as const;
/**
 * Functions whose every statement names one namespace: distributed by that argument and colocated with
 * sessions, so a call outside a transaction runs whole on the worker that holds the namespace.
 */
/** sessiond_delete_sessions' signature (migration UniqueKeyPlans makes the function). */
export const DELETE_SESSIONS_SIGNATURE = "sessiond_delete_sessions(uuid,uuid[],text[],boolean,boolean,integer)";
/** sessiond_record_spans' signature (migration RecordSpansFunction makes the function). */
export const RECORD_SPANS_SIGNATURE = "sessiond_record_spans(uuid,uuid,text[],integer[],bigint[],bigint[],smallint[],text[],json)";
export const DISTRIBUTED_FUNCTIONS = [
  { signature: APPEND_TURNS_SIGNATURE, argument: "p_namespace" },
  { signature: DELETE_SESSIONS_SIGNATURE, argument: "p_namespace" },
  { signature: RECORD_SPANS_SIGNATURE, argument: "p_namespace" },
] as const;
/** The distribution column. */
export const DISTRIBUTION_COLUMN = "namespace_id";

/** The foreign key Citus cannot keep as declared (see above), and what it becomes there. */
const SET_NULL_LINK = { table: "memories", name: "fk_memories_source_session", from: "ON DELETE SET NULL (source_session_id)", to: "ON DELETE NO ACTION" };

/** What distribute() found or did. */
export interface Distribution {
  /** Whether the database has the citus extension. */
  citus: boolean;
  /** Tables distributed by this call (none when they already were, or without Citus). */
  distributed: string[];
  /** Tables made reference tables by this call. */
  referenced: string[];
  /** Functions distributed by this call. */
  functions: string[];
  /** Worker nodes that hold shards (0 without Citus). */
  workers: number;
}

/** Whether `db`'s database has the citus extension. */
export async function hasCitus(db: Pick<EntityManager, "query">): Promise<boolean> {
  const [row] = await db.query("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus");
  return row.citus;
}

const citusByDataSource = new WeakMap<object, Promise<boolean>>();

/**
 * {@link hasCitus} for the DataSource behind `db`, asked once per DataSource: for statements that have
 * a cheaper form on plain Postgres than the one Citus can run on a single shard.
 */
export function onCitus(db: EntityManager): Promise<boolean> {
  const key = db.connection;
  let known = citusByDataSource.get(key);
  if (!known) {
    // Asked through `db` itself (a transaction's own connection when it is one): never a second
    // pooled connection while this one is held.
    known = hasCitus(db);
    citusByDataSource.set(key, known);
    known.catch(() => citusByDataSource.delete(key));
  }
  return known;
}

/**
 * Distributes the tables when the database has Citus and they are not yet (in one transaction of its
 * own, or the caller's when `db` is in one). Without Citus it reads one row and returns.
 */
export async function distribute(db: EntityManager): Promise<Distribution> {
  if (!(await hasCitus(db))) return { citus: false, distributed: [], referenced: [], functions: [], workers: 0 };
  const work = async (tx: EntityManager): Promise<Distribution> => {
    const kinds = new Map<string, string>(
      (await tx.query("SELECT logicalrelid::regclass::text AS t, partmethod AS m, repmodel AS r FROM pg_dist_partition")).map((r: any) => [r.t, r.m === "h" ? "distributed" : r.r === "t" ? "reference" : "local"]),
    );
    // Tables a later migration makes are laid out once it has run (openDatabase calls this after them all).
    const existing = new Set<string>(
      (await tx.query("SELECT t FROM unnest($1::text[]) t WHERE to_regclass(t) IS NOT NULL", [[...REFERENCE_TABLES, ...DISTRIBUTED_TABLES]])).map((r: { t: string }) => r.t),
    );
    const referenced = REFERENCE_TABLES.filter((t) => existing.has(t) && kinds.get(t) !== "reference");
    const distributed = DISTRIBUTED_TABLES.filter((t) => existing.has(t) && kinds.get(t) !== "distributed");
    if (referenced.length || distributed.length) {
      // With a foreign key to a reference table, Citus wants every statement of the transaction over
      // one connection per node.
      await tx.query("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'");
      // Citus cannot distribute a table that other (local) tables reference, nor reference one that
      // local tables hang from: take the foreign keys among the tables off, lay the tables out, put
      // the keys back (they are checked again as they return).
      const tables = [...REFERENCE_TABLES, ...DISTRIBUTED_TABLES];
      const keys: { t: string; name: string; def: string }[] = await tx.query(
        `SELECT conrelid::regclass::text AS t, conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint
         WHERE contype = 'f' AND conrelid::regclass::text = ANY($1) ORDER BY conname`,
        [tables],
      );
      for (const k of keys) await tx.query(`ALTER TABLE "${k.t}" DROP CONSTRAINT "${k.name}"`);
      for (const t of referenced) await tx.query("SELECT create_reference_table($1)", [t]);
      for (const t of distributed) {
        await tx.query("SELECT create_distributed_table($1, $2, colocate_with => $3)", [t, DISTRIBUTION_COLUMN, t === DISTRIBUTED_TABLES[0] ? "default" : DISTRIBUTED_TABLES[0]]);
      }
      for (const k of keys) {
        const def = k.t === SET_NULL_LINK.table && k.name === SET_NULL_LINK.name ? k.def.replace(SET_NULL_LINK.from, SET_NULL_LINK.to) : k.def;
        await tx.query(`ALTER TABLE "${k.t}" ADD CONSTRAINT "${k.name}" ${def}`);
      }
    }
    const functions: string[] = [];
    for (const f of DISTRIBUTED_FUNCTIONS) {
      const [{ present, done }] = await tx.query(
        "SELECT to_regprocedure($1) IS NOT NULL AS present, EXISTS (SELECT 1 FROM pg_dist_object WHERE classid = 'pg_proc'::regclass AND objid = to_regprocedure($1) AND distribution_argument_index IS NOT NULL) AS done",
        [f.signature],
      );
      // Not there yet while earlier migrations run (a later one makes it): the distribute() after them does it.
      if (!present || done) continue;
      await tx.query("SELECT create_distributed_function($1, $2, colocate_with => $3)", [f.signature, f.argument, DISTRIBUTED_TABLES[0]]);
      functions.push(f.signature.slice(0, f.signature.indexOf("(")));
    }
    const [{ workers }] = await tx.query("SELECT count(DISTINCT nodeid)::int AS workers FROM pg_dist_node WHERE isactive AND noderole = 'primary' AND shouldhaveshards AND groupid <> 0");
    return { citus: true, distributed, referenced, functions, workers };
  };
  return db.queryRunner?.isTransactionActive ? work(db) : db.transaction(work);
}

/** Runs the pending migrations, then distribute(): what a start does to the schema. */
export async function migrate(dataSource: DataSource): Promise<{ applied: string[]; distribution: Distribution }> {
  const applied = (await dataSource.runMigrations({ transaction: "each" })).map((m) => m.name);
  return { applied, distribution: await distribute(dataSource.manager) };
}
