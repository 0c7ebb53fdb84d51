import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, PrimaryGeneratedColumn, Unique } from "typeorm";
import { ParticipantEntity } from "./participant.js";
import { SessionEntity } from "./session.js";

/** One turn of the conversation, numbered per session. Goes with its session and its participant. */
@Entity({ name: "turns" })
@Unique("uq_turns_session_seq", ["namespaceId", "sessionId", "seq"])
@Index("ix_turns_participant_seq", ["namespaceId", "participantRef", "seq"])
/** GIN over search_vector, for SearchTurns (made by migration TurnSearch). */
@Index("ix_turns_search", { synchronize: false })
export class TurnEntity {
  @PrimaryGeneratedColumn("identity", { type: "bigint", primaryKeyConstraintName: "pk_turns" })
  id: string;

  /** First in the primary key: the schema is distributable by namespace (NamespaceKeys migration). */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_turns" })
  namespaceId: string;

  @Column({ name: "session_id", type: "uuid" })
  sessionId: string;

  @ManyToOne(() => SessionEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_turns_session" },
    { name: "session_id", referencedColumnName: "id" },
  ])
  session?: SessionEntity;

  /** participants.id of the speaker. */
  @Column({ name: "participant_ref", type: "uuid" })
  participantRef: string;

  @ManyToOne(() => ParticipantEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_turns_participant" },
    { name: "participant_ref", referencedColumnName: "id" },
  ])
  participant?: ParticipantEntity;

  /** Gap-free, per-session sequence number starting at 1. */
  @Column({ type: "bigint" })
  seq: string;

  @Column({ type: "varchar", length: 32 })
  role: string;

  @Column({ type: "text" })
  content: string;

  /**
   * The content's text search vector (configuration 'english', see migration TurnSearch), stored: kept
   * by Postgres on every insert and update of the content, and read by SearchTurns for its matches,
   * rechecks and ranking instead of parsing each turn again.
   */
  @Column({
    name: "search_vector",
    type: "tsvector",
    generatedType: "STORED",
    asExpression: "to_tsvector('english'::regconfig, content)",
    select: false,
    insert: false,
    update: false,
  })
  searchVector?: string;

  @Column({ name: "tool_calls", type: "jsonb", default: [] })
  toolCalls: unknown[];

  @Column({ type: "jsonb", default: {} })
  metadata: Record<string, unknown>;

  @Column({ name: "request_id", type: "varchar", length: 128, nullable: true })
  requestId: string | null;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;
}
