import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, PrimaryGeneratedColumn } from "typeorm";
import { NamespaceEntity } from "./namespace.js";
import { SessionEntity } from "./session.js";

/**
 * A request admitted with a session's client secret in the last minute: the sliding-window log that
 * max_requests_per_minute is enforced against, shared by every server process. Written and pruned by
 * the `sessiond_admit_client_request` function (see the Tenancy migration).
 */
@Entity({ name: "client_requests" })
@Index("ix_client_requests_session_at", ["namespaceId", "sessionId", "at"])
@Index("ix_client_requests_namespace", ["namespaceId"])
export class ClientRequestEntity {
  @PrimaryGeneratedColumn("identity", { primaryKeyConstraintName: "pk_client_requests", type: "bigint" })
  id: string;

  /** First in the primary key: the schema is distributable by namespace (NamespaceKeys migration). */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_client_requests" })
  namespaceId: string;

  @ManyToOne(() => NamespaceEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn({ name: "namespace_id", foreignKeyConstraintName: "fk_client_requests_namespace" })
  namespace?: NamespaceEntity;

  @Column({ name: "session_id", type: "uuid" })
  sessionId: string;

  @ManyToOne(() => SessionEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_client_requests_session" },
    { name: "session_id", referencedColumnName: "id" },
  ])
  session?: SessionEntity;

  @Column({ type: "timestamptz", precision: 3 })
  at: Date;
}
