/**
 * The operation store (the domain's OperationStore): operations and their batches, on the coordinator
 * under Citus. Claims never wait for a row another process is working on (FOR UPDATE SKIP LOCKED); a
 * batch's transaction locks its operation row first and checks the lease, then deletes, then records,
 * so a process whose lease was taken over can neither delete nor record another batch, and a takeover
 * cannot happen in the middle of a batch.
 */
import type { DataSource, EntityManager } from "typeorm";
import type { DeletedSession } from "../../domain/bulk-delete-store.js";
import { LeaseLostError, type BatchRecord, type Lease, type OperationQuery, type OperationRecord, type OperationStore } from "../../domain/operation-store.js";
import { deleteBatch } from "./bulk-delete-store.js";
import { eraseStep } from "./erasure-store.js";
import { expiredSql } from "./retention-store.js";

/**
 * The columns as statements read them: the request without its list of identifiers (up to 100,000 of
 * them), which only the process that runs the operation needs (`request`, unless it has its own copy).
 */
const COLUMNS = `id, namespace_id, namespace, kind, state, request #- '{selector,values}' AS request, cursor, progress, result, batches, detach,
  actor, error, cancel_requested, lease_owner, attempts, create_time, start_time, update_time, end_time`;


function toRecord(r: any): OperationRecord {
  return {
    uuid: r.id,
    namespaceId: r.namespace_id,
    namespace: r.namespace,
    kind: r.kind,
    state: r.state,
    request: r.request,
    cursor: r.cursor,
    progress: r.progress,
    result: r.result,
    batches: r.batches,
    detach: r.detach,
    actor: r.actor,
    error: r.error,
    cancelRequested: r.cancel_requested,
    leaseOwner: r.lease_owner,
    attempts: r.attempts,
    createTime: r.create_time,
    startTime: r.start_time,
    updateTime: r.update_time,
    endTime: r.end_time,
  };
}

const json = (value: unknown) => (value === undefined ? null : JSON.stringify(value));

/** The operation store over `dataSource`'s pool. */
export function createOperationStore(dataSource: DataSource): OperationStore {
  const db = dataSource.manager;
  const one = async (sql: string, params: unknown[], on: EntityManager = db) => {
    const rows: any[] = await on.query(sql, params);
    // UPDATE ... RETURNING comes back as [rows, count] from TypeORM's postgres driver.
    const list = Array.isArray(rows[0]) ? rows[0] : rows;
    return list[0] ? toRecord(list[0]) : undefined;
  };
  /**
   * One batch's transaction: locks the operation row and checks the lease, runs `work` (which returns
   * what to record), records the batch and moves the operation on.
   */
  const underLease = (lease: Lease, leaseMs: number, number: number, work: (tx: EntityManager) => Promise<BatchRecord>) =>
    dataSource.transaction(async (tx) => {
      const [held] = await tx.query("SELECT cancel_requested FROM operations WHERE id = $1 AND lease_owner = $2 AND state = 'running' FOR UPDATE", [lease.uuid, lease.owner]);
      if (!held) throw new LeaseLostError("this process no longer holds the operation");
      const r = await work(tx);
      await tx.query("INSERT INTO operation_batches (operation_id, number, progress) VALUES ($1, $2, $3::jsonb)", [lease.uuid, number, json(r.batch)]);
      await tx.query(
        `UPDATE operations SET cursor = $2::jsonb, progress = $3::jsonb, batches = $4, lease_until = clock_timestamp() + $5 * interval '1 millisecond', update_time = now() WHERE id = $1`,
        [lease.uuid, json(r.cursor), json(r.progress), number, leaseMs],
      );
      return { cancelRequested: held.cancel_requested as boolean };
    });
  return {
    async insert(op) {
      return (await one(
        `INSERT INTO operations (namespace_id, namespace, kind, request, cursor, progress, detach, actor)
         VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8) RETURNING ${COLUMNS}`,
        [op.namespaceId, op.namespace, op.kind, json(op.request), json(op.cursor), json(op.progress), op.detach, op.actor],
      ))!;
    },

    insertSweep: (op) =>
      one(
        `INSERT INTO operations (namespace_id, namespace, kind, request, cursor, progress, detach, actor)
         VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8)
         ON CONFLICT (namespace_id) WHERE kind = 'retention_sweep' AND state IN ('queued', 'running') DO NOTHING
         RETURNING ${COLUMNS}`,
        [op.namespaceId, op.namespace, op.kind, json(op.request), json(op.cursor), json(op.progress), op.detach, op.actor],
      ),

    async countQueued(namespaceId) {
      const [row] = await db.query("SELECT count(*)::int AS n FROM operations WHERE state = 'queued' AND namespace_id = $1", [namespaceId]);
      return row.n;
    },

    find: (uuid) => one(`SELECT ${COLUMNS} FROM operations WHERE id = $1`, [uuid]),

    async request(uuid) {
      const [row] = await db.query("SELECT request FROM operations WHERE id = $1", [uuid]);
      return row?.request;
    },

    async list(query: OperationQuery, after, limit) {
      const params: unknown[] = [];
      const where: string[] = [];
      if ("id" in query.namespace) {
        params.push(query.namespace.id);
        where.push(`namespace_id = $${params.length}`);
      } else {
        params.push(query.namespace.name);
        where.push(`namespace = $${params.length}`);
      }
      if (query.kind) {
        params.push(query.kind);
        where.push(`kind = $${params.length}`);
      }
      if (query.state) {
        params.push(query.state);
        where.push(`state = $${params.length}`);
      }
      if (after) {
        params.push(after.createTime, after.uuid);
        where.push(`(create_time, id) < ($${params.length - 1}, $${params.length})`);
      }
      params.push(limit);
      const rows: any[] = await db.query(`SELECT ${COLUMNS} FROM operations WHERE ${where.join(" AND ")} ORDER BY create_time DESC, id DESC LIMIT $${params.length}`, params);
      return rows.map(toRecord);
    },

    // The lease names the process and the claim (its attempt number): a process whose own lease ran out
    // and that claims the operation again holds a new lease, and its first run can record nothing more.
    claim: (owner, leaseMs, uuid, skip = []) =>
      one(
        `UPDATE operations o SET state = 'running', lease_owner = $1 || '#' || (o.attempts + 1), lease_until = clock_timestamp() + $2 * interval '1 millisecond',
           attempts = o.attempts + 1, start_time = coalesce(o.start_time, now()), update_time = now()
         WHERE o.id = (SELECT id FROM operations
                       WHERE state IN ('queued', 'running') AND (state = 'queued' OR lease_until < clock_timestamp()) AND NOT (id = ANY($3::uuid[]))
                             ${uuid ? "AND id = $4" : ""}
                       ORDER BY create_time, id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING ${COLUMNS}`,
        uuid ? [owner, leaseMs, skip, uuid] : [owner, leaseMs, skip],
      ),

    async renew(lease, leaseMs) {
      const row = await one(
        `UPDATE operations SET lease_until = clock_timestamp() + $3 * interval '1 millisecond'
         WHERE id = $1 AND lease_owner = $2 AND state = 'running' RETURNING ${COLUMNS}`,
        [lease.uuid, lease.owner, leaseMs],
      );
      return { held: row !== undefined, cancelRequested: row?.cancelRequested ?? false };
    },

    commitBatch: (lease, leaseMs, number, deletion, record) =>
      underLease(lease, leaseMs, number, async (tx) => {
        let found: DeletedSession[] = [];
        let keys = deletion?.keys;
        if (deletion?.recheck && keys) {
          // A retention sweep: only the sessions still past the policy once locked (in id order, as
          // deleteBatch locks them: no deadlock with a concurrent batch).
          const e = expiredSql(deletion.recheck, 3);
          const still: { id: string }[] = await tx.query(
            `SELECT s.id FROM sessions s WHERE s.namespace_id = $1 AND s.id = ANY($2::uuid[]) AND ${e.sql} ORDER BY s.id FOR UPDATE`,
            [deletion.namespaceId, keys.values, ...e.params],
          );
          keys = { kind: "uuid", values: still.map((r) => r.id) };
        }
        if (deletion && keys) found = (await deleteBatch(tx, deletion.namespaceId, keys, deletion.opts)).map(({ stale: _, ...row }) => row);
        return record(found);
      }),

    commitErasure: (lease, leaseMs, number, work, record) => underLease(lease, leaseMs, number, async (tx) => record(await eraseStep(tx, work))),

    async end(lease, state, error, result) {
      const row = await one(
        `UPDATE operations SET state = $3, error = $4, result = $5::jsonb, request = request - 'private', cancel_requested = false, lease_owner = NULL, lease_until = NULL,
           end_time = now(), update_time = now()
         WHERE id = $1 AND lease_owner = $2 AND state = 'running' RETURNING ${COLUMNS}`,
        [lease.uuid, lease.owner, state, error, json(result)],
      );
      return row !== undefined;
    },

    async release(lease) {
      // A hand-back (shutdown, an outage) is not a failed attempt: it does not count towards giving up.
      await db.query(
        "UPDATE operations SET state = 'queued', lease_owner = NULL, lease_until = NULL, attempts = greatest(attempts - 1, 0), update_time = now() WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        [lease.uuid, lease.owner],
      );
    },

    async requestCancel(uuid) {
      const changed = await one(
        `UPDATE operations SET
           state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
           request = CASE WHEN state = 'queued' THEN request - 'private' ELSE request END,
           cancel_requested = (state = 'running'),
           end_time = CASE WHEN state = 'queued' THEN now() ELSE end_time END,
           update_time = now()
         WHERE id = $1 AND state IN ('queued', 'running') RETURNING ${COLUMNS}`,
        [uuid],
      );
      return changed ?? (await one(`SELECT ${COLUMNS} FROM operations WHERE id = $1`, [uuid]));
    },

    counts: () => db.query("SELECT kind, state, count(*)::int AS count FROM operations GROUP BY kind, state ORDER BY kind, state"),

    async batches(uuid, after, limit) {
      const rows: { number: number; progress: unknown }[] = await db.query(
        "SELECT number, progress FROM operation_batches WHERE operation_id = $1 AND number > $2 ORDER BY number LIMIT $3",
        [uuid, after, limit],
      );
      return rows.map((r) => ({ number: r.number, batch: r.progress }));
    },
  };
}
