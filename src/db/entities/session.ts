import { Check, Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, Unique } from "typeorm";
import { NamespaceEntity } from "./namespace.js";

/**
 * A conversation session. `state` holds active/cancelled; a soft delete only sets `delete_time`,
 * so undeleting restores the state the session had.
 *
 * Counters: participant_count, turn_count, trace_count, span_count and annotation_count are the number
 * of rows the session holds. INVARIANT: every write that adds or removes such rows updates the counter
 * in the same transaction (which takes the session row lock). Deletes read the counts from the row they
 * delete (`DELETE ... RETURNING`), so they are exact without counting child tables.
 * Times are stored with millisecond precision so that keyset cursors round-trip exactly through JS dates.
 */
@Entity({ name: "sessions" })
@Unique("uq_sessions_namespace_external_id", ["namespaceId", "externalId"])
@Index("ix_sessions_namespace_create_time", ["namespaceId", "createTime", "id"])
@Index("ix_sessions_namespace_user", ["namespaceId", "userId", "createTime", "id"])
@Index("ix_sessions_namespace_workflow", ["namespaceId", "workflowId", "createTime", "id"])
@Index("ix_sessions_namespace_state", ["namespaceId", "state", "createTime", "id"])
@Check("ck_sessions_state", `"state" IN ('active', 'cancelled')`)
export class SessionEntity {
  /**
   * UUIDv7: later rows sort later, so lists by (create_time, id) follow creation order. Chosen by
   * CreateSession (newUuid in domain/ids.ts: its client secret names it); the default (TimeOrderedIds migration) makes the same kind.
   */
  @PrimaryColumn({ type: "uuid", default: () => "sessiond_uuid_v7()", primaryKeyConstraintName: "pk_sessions" })
  id: string;

  /** First in the primary key: the schema is distributable by namespace (NamespaceKeys migration). */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_sessions" })
  namespaceId: string;

  @ManyToOne(() => NamespaceEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn({ name: "namespace_id", foreignKeyConstraintName: "fk_sessions_namespace" })
  namespace?: NamespaceEntity;

  /** The caller's session id (Session.session_id), unique per namespace. */
  @Column({ name: "external_id", type: "varchar", length: 256 })
  externalId: string;

  @Column({ name: "user_id", type: "varchar", length: 256, default: "" })
  userId: string;

  @Column({ name: "workflow_id", type: "varchar", length: 256, default: "" })
  workflowId: string;

  @Column({ name: "workflow_version", type: "varchar", length: 64, default: "" })
  workflowVersion: string;

  @Column({ type: "jsonb", default: {} })
  data: Record<string, unknown>;

  /** Queried with `labels @> $1`, served by a GIN (jsonb_path_ops) index written by hand in the migration. */
  @Index("ix_sessions_labels", { synchronize: false })
  @Column({ type: "jsonb", default: {} })
  labels: Record<string, string>;

  @Column({ type: "varchar", length: 16, default: "active" })
  state: "active" | "cancelled";

  /** Bumped on every change; the etag is derived from it. */
  @Column({ type: "integer", default: 1 })
  version: number;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;

  @Column({ name: "update_time", type: "timestamptz", precision: 3, default: () => "now()" })
  updateTime: Date;

  /** The last activity (creation, an update, turns, spans, an annotation, a participant bound), kept by every such writer in its transaction. */
  @Column({ name: "last_activity_time", type: "timestamptz", precision: 3, default: () => "now()" })
  lastActivityTime: Date;

  @Column({ name: "delete_time", type: "timestamptz", precision: 3, nullable: true })
  deleteTime: Date | null;

  @Column({ name: "expire_time", type: "timestamptz", precision: 3 })
  expireTime: Date;

  @Column({ name: "max_requests_per_minute", type: "integer" })
  maxRequestsPerMinute: number;

  /** SHA-256 of the session's current client secret; NULL once revoked (CancelSession). */
  @Column({ name: "client_secret_hash", type: "bytea", nullable: true })
  clientSecretHash: Buffer | null;

  @Column({ name: "participant_count", type: "integer", default: 0 })
  participantCount: number;

  @Column({ name: "turn_count", type: "integer", default: 0 })
  turnCount: number;

  @Column({ name: "trace_count", type: "integer", default: 0 })
  traceCount: number;

  @Column({ name: "span_count", type: "integer", default: 0 })
  spanCount: number;

  /** Annotations on the session, its traces and its spans (not part of Session.stats). */
  @Column({ name: "annotation_count", type: "integer", default: 0 })
  annotationCount: number;

  /** Sequence number of the last turn appended; never reset, so numbering continues after a truncate. */
  @Column({ name: "last_turn_seq", type: "bigint", default: 0 })
  lastTurnSeq: string;

  @Column({ name: "memories_extracted", type: "integer", default: 0 })
  memoriesExtracted: number;

  @Column({ name: "integration_count", type: "integer", default: 0 })
  integrationCount: number;

  /**
   * Turns up to this sequence number are archived by a compaction (CompactSession): kept, but out of the
   * live list, where the newest compaction's summary stands for them. 0: never compacted. Never lowered
   * (a truncate removes the archived turns but not the mark, as it keeps last_turn_seq).
   */
  @Column({ name: "compacted_seq", type: "bigint", default: 0 })
  compactedSeq: string;

  /** Compactions the session holds (rows of session_compactions; a truncate removes them). */
  @Column({ name: "compaction_count", type: "integer", default: 0 })
  compactionCount: number;

  /** Turns the session holds that are archived (counted in turn_count too). */
  @Column({ name: "archived_turn_count", type: "integer", default: 0 })
  archivedTurnCount: number;

  /** Changes recorded in session_changes so far (the number of the last one): bumped by every writer of a change, in its statement. */
  @Column({ name: "change_seq", type: "bigint", default: 0 })
  changeSeq: string;
}
