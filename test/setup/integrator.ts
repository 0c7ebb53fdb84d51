/**
 * A real Connect IntegratorService on a free port for tests that point a namespace at a remote
 * integrator: `behave` decides each answer, `calls` records each request.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll } from "vitest";
import { IntegratorService, type IntegrateRequest } from "../../gen/sessiond/v1/integrator_service_pb.js";

export interface RemoteIntegrator {
  url: string;
  calls: IntegrateRequest[];
  behave: ServiceImpl<typeof IntegratorService>["integrate"];
}

/** Registers hooks that start the integrator before the file's tests and stop it after. */
export function useRemoteIntegrator(): RemoteIntegrator {
  const remote: RemoteIntegrator = { url: "", calls: [], behave: async () => ({ insights: [], memories: [] }) };
  let server: http.Server | undefined;
  beforeAll(async () => {
    server = http.createServer(
      connectNodeAdapter({
        routes: (router) =>
          router.service(IntegratorService, {
            integrate: (req, context) => {
              remote.calls.push(req);
              return remote.behave(req, context);
            },
          }),
      }),
    );
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    remote.url = `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));
  return remote;
}
