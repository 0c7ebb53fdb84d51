/**
 * Storage of the audit log (the domain's AuditStore): appended in batches, read newest first.
 */
import type { EntityManager } from "typeorm";
import type { AuditEvent, AuditStore } from "../../domain/audit-log.js";
import { InvalidInputError } from "../../domain/errors.js";
import { isRowRefused, sqlState } from "../errors.js";
import { sqlOf } from "../sql.js";

/** The store over `db`. */
export function createAuditStore(db: EntityManager): AuditStore {
  const q = sqlOf(db);
  return {
    async append(events) {
      if (!events.length) return;
      const col = <K extends keyof AuditEvent>(k: K) => events.map((e) => e[k]);
      try {
        await q(
          `INSERT INTO audit_events (id, time, namespace_id, namespace, actor, method, item_count, code, request_id, detail)
           SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[], $9::text[], $10::jsonb[])`,
          [
            col("uuid"),
            col("time"),
            col("namespaceId"),
            col("namespace"),
            col("actor"),
            col("method"),
            col("itemCount"),
            col("code"),
            col("requestId"),
            events.map((e) => (e.detail ? JSON.stringify(e.detail) : null)),
          ],
        );
      } catch (err) {
        // Classes 22 (data exception) and 23 (integrity constraint): these rows, not the database, are at fault.
        if (isRowRefused(err)) throw Object.assign(new InvalidInputError("audit event", `refused by the database (SQLSTATE ${sqlState(err)}): ${(err as Error).message}`), { cause: err });
        throw err;
      }
    },

    async namespaceNames(ids) {
      const rows = await q("SELECT id, name FROM namespaces WHERE id = ANY($1::uuid[])", [ids]);
      return new Map(rows.map((r) => [r.id as string, r.name as string]));
    },

    // By session uuid alone: only for global ids of the old form, which do not carry the namespace.
    async namespacesOfSessions(uuids) {
      const rows = await q("SELECT s.id, n.name FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE s.id = ANY($1::uuid[])", [uuids]);
      return new Map(rows.map((r) => [r.id as string, r.name as string]));
    },

    async list(query) {
      const params: unknown[] = [];
      const where: string[] = [];
      const add = (sql: (n: number) => string, ...values: unknown[]) => {
        params.push(...values);
        where.push(sql(params.length));
      };
      if (query.namespaceId) add((n) => `namespace_id = $${n}`, query.namespaceId);
      if (query.actor) add((n) => `actor = $${n}`, query.actor);
      if (query.after) add((n) => `(time, id) < ($${n - 1}, $${n})`, query.after.createTime, query.after.uuid);
      params.push(query.limit);
      const rows = await q(
        `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY time DESC, id DESC LIMIT $${params.length}`,
        params,
      );
      return rows.map((r) => ({
        uuid: r.id,
        time: r.time,
        namespaceId: r.namespace_id,
        namespace: r.namespace,
        actor: r.actor,
        method: r.method,
        itemCount: r.item_count,
        code: r.code,
        requestId: r.request_id,
        ...(r.detail ? { detail: r.detail } : {}),
      }));
    },
  };
}
