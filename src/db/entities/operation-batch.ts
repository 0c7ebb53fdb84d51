import { Column, Entity, JoinColumn, ManyToOne, PrimaryColumn } from "typeorm";
import { OperationEntity } from "./operation.js";

/**
 * One committed batch of an operation: its per-id results and the counters after it, written in the
 * transaction that deleted its sessions, so a batch is recorded exactly when its deletion commits.
 * WatchOperation replays these.
 */
@Entity({ name: "operation_batches" })
export class OperationBatchEntity {
  @PrimaryColumn({ name: "operation_id", type: "uuid", primaryKeyConstraintName: "pk_operation_batches" })
  operationId: string;

  @ManyToOne(() => OperationEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn({ name: "operation_id", foreignKeyConstraintName: "fk_operation_batches_operation" })
  operation?: OperationEntity;

  /** 1, 2, ... in commit order. */
  @PrimaryColumn({ type: "integer", primaryKeyConstraintName: "pk_operation_batches" })
  number: number;

  /** The batch's results and the counters after it, as the domain reports them. */
  @Column({ type: "jsonb" })
  progress: unknown;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;
}
