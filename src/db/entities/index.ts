/** Every entity, in dependency order; the DataSource and the migration check use this list. */
import { AnnotationEntity } from "./annotation.js";
import { ApiKeyEntity } from "./api-key.js";
import { AuditEventEntity } from "./audit-event.js";
import { ClientRequestEntity } from "./client-request.js";
import { MemoryEntity } from "./memory.js";
import { NamespaceEntity } from "./namespace.js";
import { OperationEntity } from "./operation.js";
import { OperationBatchEntity } from "./operation-batch.js";
import { ParticipantEntity } from "./participant.js";
import { RetentionPolicyEntity } from "./retention-policy.js";
import { SessionEntity } from "./session.js";
import { SessionChangeEntity } from "./session-change.js";
import { SessionCompactionEntity } from "./session-compaction.js";
import { SpanEntity } from "./span.js";
import { TraceEntity } from "./trace.js";
import { TurnEntity } from "./turn.js";
import { TurnRequestEntity } from "./turn-request.js";

export { AnnotationEntity, ApiKeyEntity, AuditEventEntity, ClientRequestEntity, MemoryEntity, NamespaceEntity, OperationBatchEntity, OperationEntity, ParticipantEntity, RetentionPolicyEntity, SessionChangeEntity, SessionCompactionEntity, SessionEntity, SpanEntity, TraceEntity, TurnEntity, TurnRequestEntity };

export const entities = [NamespaceEntity, SessionEntity, ParticipantEntity, TurnEntity, TurnRequestEntity, TraceEntity, SpanEntity, AnnotationEntity, MemoryEntity, ApiKeyEntity, ClientRequestEntity, AuditEventEntity, OperationEntity, OperationBatchEntity, RetentionPolicyEntity, SessionChangeEntity, SessionCompactionEntity];
