import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from "typeorm";
import { NamespaceEntity } from "./namespace.js";
import { SessionEntity } from "./session.js";
import { SpanEntity } from "./span.js";
import { TraceEntity } from "./trace.js";

/**
 * A judgement on a session, trace or span. `session_id` is set whenever the target belongs to a
 * session, so the annotation goes with the session and can be counted by it.
 */
@Entity({ name: "annotations" })
@Index("ix_annotations_namespace", ["namespaceId"])
@Index("ix_annotations_session", ["namespaceId", "sessionId"])
@Index("ix_annotations_trace", ["namespaceId", "traceId"])
@Index("ix_annotations_span", ["namespaceId", "spanId"])
@Index("ix_annotations_target", ["namespaceId", "targetKey", "createTime", "id"])
@Index("uq_annotations_identifier", ["namespaceId", "targetKey", "name", "identifier"], { unique: true, where: `"identifier" <> ''` })
export class AnnotationEntity {
  /** UUIDv7 made by the database (TimeOrderedIds migration): later rows sort later, so lists by (create_time, id) follow creation order. */
  @PrimaryColumn({ type: "uuid", default: () => "sessiond_uuid_v7()", primaryKeyConstraintName: "pk_annotations" })
  id: string;

  /** First in the primary key: the schema is distributable by namespace (NamespaceKeys migration). */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_annotations" })
  namespaceId: string;

  @ManyToOne(() => NamespaceEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn({ name: "namespace_id", foreignKeyConstraintName: "fk_annotations_namespace" })
  namespace?: NamespaceEntity;

  @Column({ name: "session_id", type: "uuid", nullable: true })
  sessionId: string | null;

  @ManyToOne(() => SessionEntity, { onDelete: "CASCADE", nullable: true })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_annotations_session" },
    { name: "session_id", referencedColumnName: "id" },
  ])
  session?: SessionEntity | null;

  @Column({ name: "trace_id", type: "uuid", nullable: true })
  traceId: string | null;

  @ManyToOne(() => TraceEntity, { onDelete: "CASCADE", nullable: true })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_annotations_trace" },
    { name: "trace_id", referencedColumnName: "id" },
  ])
  trace?: TraceEntity | null;

  @Column({ name: "span_id", type: "bigint", nullable: true })
  spanId: string | null;

  @ManyToOne(() => SpanEntity, { onDelete: "CASCADE", nullable: true })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_annotations_span" },
    { name: "span_id", referencedColumnName: "id" },
  ])
  span?: SpanEntity | null;

  /** session, trace or span. */
  @Column({ name: "target_kind", type: "varchar", length: 8 })
  targetKind: string;

  /** The target as one key ("session:<uuid>", "trace:<uuid>", "span:<id>"): what lists and upserts go by. */
  @Column({ name: "target_key", type: "varchar", length: 64 })
  targetKey: string;

  @Column({ type: "varchar", length: 256 })
  name: string;

  @Column({ name: "annotator_kind", type: "varchar", length: 8 })
  annotatorKind: string;

  @Column({ type: "varchar", length: 256, default: "" })
  label: string;

  @Column({ type: "double precision", nullable: true })
  score: number | null;

  @Column({ type: "text", default: "" })
  explanation: string;

  @Column({ type: "jsonb", default: {} })
  metadata: Record<string, unknown>;

  /** Makes a repeated annotation of the same target and name an update. */
  @Column({ type: "varchar", length: 256, default: "" })
  identifier: string;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;

  @Column({ name: "update_time", type: "timestamptz", precision: 3, default: () => "now()" })
  updateTime: Date;
}
