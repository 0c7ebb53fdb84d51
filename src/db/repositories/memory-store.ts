/**
 * Storage of memories (the domain's MemoryStore), of what integration writes (insights, marks, counters) and of a namespace's
 * integrator. Every statement is scoped by namespace_id.
 */
import type { DataSource, EntityManager } from "typeorm";
import type { IntegratorConfig } from "../../domain/integrator-contract.js";
import type { MemorySelector, MemoryStore, StoredMemory } from "../../domain/memory-store.js";
import { sqlOf } from "../sql.js";

/** Insights kept per participant; the oldest go first. */
export const MAX_STORED_INSIGHTS = 1000;

function toMemory(row: any): StoredMemory {
  return {
    uuid: row.id,
    sourceSessionUuid: row.source_session_id,
    subjectParticipantId: row.subject_participant_id,
    subjectUser: row.subject_user,
    content: row.content,
    metadata: row.metadata,
    integratedBy: row.integrated_by,
    createTime: row.create_time,
  };
}

function selectorSql(namespaceId: string, sel: MemorySelector): { where: string; params: unknown[] } {
  const params: unknown[] = [namespaceId];
  const where = ["m.namespace_id = $1"];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace("?", `$${params.length}`));
  };
  if (sel.ids) add("m.id = ANY(?::uuid[])", sel.ids);
  if (sel.sourceSessionUuid) add("m.source_session_id = ?", sel.sourceSessionUuid);
  if (sel.subjectParticipantId) add("m.subject_participant_id = ?", sel.subjectParticipantId);
  if (sel.subjectUser) add("m.subject_user = ?", sel.subjectUser);
  return { where: where.join(" AND "), params };
}

/** Creates the store over a DataSource or a transaction's EntityManager. */
export function createMemoryStore(db: DataSource | EntityManager): MemoryStore {
  const q = sqlOf(db);
  const toConfig = (row: any): IntegratorConfig => ({ kind: row.integrator_kind, url: row.integrator_url, timeoutMs: row.integrator_timeout_ms });

  return {
    async list(namespaceId, sel, after, limit) {
      const { where, params } = selectorSql(namespaceId, sel);
      let cond = where;
      if (after) {
        params.push(after.createTime, after.uuid);
        cond += ` AND (m.create_time, m.id) < ($${params.length - 1}, $${params.length})`;
      }
      params.push(limit);
      const rows = await q(`SELECT m.* FROM memories m WHERE ${cond} ORDER BY m.create_time DESC, m.id DESC LIMIT $${params.length}`, params);
      return rows.map(toMemory);
    },

    async delete(namespaceId, sel) {
      const { where, params } = selectorSql(namespaceId, sel);
      const [{ n }] = await q(`WITH d AS (DELETE FROM memories m WHERE ${where} RETURNING 1) SELECT count(*)::int AS n FROM d`, params);
      return n;
    },

    async writeIntegration(w) {
      await q("SELECT 1 FROM sessions WHERE namespace_id = $1 AND id = $2 FOR UPDATE", [w.namespaceId, w.sessionUuid]);
      const moved = await q(
        `WITH p AS (
           UPDATE participants SET last_integrated_seq = $4,
             insights = CASE WHEN jsonb_array_length(insights || $5::jsonb) <= ${MAX_STORED_INSIGHTS} THEN insights || $5::jsonb
               ELSE (SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(insights || $5::jsonb) WITH ORDINALITY a(e, i)
                     WHERE i > jsonb_array_length(insights || $5::jsonb) - ${MAX_STORED_INSIGHTS}) END
           WHERE namespace_id = $6 AND session_id = $1 AND participant_id = $2 AND last_integrated_seq = $3
             AND EXISTS (SELECT 1 FROM turns WHERE namespace_id = $6 AND session_id = $1 AND seq = $4) RETURNING 1)
         SELECT count(*)::int AS n FROM p`,
        [w.sessionUuid, w.participantId, w.fromSeq, w.toSeq, JSON.stringify(w.insights), w.namespaceId],
      );
      if (moved[0].n === 0) return false;
      if (!w.memories.length) return [];
      {
        // In the order given: ids are time-ordered, so memories list in the order the integrator returned them.
        const ids = await q(
          `INSERT INTO memories (namespace_id, source_session_id, subject_participant_id, subject_user, content, metadata, integrated_by)
           SELECT $1, $2, m.subject_participant_id, m.subject_user, m.content, m.metadata, $3
           FROM unnest($4::text[], $5::text[], $6::text[], $7::jsonb[]) WITH ORDINALITY AS m(subject_participant_id, subject_user, content, metadata, i)
           ORDER BY m.i
           RETURNING id`,
          [
            w.namespaceId,
            w.sessionUuid,
            w.participantId,
            w.memories.map((m) => m.subjectParticipantId),
            w.memories.map((m) => m.subjectUser),
            w.memories.map((m) => m.content),
            w.memories.map((m) => JSON.stringify(m.metadata)),
          ],
        );
        await q("UPDATE sessions SET memories_extracted = memories_extracted + $3 WHERE namespace_id = $1 AND id = $2", [w.namespaceId, w.sessionUuid, w.memories.length]);
        return ids.map((r) => r.id as string);
      }
    },

    async countIntegration(session) {
      await q("UPDATE sessions SET integration_count = integration_count + 1 WHERE namespace_id = $1 AND id = $2", [session.namespaceId, session.uuid]);
    },

    async integratorConfig(namespaceId) {
      const rows = await q("SELECT integrator_kind, integrator_url, integrator_timeout_ms FROM namespaces WHERE id = $1", [namespaceId]);
      return toConfig(rows[0]);
    },

    async setIntegratorConfig(namespaceId, c) {
      const rows = await q(
        `WITH n AS (UPDATE namespaces SET integrator_kind = $2, integrator_url = $3, integrator_timeout_ms = $4 WHERE id = $1 RETURNING *)
         SELECT integrator_kind, integrator_url, integrator_timeout_ms FROM n`,
        [namespaceId, c.kind, c.url, c.timeoutMs],
      );
      return toConfig(rows[0]);
    },
  };
}
