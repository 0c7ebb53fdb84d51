import { Check, Column, Entity, Index, PrimaryColumn } from "typeorm";

/**
 * A long-running operation (domain/operations.ts): a bulk delete, a namespace deletion, a retention
 * sweep or an erasure (ForgetSubject), persisted so
 * that it survives the process running it. Deliberately without a foreign key to its namespace: the
 * record of a namespace's deletion outlives the namespace (`namespace` keeps its name). Stays on the
 * coordinator under Citus, like the audit log: small, read across namespaces by the processes that
 * claim work.
 */
@Entity({ name: "operations" })
@Index("ix_operations_namespace_time", ["namespaceId", "createTime", "id"])
@Index("ix_operations_open", ["createTime", "id"], { where: `"state" IN ('queued', 'running')` })
@Check("ck_operations_state", `"state" IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')`)
@Check("ck_operations_kind", `"kind" IN ('bulk_delete_sessions', 'delete_namespace', 'retention_sweep', 'forget_subject')`)
/** One open retention sweep per namespace: the sweeper of every process offers one, the first wins. */
@Index("uq_operations_open_sweep", ["namespaceId"], { unique: true, where: `"kind" = 'retention_sweep' AND "state" IN ('queued', 'running')` })
export class OperationEntity {
  /** UUIDv7, chosen by the database: later operations sort later. */
  @PrimaryColumn({ type: "uuid", default: () => "sessiond_uuid_v7()", primaryKeyConstraintName: "pk_operations" })
  id: string;

  @Column({ name: "namespace_id", type: "uuid" })
  namespaceId: string;

  /** The namespace's name when the operation was made. */
  @Column({ type: "varchar", length: 63 })
  namespace: string;

  @Column({ type: "varchar", length: 32 })
  kind: string;

  @Column({ type: "varchar", length: 16, default: "queued" })
  state: string;

  /** What to do, as the domain plans it (ids, filter, options). */
  @Column({ type: "jsonb" })
  request: unknown;

  /** Where the work stands: the next batch starts here. */
  @Column({ type: "jsonb" })
  cursor: unknown;

  /** Counters of identifiers reported and rows removed so far. */
  @Column({ type: "jsonb" })
  progress: unknown;

  /** What the operation produced at its end (a namespace deletion's last message); null before. */
  @Column({ type: "jsonb", nullable: true })
  result: unknown;

  @Column({ type: "integer", default: 0 })
  batches: number;

  @Column({ type: "boolean" })
  detach: boolean;

  @Column({ type: "varchar", length: 160 })
  actor: string;

  @Column({ type: "text", default: "" })
  error: string;

  @Column({ name: "cancel_requested", type: "boolean", default: false })
  cancelRequested: boolean;

  /** The process that runs it, while it runs. */
  @Column({ name: "lease_owner", type: "varchar", length: 128, nullable: true })
  leaseOwner: string | null;

  /** Until when that process's claim holds unless renewed; past it, any process may take the operation over. */
  @Column({ name: "lease_until", type: "timestamptz", precision: 3, nullable: true })
  leaseUntil: Date | null;

  @Column({ type: "integer", default: 0 })
  attempts: number;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;

  @Column({ name: "start_time", type: "timestamptz", precision: 3, nullable: true })
  startTime: Date | null;

  @Column({ name: "update_time", type: "timestamptz", precision: 3, default: () => "now()" })
  updateTime: Date;

  @Column({ name: "end_time", type: "timestamptz", precision: 3, nullable: true })
  endTime: Date | null;
}
