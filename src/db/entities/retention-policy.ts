import { Column, Entity, JoinColumn, OneToOne, PrimaryColumn } from "typeorm";
import { NamespaceEntity } from "./namespace.js";

/**
 * A namespace's own retention policy (domain/retention.ts); a namespace without one follows the
 * server's default. Durations in milliseconds; NULL keeps data forever. Goes with its namespace.
 */
@Entity({ name: "retention_policies" })
export class RetentionPolicyEntity {
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_retention_policies" })
  namespaceId: string;

  @OneToOne(() => NamespaceEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn({ name: "namespace_id", foreignKeyConstraintName: "fk_retention_policies_namespace" })
  namespace?: NamespaceEntity;

  @Column({ name: "max_age_ms", type: "bigint", nullable: true })
  maxAgeMs: string | null;

  @Column({ name: "max_idle_ms", type: "bigint", nullable: true })
  maxIdleMs: string | null;

  @Column({ name: "purge_memories", type: "boolean", default: false })
  purgeMemories: boolean;

  @Column({ name: "hold_labels", type: "text", array: true, default: () => "'{}'" })
  holdLabels: string[];

  @Column({ name: "sessionless_trace_ttl_ms", type: "bigint", nullable: true })
  sessionlessTraceTtlMs: string | null;

  @Column({ name: "update_time", type: "timestamptz", precision: 3, default: () => "now()" })
  updateTime: Date;
}
