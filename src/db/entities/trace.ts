import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, Unique } from "typeorm";
import { NamespaceEntity } from "./namespace.js";
import { SessionEntity } from "./session.js";

/** A trace, recorded against a session or (spans without a session id) against none. */
@Entity({ name: "traces" })
@Unique("uq_traces_namespace_otel_trace_id", ["namespaceId", "otelTraceId"])
@Index("ix_traces_namespace_session_create_time", ["namespaceId", "sessionId", "createTime", "id"])
export class TraceEntity {
  /** UUIDv7 made by the database (TimeOrderedIds migration): later rows sort later, so lists by (create_time, id) follow creation order. */
  @PrimaryColumn({ type: "uuid", default: () => "sessiond_uuid_v7()", primaryKeyConstraintName: "pk_traces" })
  id: string;

  /** First in the primary key: the schema is distributable by namespace (NamespaceKeys migration). */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_traces" })
  namespaceId: string;

  @ManyToOne(() => NamespaceEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn({ name: "namespace_id", foreignKeyConstraintName: "fk_traces_namespace" })
  namespace?: NamespaceEntity;

  @Column({ name: "session_id", type: "uuid", nullable: true })
  sessionId: string | null;

  @ManyToOne(() => SessionEntity, { onDelete: "CASCADE", nullable: true })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_traces_session" },
    { name: "session_id", referencedColumnName: "id" },
  ])
  session?: SessionEntity | null;

  /** OpenTelemetry trace id, 32 lowercase hex characters. */
  @Column({ name: "otel_trace_id", type: "char", length: 32 })
  otelTraceId: string;

  /** Name of the root span, once it has arrived. */
  @Column({ name: "root_name", type: "varchar", length: 1024, default: "" })
  rootName: string;

  @Column({ name: "start_time", type: "timestamptz", nullable: true })
  startTime: Date | null;

  @Column({ name: "end_time", type: "timestamptz", nullable: true })
  endTime: Date | null;

  @Column({ name: "span_count", type: "integer", default: 0 })
  spanCount: number;

  @Column({ name: "status_code", type: "smallint", default: 0 })
  statusCode: number;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;
}
