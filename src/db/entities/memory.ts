import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from "typeorm";
import { NamespaceEntity } from "./namespace.js";
import { SessionEntity } from "./session.js";

/**
 * Something learned from a session. Memories outlive their source session: deleting the session
 * empties `source_session_id` (ON DELETE SET NULL (source_session_id), written in the NamespaceKeys
 * migration: TypeORM declares only SET NULL, which would null namespace_id too, and reads the
 * constraint back as SET NULL, so the drift check agrees) unless the delete purges memories on purpose.
 */
@Entity({ name: "memories" })
@Index("ix_memories_source_session", ["namespaceId", "sourceSessionId"])
@Index("ix_memories_namespace_subject_user", ["namespaceId", "subjectUser"])
@Index("ix_memories_namespace_subject_participant", ["namespaceId", "subjectParticipantId"])
@Index("ix_memories_namespace_create_time", ["namespaceId", "createTime", "id"])
export class MemoryEntity {
  /** UUIDv7 made by the database (TimeOrderedIds migration): later rows sort later, so lists by (create_time, id) follow creation order. */
  @PrimaryColumn({ type: "uuid", default: () => "sessiond_uuid_v7()", primaryKeyConstraintName: "pk_memories" })
  id: string;

  /** First in the primary key: the schema is distributable by namespace (NamespaceKeys migration). */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_memories" })
  namespaceId: string;

  @ManyToOne(() => NamespaceEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn({ name: "namespace_id", foreignKeyConstraintName: "fk_memories_namespace" })
  namespace?: NamespaceEntity;

  @Column({ name: "source_session_id", type: "uuid", nullable: true })
  sourceSessionId: string | null;

  @ManyToOne(() => SessionEntity, { onDelete: "SET NULL", nullable: true })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_memories_source_session" },
    { name: "source_session_id", referencedColumnName: "id" },
  ])
  sourceSession?: SessionEntity | null;

  @Column({ name: "subject_participant_id", type: "varchar", length: 256, default: "" })
  subjectParticipantId: string;

  @Column({ name: "subject_user", type: "varchar", length: 256, default: "" })
  subjectUser: string;

  @Column({ type: "text" })
  content: string;

  /** participant_id of the participant whose integration produced the memory. */
  @Column({ name: "integrated_by", type: "varchar", length: 256, default: "" })
  integratedBy: string;

  @Column({ type: "jsonb", default: {} })
  metadata: Record<string, unknown>;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;
}
