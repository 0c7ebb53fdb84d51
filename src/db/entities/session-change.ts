import { Check, Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from "typeorm";
import { NamespaceEntity } from "./namespace.js";

/**
 * The outbox of session changes other than turns appended: one row per change, written by the statement
 * that makes the change (in its transaction, under the session row lock), numbered per session by
 * sessions.change_seq. WatchSession reads a session's rows by `change`; WatchSessions reads a namespace's
 * rows by `feed_position`, given in commit order by the feed's sequencer (watch-store.ts). Rows outlive
 * their session (no foreign key to it: a DELETED change is the last row of a deleted session) and are
 * pruned by the sweeper after SESSIOND_WATCH_RETENTION.
 */
@Entity({ name: "session_changes" })
@Check("ck_session_changes_kind", `"kind" IN ('created', 'updated', 'cancelled', 'soft_deleted', 'undeleted', 'truncated', 'participant_bound', 'participant_unbound', 'compacted', 'deleted')`)
@Index("ix_session_changes_feed", ["namespaceId", "feedPosition"], { where: `"feed_position" IS NOT NULL` })
@Index("ix_session_changes_unsequenced", ["namespaceId", "createTime"], { where: `"feed_position" IS NULL` })
@Index("ix_session_changes_create_time", ["createTime"])
export class SessionChangeEntity {
  /** First in the primary key: distributed by namespace under Citus, colocated with sessions. */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_session_changes" })
  namespaceId: string;

  @ManyToOne(() => NamespaceEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn({ name: "namespace_id", foreignKeyConstraintName: "fk_session_changes_namespace" })
  namespace?: NamespaceEntity;

  @PrimaryColumn({ name: "session_id", type: "uuid", primaryKeyConstraintName: "pk_session_changes" })
  sessionId: string;

  /** The session's change_seq after this change: 1 for its creation, dense per session. */
  @PrimaryColumn({ type: "bigint", primaryKeyConstraintName: "pk_session_changes" })
  change: string;

  @Column({ type: "varchar", length: 24 })
  kind: string;

  /** The session's last_turn_seq when the change was made (turns up to it come before the change). */
  @Column({ name: "at_seq", type: "bigint" })
  atSeq: string;

  /** The session's caller id (kept for a deleted session's feed change). */
  @Column({ name: "external_id", type: "varchar", length: 256 })
  externalId: string;

  /** The session's row as the change left it, without its secret; NULL for participant changes. */
  @Column({ type: "jsonb", nullable: true })
  session: Record<string, unknown> | null;

  /** The participant (participant changes), the turns deleted (truncated) or the counts (deleted). */
  @Column({ type: "jsonb", nullable: true })
  detail: Record<string, unknown> | null;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "clock_timestamp()" })
  createTime: Date;

  /** Order in the namespace's feed, given after commit by the sequencer; NULL until then. */
  @Column({ name: "feed_position", type: "bigint", nullable: true })
  feedPosition: string | null;
}
