/** Every entity, in dependency order; the DataSource and the migration check use this list. */
import { AnnotationEntity } from "./annotation.js";
import { MemoryEntity } from "./memory.js";
import { NamespaceEntity } from "./namespace.js";
import { ParticipantEntity } from "./participant.js";
import { SessionEntity } from "./session.js";
import { SpanEntity } from "./span.js";
import { TraceEntity } from "./trace.js";
import { TurnEntity } from "./turn.js";

export { AnnotationEntity, MemoryEntity, NamespaceEntity, ParticipantEntity, SessionEntity, SpanEntity, TraceEntity, TurnEntity };

export const entities = [NamespaceEntity, SessionEntity, ParticipantEntity, TurnEntity, TraceEntity, SpanEntity, AnnotationEntity, MemoryEntity];
