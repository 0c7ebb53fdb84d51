/**
 * MemoryService handlers: protobuf in, one domain call, protobuf out.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { DeleteMemoriesSelector, MemoryService as Memories } from "../domain/memory-service.js";
import {
  DeleteMemoriesResponseSchema,
  GetIntegratorConfigResponseSchema,
  ListMemoriesResponseSchema,
  MemoryService,
  UpdateIntegratorConfigResponseSchema,
  type DeleteMemoriesRequest,
} from "../../gen/sessiond/v1/memory_service_pb.js";
import { integratorConfigFromProto, integratorConfigToProto, memoryToProto } from "./conversation-mapper.js";

function selectorFromProto(req: DeleteMemoriesRequest): DeleteMemoriesSelector {
  const s = req.selector;
  switch (s.case) {
    case "ids":
      return { kind: "ids", values: s.value.values };
    case "sourceSession":
      return { kind: "sourceSession", id: s.value };
    case "sourceSessionId":
      return { kind: "sourceSessionId", sessionId: s.value };
    case "subject":
      return { kind: "subject", participantId: s.value.participantId, user: s.value.user };
    default:
      return { kind: "none" };
  }
}

/** Builds the MemoryService implementation over the domain service. */
export function createMemoryHandlers(memories: Memories): ServiceImpl<typeof MemoryService> {
  return {
    async listMemories(req) {
      const page = await memories.list(req);
      return create(ListMemoriesResponseSchema, { memories: page.memories.map(memoryToProto), nextPageToken: page.nextPageToken });
    },

    async deleteMemories(req) {
      return create(DeleteMemoriesResponseSchema, { deletedCount: await memories.delete(req.namespace, selectorFromProto(req)) });
    },

    async getIntegratorConfig(req) {
      return create(GetIntegratorConfigResponseSchema, { config: integratorConfigToProto(await memories.integratorConfig(req.namespace)) });
    },

    async updateIntegratorConfig(req) {
      const config = await memories.updateIntegratorConfig(req.namespace, integratorConfigFromProto(req.config));
      return create(UpdateIntegratorConfigResponseSchema, { config: integratorConfigToProto(config) });
    },
  };
}
