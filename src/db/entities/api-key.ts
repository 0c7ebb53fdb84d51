import { Check, Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from "typeorm";
import { NamespaceEntity } from "./namespace.js";

/**
 * An API key. Only a SHA-256 hash of the secret is stored (secrets are 256-bit random strings, or
 * the operator's bootstrap secret of at least 32 characters), plus its first characters so that
 * people can tell keys apart. A key of one namespace goes with it; `namespace_id` NULL means all.
 */
@Entity({ name: "api_keys" })
@Index("ix_api_keys_namespace_create_time", ["namespaceId", "createTime", "id"])
@Index("ix_api_keys_create_time", ["createTime", "id"])
@Index("uq_api_keys_bootstrap", ["bootstrap"], { unique: true, where: `"bootstrap"` })
@Check("ck_api_keys_role", `"role" IN ('reader', 'writer', 'admin')`)
export class ApiKeyEntity {
  /**
   * UUIDv7: later rows sort later, so lists by (create_time, id) follow creation order. Chosen by
   * CreateApiKey (newUuid in domain/ids.ts: its secret names it) or, for the bootstrap key, by the database; the default (TimeOrderedIds migration) makes the same kind.
   */
  @PrimaryColumn({ type: "uuid", default: () => "sessiond_uuid_v7()", primaryKeyConstraintName: "pk_api_keys" })
  id: string;

  @Column({ name: "namespace_id", type: "uuid", nullable: true })
  namespaceId: string | null;

  @ManyToOne(() => NamespaceEntity, { onDelete: "CASCADE", nullable: true })
  @JoinColumn({ name: "namespace_id", foreignKeyConstraintName: "fk_api_keys_namespace" })
  namespace?: NamespaceEntity;

  @Column({ name: "display_name", type: "varchar", length: 128 })
  displayName: string;

  @Column({ type: "varchar", length: 8 })
  role: "reader" | "writer" | "admin";

  /** SHA-256 of the whole secret. */
  @Column({ name: "secret_hash", type: "bytea" })
  secretHash: Buffer;

  @Column({ name: "secret_prefix", type: "varchar", length: 16 })
  secretPrefix: string;

  /** The key made from SESSIOND_BOOTSTRAP_ADMIN_KEY (at most one). */
  @Column({ type: "boolean", default: false })
  bootstrap: boolean;

  @Column({ name: "created_by", type: "varchar", length: 128, default: "" })
  createdBy: string;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;

  @Column({ name: "expire_time", type: "timestamptz", precision: 3, nullable: true })
  expireTime: Date | null;

  @Column({ name: "revoke_time", type: "timestamptz", precision: 3, nullable: true })
  revokeTime: Date | null;
}
