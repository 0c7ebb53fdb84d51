/**
 * For client code: check once, at start-up, that the sessiond you talk to has what you need, and get a
 * readable error when it does not (rather than UNIMPLEMENTED in the middle of your work).
 *
 *   const transport = createConnectTransport({ baseUrl, httpVersion: "1.1" });
 *   await requireCapabilities(transport, ["sessions.bulk_delete.stream", "otlp.http"]);
 */
import { createClient, type Transport } from "@connectrpc/connect";
import { ServerInfoService } from "../../gen/sessiond/v1/server_info_service_pb.js";

/** The server lacks capabilities the client needs. */
export class MissingCapabilityError extends Error {
  override name = "MissingCapabilityError";
  constructor(
    /** The capabilities the server does not have. */
    readonly missing: string[],
    /** The server's version. */
    readonly serverVersion: string,
  ) {
    super(`sessiond ${serverVersion} lacks ${missing.map((m) => `"${m}"`).join(", ")}; upgrade the server or do without ${missing.length > 1 ? "these features" : "this feature"}`);
  }
}

/** Returns the server's version and capabilities; throws MissingCapabilityError when `needed` are not all there. */
export async function requireCapabilities(transport: Transport, needed: string[]): Promise<{ version: string; capabilities: string[] }> {
  const info = await createClient(ServerInfoService, transport).getServerInfo({});
  const missing = needed.filter((c) => !info.capabilities.includes(c));
  if (missing.length) throw new MissingCapabilityError(missing, info.version);
  return { version: info.version, capabilities: info.capabilities };
}
