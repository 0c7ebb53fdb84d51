/** Every entity, in dependency order; the DataSource and the migration check use this list. */
import { AnnotationEntity } from "./annotation.js";
import { MemoryEntity } from "./memory.js";
import { NamespaceEntity } from "./namespace.js";
import { ParticipantEntity } from "./participant.js";
import { SessionEntity } from "./session.js";
import { SpanEntity } from "./span.js";
import { TraceEntity } from "./trace.js";
import { TurnEntity } from "./turn.js";
import { TurnRequestEntity } from "./turn-request.js";

export { AnnotationEntity, MemoryEntity, NamespaceEntity, ParticipantEntity, SessionEntity, SpanEntity, TraceEntity, TurnEntity, TurnRequestEntity };

export const entities = [NamespaceEntity, SessionEntity, ParticipantEntity, TurnEntity, TurnRequestEntity, TraceEntity, SpanEntity, AnnotationEntity, MemoryEntity];
