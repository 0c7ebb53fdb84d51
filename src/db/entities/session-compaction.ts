import { Column, Entity, JoinColumn, ManyToOne, PrimaryColumn } from "typeorm";
import { SessionEntity } from "./session.js";

/**
 * One compaction of a session (CompactSession): the turns first_seq .. up_to_seq were archived and this
 * summary stands for them (and for every earlier compaction's turns) in the live list. Goes with its
 * session; removed by TruncateSession with the turns it covers.
 */
@Entity({ name: "session_compactions" })
export class SessionCompactionEntity {
  /** First in the primary key: distributed by namespace under Citus, colocated with sessions. */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_session_compactions" })
  namespaceId: string;

  @PrimaryColumn({ name: "session_id", type: "uuid", primaryKeyConstraintName: "pk_session_compactions" })
  sessionId: string;

  /** The last turn it archived; the session's compacted_seq once it was made. */
  @PrimaryColumn({ name: "up_to_seq", type: "bigint", primaryKeyConstraintName: "pk_session_compactions" })
  upToSeq: string;

  @ManyToOne(() => SessionEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_session_compactions_session" },
    { name: "session_id", referencedColumnName: "id" },
  ])
  session?: SessionEntity;

  /** The first turn it archived (the previous compaction's up_to_seq + 1, or the session's first turn). */
  @Column({ name: "first_seq", type: "bigint" })
  firstSeq: string;

  /** How many turns it archived. */
  @Column({ name: "turns_archived", type: "integer" })
  turnsArchived: number;

  /** The summary that stands for the archived turns. */
  @Column({ type: "text" })
  summary: string;

  /** Who wrote the summary: "caller", or the name of the integrator that produced it (e.g. "rules"). */
  @Column({ type: "varchar", length: 64 })
  summarizer: string;

  /** The memories the integration run before the compaction added (ids; they may be deleted since). */
  @Column({ name: "memory_ids", type: "uuid", array: true, default: () => "'{}'" })
  memoryIds: string[];

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;
}
