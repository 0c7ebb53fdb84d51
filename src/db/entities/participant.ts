import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, Unique } from "typeorm";
import { SessionEntity } from "./session.js";

/** A user, agent, system or tool bound to a session. Goes with its session (FK cascade). */
@Entity({ name: "participants" })
@Unique("uq_participants_session_participant", ["namespaceId", "sessionId", "participantId"])
/**
 * A subject's participations across sessions (ForgetSubject). session_id last: a lookup of one
 * participant of one session reads one entry of this index too, should the planner pick it (on tables
 * never analyzed it may prefer it to the unique key).
 */
@Index("ix_participants_namespace_participant", ["namespaceId", "participantId", "sessionId"])
export class ParticipantEntity {
  /** UUIDv7 made by the database (TimeOrderedIds migration): later rows sort later, so lists by (create_time, id) follow creation order. */
  @PrimaryColumn({ type: "uuid", default: () => "sessiond_uuid_v7()", primaryKeyConstraintName: "pk_participants" })
  id: string;

  /** First in the primary key: the schema is distributable by namespace (NamespaceKeys migration). */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_participants" })
  namespaceId: string;

  @Column({ name: "session_id", type: "uuid" })
  sessionId: string;

  @ManyToOne(() => SessionEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_participants_session" },
    { name: "session_id", referencedColumnName: "id" },
  ])
  session?: SessionEntity;

  /** The caller's id for the participant, unique within the session. */
  @Column({ name: "participant_id", type: "varchar", length: 256 })
  participantId: string;

  @Column({ type: "varchar", length: 16 })
  kind: string;

  @Column({ name: "display_name", type: "varchar", length: 256, default: "" })
  displayName: string;

  @Column({ type: "jsonb", default: {} })
  metadata: Record<string, unknown>;

  /** What integration learned about this participant; cleared by TruncateSession. */
  @Column({ type: "jsonb", default: [] })
  insights: unknown[];

  /** Sequence number of the last turn fed to integration; 0 when never integrated. */
  @Column({ name: "last_integrated_seq", type: "bigint", default: 0 })
  lastIntegratedSeq: string;

  @Column({ name: "bound_time", type: "timestamptz", precision: 3, default: () => "now()" })
  boundTime: Date;

  @Column({ name: "left_time", type: "timestamptz", precision: 3, nullable: true })
  leftTime: Date | null;
}
