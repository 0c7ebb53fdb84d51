/**
 * Stream resets on one HTTP/2 connection (SESSIOND_HTTP2_RESET_BURST / _RATE): a client that cancels
 * many calls keeps its connection with the defaults, and a flood beyond the configured limit loses it
 * (GOAWAY INTERNAL_ERROR), the defence against "rapid reset". Each reset here is a Health/Watch stream
 * (it never ends by itself) cancelled by the client once the server has answered its headers.
 */
import http2 from "node:http2";
import { describe, expect, it } from "vitest";
import { useServer } from "../setup/server.js";

/** A gRPC frame holding an empty HealthCheckRequest. */
const EMPTY_REQUEST = Buffer.from([0, 0, 0, 0, 0]);

/** Opens a Health/Watch stream on `session` and resets it once its response headers arrive. */
function watchAndCancel(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
    stream.on("response", () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on("error", () => {});
    stream.on("close", () => resolve());
    stream.end(EMPTY_REQUEST);
  });
}

/** Cancels `n` watches on one connection, `inFlight` at a time; resolves with the GOAWAY code the server sent, if any. */
async function cancelMany(url: string, n: number, inFlight = 50): Promise<{ goaway?: number; session: http2.ClientHttp2Session }> {
  const session = http2.connect(url);
  session.on("error", () => {});
  let goaway: number | undefined;
  session.on("goaway", (code) => (goaway = code));
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n && goaway === undefined && !session.destroyed) {
        next++;
        await watchAndCancel(session);
      }
    }),
  );
  return { goaway, session };
}

/** One Health/Check on `session`: its grpc-status. */
function check(session: http2.ClientHttp2Session): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    stream.on("trailers", (t) => resolve(String(t["grpc-status"])));
    stream.on("error", reject);
    stream.resume();
    stream.end(EMPTY_REQUEST);
  });
}

describe("with the default reset limits", () => {
  const server = useServer();

  it("keeps the connection of a client that cancels 3,000 calls in a row", async () => {
    const { goaway, session } = await cancelMany(server.url, 3000);
    try {
      expect(goaway).toBeUndefined();
      expect(await check(session)).toBe("0");
    } finally {
      session.close();
    }
  });
});

describe("with SESSIOND_HTTP2_RESET_BURST=100 and SESSIOND_HTTP2_RESET_RATE=1", () => {
  const server = useServer({ SESSIOND_HTTP2_RESET_BURST: "100", SESSIOND_HTTP2_RESET_RATE: "1" });

  it("closes the connection of a client resetting faster (GOAWAY INTERNAL_ERROR), and serves a new one", async () => {
    const { goaway, session } = await cancelMany(server.url, 3000);
    session.destroy();
    expect(goaway).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    const fresh = http2.connect(server.url);
    try {
      expect(await check(fresh)).toBe("0");
    } finally {
      fresh.close();
    }
  });
});
