/**
 * What this server can do, as stable names a client can check for (GetServerInfo). A name is only
 * ever added, never renamed or reused; each is described in the README ("Capabilities").
 */
export const CAPABILITIES = [
  "sessions.v1",
  "sessions.bulk_delete.stream",
  "operations.v1",
  "participants.v1",
  "turns.append.request_id",
  "sessions.create.participants",
  "turns.append.session_stats",
  "turns.list.newest_first",
  "sessions.filter.last_activity",
  "integration.rules",
  "integration.remote",
  "memories.v1",
  "traces.v1",
  "annotations.identifier_upsert",
  "otlp.grpc",
  "otlp.http",
  "cors",
  "auth.api_keys",
  "auth.client_secrets",
  "auth.client_secrets.rate_limit",
  "admin.namespaces",
  "admin.audit",
  "retention.v1",
  "watch.v1",
  "compaction.v1",
  "erasure.v1",
  "sessions.export.v1",
  "search.v1",
] as const;

/** A capability name. */
export type Capability = (typeof CAPABILITIES)[number];
