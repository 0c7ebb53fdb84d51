import { Column, Entity, Index, PrimaryColumn } from "typeorm";

/**
 * One mutating call. Deliberately without foreign keys: the record of who deleted a namespace, a
 * session or a key outlives what it names. `namespace_id` is kept for filtering; `namespace` is the
 * name at the time of the call.
 */
@Entity({ name: "audit_events" })
@Index("ix_audit_events_time", ["time", "id"])
@Index("ix_audit_events_namespace_time", ["namespaceId", "time", "id"])
@Index("ix_audit_events_actor_time", ["actor", "time", "id"])
export class AuditEventEntity {
  /**
   * UUIDv7: later rows sort later, so the list by (time, id) keeps the order of events of one
   * millisecond. Chosen by the audit log (newUuid in domain/ids.ts); the default (TimeOrderedIds
   * migration) makes the same kind.
   */
  @PrimaryColumn({ type: "uuid", default: () => "sessiond_uuid_v7()", primaryKeyConstraintName: "pk_audit_events" })
  id: string;

  @Column({ type: "timestamptz", precision: 3 })
  time: Date;

  @Column({ name: "namespace_id", type: "uuid", nullable: true })
  namespaceId: string | null;

  @Column({ type: "varchar", length: 63, default: "" })
  namespace: string;

  @Column({ type: "varchar", length: 160 })
  actor: string;

  @Column({ type: "varchar", length: 160 })
  method: string;

  @Column({ name: "item_count", type: "integer" })
  itemCount: number;

  @Column({ type: "varchar", length: 32 })
  code: string;

  @Column({ name: "request_id", type: "varchar", length: 128 })
  requestId: string;

  /** What the call did beyond its item count, for calls that say more (ForgetSubject: digests and counts, never content). */
  @Column({ type: "jsonb", nullable: true })
  detail: Record<string, unknown> | null;
}
