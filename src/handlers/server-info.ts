/**
 * ServerInfoService: the version and the capability list, open to every caller.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { CAPABILITIES } from "../domain/capabilities.js";
import { VERSION } from "../version.js";
import { GetServerInfoResponseSchema, ServerInfoService } from "../../gen/sessiond/v1/server_info_service_pb.js";

/** Builds the ServerInfoService implementation. */
export function createServerInfoHandlers(): ServiceImpl<typeof ServerInfoService> {
  return {
    getServerInfo: () => create(GetServerInfoResponseSchema, { version: VERSION, capabilities: [...CAPABILITIES] }),
  };
}
