import { Column, Entity, JoinColumn, ManyToOne, PrimaryColumn } from "typeorm";
import { SessionEntity } from "./session.js";

/**
 * An AppendTurns call made with a request_id: which turns it appended and a fingerprint of what it
 * asked for, so a retry returns the same turns and a reuse with other turns is refused. The primary key
 * makes two concurrent calls with one request_id append once. Goes with its session; cleared by
 * TruncateSession together with the turns.
 */
@Entity({ name: "turn_requests" })
export class TurnRequestEntity {
  /** First in the primary key: the schema is distributable by namespace (NamespaceKeys migration). */
  @PrimaryColumn({ name: "namespace_id", type: "uuid", primaryKeyConstraintName: "pk_turn_requests" })
  namespaceId: string;

  @PrimaryColumn({ name: "session_id", type: "uuid", primaryKeyConstraintName: "pk_turn_requests" })
  sessionId: string;

  @PrimaryColumn({ name: "request_id", type: "varchar", length: 128, primaryKeyConstraintName: "pk_turn_requests" })
  requestId: string;

  @ManyToOne(() => SessionEntity, { onDelete: "CASCADE", nullable: false })
  @JoinColumn([
    { name: "namespace_id", referencedColumnName: "namespaceId", foreignKeyConstraintName: "fk_turn_requests_session" },
    { name: "session_id", referencedColumnName: "id" },
  ])
  session?: SessionEntity;

  /** Sequence number of the first turn the call appended. */
  @Column({ name: "first_seq", type: "bigint" })
  firstSeq: string;

  @Column({ name: "turn_count", type: "integer" })
  turnCount: number;

  /** sha256 of the request's turns in canonical form. */
  @Column({ type: "varchar", length: 64 })
  fingerprint: string;

  @Column({ name: "create_time", type: "timestamptz", precision: 3, default: () => "now()" })
  createTime: Date;
}
