import type { SessionFilter } from "../../domain/session-model.js";

/**
 * The WHERE clause (over alias `s`) selecting a namespace's sessions that match `filter`, with its
 * parameters ($1 is the namespace id). Shared by ListSessions and the bulk-delete snapshot.
 */
export function filterSql(namespaceId: string, f: SessionFilter, showDeleted: boolean): { where: string; params: unknown[] } {
  const params: unknown[] = [namespaceId];
  const where = ["s.namespace_id = $1"];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace("?", `$${params.length}`));
  };
  if (f.state === "soft_deleted") where.push("s.delete_time IS NOT NULL");
  else {
    if (!showDeleted) where.push("s.delete_time IS NULL");
    if (f.state) add("s.state = ?", f.state);
  }
  if (f.user !== undefined) add("s.user_id = ?", f.user);
  if (f.workflowId !== undefined) add("s.workflow_id = ?", f.workflowId);
  if (f.labels && Object.keys(f.labels).length) add("s.labels @> ?::jsonb", JSON.stringify(f.labels));
  if (f.createTimeAfter) add("s.create_time >= ?", f.createTimeAfter);
  if (f.createTimeBefore) add("s.create_time < ?", f.createTimeBefore);
  if (f.activeAfter) add("s.last_activity_time >= ?", f.activeAfter);
  if (f.activeBefore) add("s.last_activity_time < ?", f.activeBefore);
  return { where: where.join(" AND "), params };
}
