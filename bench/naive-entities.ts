/**
 * The session graph mapped the way a typical TypeORM user maps it: OneToMany relations with ORM
 * cascades (`cascade: ["remove"]`), deleted by loading the graph and calling `repository.remove`.
 * Used only by bench:bulk-delete to document the gap to database cascades. Only ids and keys are mapped.
 */
import { Column, Entity, JoinColumn, ManyToOne, OneToMany, PrimaryColumn } from "typeorm";

@Entity({ name: "sessions" })
export class NaiveSession {
  @PrimaryColumn({ type: "uuid" }) id: string;
  @OneToMany(() => NaiveParticipant, (p) => p.session, { cascade: ["remove"] }) participants: NaiveParticipant[];
  @OneToMany(() => NaiveTrace, (t) => t.session, { cascade: ["remove"] }) traces: NaiveTrace[];
}

@Entity({ name: "participants" })
export class NaiveParticipant {
  @PrimaryColumn({ type: "uuid" }) id: string;
  @Column({ name: "session_id", type: "uuid" }) sessionId: string;
  @ManyToOne(() => NaiveSession, (s) => s.participants) @JoinColumn({ name: "session_id" }) session: NaiveSession;
  @OneToMany(() => NaiveTurn, (t) => t.participant, { cascade: ["remove"] }) turns: NaiveTurn[];
}

@Entity({ name: "turns" })
export class NaiveTurn {
  @PrimaryColumn({ type: "bigint" }) id: string;
  @Column({ name: "participant_ref", type: "uuid" }) participantRef: string;
  @ManyToOne(() => NaiveParticipant, (p) => p.turns) @JoinColumn({ name: "participant_ref" }) participant: NaiveParticipant;
}

@Entity({ name: "traces" })
export class NaiveTrace {
  @PrimaryColumn({ type: "uuid" }) id: string;
  @Column({ name: "session_id", type: "uuid" }) sessionId: string;
  @ManyToOne(() => NaiveSession, (s) => s.traces) @JoinColumn({ name: "session_id" }) session: NaiveSession;
  @OneToMany(() => NaiveSpan, (s) => s.trace, { cascade: ["remove"] }) spans: NaiveSpan[];
  @OneToMany(() => NaiveAnnotation, (a) => a.trace, { cascade: ["remove"] }) annotations: NaiveAnnotation[];
}

@Entity({ name: "spans" })
export class NaiveSpan {
  @PrimaryColumn({ type: "bigint" }) id: string;
  @Column({ name: "trace_id", type: "uuid" }) traceId: string;
  @ManyToOne(() => NaiveTrace, (t) => t.spans) @JoinColumn({ name: "trace_id" }) trace: NaiveTrace;
}

@Entity({ name: "annotations" })
export class NaiveAnnotation {
  @PrimaryColumn({ type: "uuid" }) id: string;
  @Column({ name: "trace_id", type: "uuid" }) traceId: string;
  @ManyToOne(() => NaiveTrace, (t) => t.annotations) @JoinColumn({ name: "trace_id" }) trace: NaiveTrace;
}

export const naiveEntities = [NaiveSession, NaiveParticipant, NaiveTurn, NaiveTrace, NaiveSpan, NaiveAnnotation];
