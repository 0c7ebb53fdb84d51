import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import {
  AlreadyExistsError,
  ConflictError,
  InvalidInputError,
  NamespaceGoneError,
  NotFoundError,
  PermissionDeniedError,
  PreconditionError,
  RateLimitedError,
  UnauthenticatedError,
  UnavailableError,
} from "../../src/domain/errors.js";
import { toConnectError } from "../../src/handlers/errors.js";
import { createLogger } from "../../src/logger.js";

/** toConnectError with a logger whose lines are kept. */
function convert(err: unknown) {
  const lines: string[] = [];
  const logger = createLogger("debug", { write: (l: string) => void lines.push(l) } as never);
  return { error: toConnectError(err, "req-1", logger), lines };
}

describe("toConnectError: domain errors keep their message and get their code", () => {
  it.each([
    [new InvalidInputError("labels", "at most 64 labels, got 65"), Code.InvalidArgument, "labels: at most 64 labels, got 65"],
    [new NotFoundError("session not found"), Code.NotFound, "session not found"],
    [new AlreadyExistsError("session_id taken"), Code.AlreadyExists, "session_id taken"],
    [new ConflictError("stale etag"), Code.Aborted, "stale etag"],
    [new PreconditionError("session is cancelled"), Code.FailedPrecondition, "session is cancelled"],
    [new UnauthenticatedError("no credential"), Code.Unauthenticated, "no credential"],
    [new PermissionDeniedError("reader may not write"), Code.PermissionDenied, "reader may not write"],
  ])("%s", (err, code, message) => {
    const { error } = convert(err);
    expect(error.code).toBe(code);
    expect(error.rawMessage).toBe(message);
  });

  it("passes a ConnectError through unchanged", () => {
    const original = new ConnectError("already mapped", Code.Canceled);
    expect(convert(original).error).toBe(original);
  });
});

describe("toConnectError: retry hints", () => {
  it("gives a rate limit RESOURCE_EXHAUSTED with retry-after in whole seconds and a RetryInfo detail", () => {
    const { error } = convert(new RateLimitedError("over 10 requests per minute", 1_200));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toBe("over 10 requests per minute; retry in 2 s");
    expect(error.metadata.get("retry-after")).toBe("2");
    const [info] = error.findDetails(RetryInfoSchema);
    expect(info.retryDelay).toMatchObject({ seconds: 1n, nanos: 200_000_000 });
  });

  it("gives an unreachable database UNAVAILABLE with a one-second hint and the request id", () => {
    const { error } = convert(new UnavailableError("down"));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toBe("the database is unavailable (request id req-1); retry in 1 s");
    expect(error.metadata.get("retry-after")).toBe("1");
  });
});

describe("toConnectError: races and bugs", () => {
  it("gives a namespace deleted meanwhile ABORTED with a hint to retry", () => {
    const { error } = convert(new NamespaceGoneError("gone"));
    expect(error.code).toBe(Code.Aborted);
    expect(error.rawMessage).toBe("what the call refers to was deleted meanwhile (its namespace?); retry the call (request id req-1)");
  });

  it("hides anything else behind INTERNAL with the request id, logging the cause", () => {
    const { error, lines } = convert(new Error('relation "sessions" does not exist at SELECT secret_hash'));
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe("internal error (request id req-1)");
    expect(lines.join("\n")).toContain('relation \\"sessions\\" does not exist');
    expect(convert("a thrown string").error.rawMessage).toBe("internal error (request id req-1)");
  });
});
