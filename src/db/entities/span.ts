import { Column, Entity, JoinColumn, ManyToOne, PrimaryColumn, PrimaryGeneratedColumn, Unique } from "typeorm";
import { TraceEntity } from "./trace.js";

/** One span of a trace. Goes with its trace (and so with the trace's session). */
@Entity({ name: "spans" })
@Unique("uq_spans_trace_otel_span_id", ["namespaceId", "traceId", "otelSpanId"])
export class SpanEntity {
  @PrimaryGeneratedColumn("identity", { type: "bigint", primaryKeyConstraintName: "pk_spans" })
  id: string;

  /** First in the primary key: the schema is distributable by namespace (NamespaceKeys migration). */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_spans" })
  namespaceId: string;

  /** traces.id of the trace the span belongs to. */
  @Column({ name: "trace_id", type: "uuid" })
  traceId: string;

  @ManyToOne(() => TraceEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_spans_trace" },
    { name: "trace_id", referencedColumnName: "id" },
  ])
  trace?: TraceEntity;

  /** OpenTelemetry span id, 16 lowercase hex characters. */
  @Column({ name: "otel_span_id", type: "char", length: 16 })
  otelSpanId: string;

  @Column({ name: "otel_parent_span_id", type: "char", length: 16, nullable: true })
  otelParentSpanId: string | null;

  @Column({ type: "varchar", length: 1024 })
  name: string;

  @Column({ type: "smallint", default: 0 })
  kind: number;

  @Column({ name: "start_time", type: "timestamptz" })
  startTime: Date;

  @Column({ name: "end_time", type: "timestamptz" })
  endTime: Date;

  @Column({ name: "status_code", type: "smallint", default: 0 })
  statusCode: number;

  @Column({ name: "status_message", type: "text", default: "" })
  statusMessage: string;

  @Column({ type: "jsonb", default: {} })
  attributes: Record<string, unknown>;

  @Column({ type: "jsonb", default: [] })
  events: unknown[];
}
