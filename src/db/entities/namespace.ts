import { Check, Column, CreateDateColumn, Entity, PrimaryColumn, Unique } from "typeorm";

/** A tenant. Every other table carries its id; deleting a namespace deletes everything in it. */
@Entity({ name: "namespaces" })
@Unique("uq_namespaces_name", ["name"])
@Check("ck_namespaces_integrator_kind", `"integrator_kind" IN ('rules', 'remote')`)
export class NamespaceEntity {
  /** UUIDv7 made by the database (TimeOrderedIds migration): later rows sort later, so lists by (create_time, id) follow creation order. */
  @PrimaryColumn({ type: "uuid", default: () => "sessiond_uuid_v7()", primaryKeyConstraintName: "pk_namespaces" })
  id: string;

  @Column({ type: "varchar", length: 63 })
  name: string;

  /** Which integrator IntegrateSession uses: the built-in rules or a remote IntegratorService. */
  @Column({ name: "integrator_kind", type: "varchar", length: 16, default: "rules" })
  integratorKind: "rules" | "remote";

  /** Base URL of the remote IntegratorService; empty for rules. */
  @Column({ name: "integrator_url", type: "varchar", length: 2048, default: "" })
  integratorUrl: string;

  @Column({ name: "integrator_timeout_ms", type: "integer", default: 10000 })
  integratorTimeoutMs: number;

  @CreateDateColumn({ name: "create_time", type: "timestamptz", precision: 3 })
  createTime: Date;
}
