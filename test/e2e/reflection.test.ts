/**
 * gRPC server reflection, v1 and v1alpha, over a real server: with `buf curl` (no local schema) and
 * with connect-node over gRPC (a bidi stream on HTTP/2).
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { create, createFileRegistry, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { file_google_protobuf_cpp_features, FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { startServer, type TestServer } from "./harness.js";

const run = promisify(execFile);
const BUF = path.resolve("node_modules/.bin/buf");
const SERVICES = ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "sessiond.v1.SessionService"];

let t: TestServer;
// cpp_features.proto declares extensions of google.protobuf.FeatureSet: something to find.
beforeAll(async () => void (t = await startServer({ files: [file_google_protobuf_cpp_features] })));
afterAll(() => t.server.shutdown());

async function buf(...args: string[]): Promise<string> {
  const { stdout } = await run(BUF, ["curl", ...args], { timeout: 30_000 });
  return stdout;
}

type Req = MessageInitShape<typeof v1.ServerReflectionRequestSchema>["messageRequest"];

/** Sends `requests` on one reflection stream of the given version; returns the answers. */
async function reflect(version: "v1" | "v1alpha", requests: Req[]) {
  const transport = createGrpcTransport({ baseUrl: t.url });
  const answers = [];
  if (version === "v1") {
    const stream = createClient(v1.ServerReflection, transport).serverReflectionInfo((async function* () {
      for (const messageRequest of requests) yield { host: "localhost", messageRequest };
    })());
    for await (const res of stream) answers.push(res);
  } else {
    const stream = createClient(v1alpha.ServerReflection, transport).serverReflectionInfo((async function* () {
      for (const messageRequest of requests) yield { host: "localhost", messageRequest } as MessageInitShape<typeof v1alpha.ServerReflectionRequestSchema>;
    })());
    for await (const res of stream) answers.push(res);
  }
  return answers;
}

/** The FileDescriptorProtos of a file_descriptor_response (throws on any other answer). */
function files(res: { messageResponse: { case: string | undefined; value?: unknown } }): FileDescriptorProto[] {
  expect(res.messageResponse.case).toBe("fileDescriptorResponse");
  return (res.messageResponse.value as v1.FileDescriptorResponse).fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

describe("buf curl with server reflection", () => {
  it("lists every registered service", async () => {
    const out = await buf("--http2-prior-knowledge", "--list-services", t.url);
    expect(out.split("\n").filter(Boolean).sort()).toEqual(SERVICES);
  });

  it("lists methods", async () => {
    const methods = (await buf("--http2-prior-knowledge", "--list-methods", t.url)).split("\n");
    expect(methods).toEqual(expect.arrayContaining(["grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch", "grpc.health.v1.Health/List", "sessiond.v1.SessionService/CreateSession", "grpc.reflection.v1.ServerReflection/ServerReflectionInfo"]));
  });

  it.each(["grpc-v1", "grpc-v1alpha"])("calls Health.Check without a local schema over reflection %s", async (reflectProtocol) => {
    const out = await buf("--protocol", "grpc", "--reflect-protocol", reflectProtocol, "-d", '{"service":""}', `${t.url}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(out)).toEqual({ status: "SERVING" });
  });

  it("resolves SessionService request types with their imports (the method answers unimplemented here)", async () => {
    const err = await buf("--protocol", "connect", "-d", '{"namespace":"n","expiresAfter":"3s","data":{"k":[1]}}', `${t.url}/sessiond.v1.SessionService/CreateSession`).catch((e) => e);
    expect(JSON.parse(err.stderr)).toMatchObject({ code: "unimplemented" });
  });
});

describe.each(["v1", "v1alpha"] as const)("reflection %s over connect-node", (version) => {
  it("answers several requests on one stream, echoing each request", async () => {
    const answers = await reflect(version, [
      { case: "listServices", value: "*" },
      { case: "fileByFilename", value: "grpc/health/v1/health.proto" },
    ]);
    expect(answers).toHaveLength(2);
    expect(answers[0].messageResponse.case).toBe("listServicesResponse");
    expect((answers[0].messageResponse.value as v1.ListServiceResponse).service.map((s) => s.name)).toEqual(SERVICES);
    expect(answers[0].originalRequest?.messageRequest).toEqual({ case: "listServices", value: "*" });
    expect(answers[0].validHost).toBe("localhost");
    expect(files(answers[1]).map((f) => f.name)).toEqual(["grpc/health/v1/health.proto"]);
  });

  it.each([
    ["sessiond.v1.SessionService", "sessiond/v1/session_service.proto"],
    ["sessiond.v1.SessionService.GetSession", "sessiond/v1/session_service.proto"],
    [".sessiond.v1.GetSessionRequest", "sessiond/v1/session_service.proto"],
    ["sessiond.v1.CreateSessionRequest.LabelsEntry", "sessiond/v1/session_service.proto"],
    ["sessiond.v1.Session", "sessiond/v1/session.proto"],
    ["sessiond.v1.SessionState", "sessiond/v1/session.proto"],
    ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    ["grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"],
    ["grpc.health.v1.HealthCheckRequest.service", "grpc/health/v1/health.proto"],
    ["grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"],
    ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
    ["pb.cpp", "google/protobuf/cpp_features.proto"],
  ])("finds the file containing %s", async (symbol, file) => {
    const [answer] = await reflect(version, [{ case: "fileContainingSymbol", value: symbol }]);
    expect(files(answer)[0].name).toBe(file);
  });

  it("sends a file with all its transitive dependencies, enough to build a registry", async () => {
    const [answer] = await reflect(version, [{ case: "fileContainingSymbol", value: "sessiond.v1.SessionService" }]);
    const protos = files(answer);
    expect(protos.map((f) => f.name).sort()).toEqual([
      "google/protobuf/descriptor.proto",
      "google/protobuf/duration.proto",
      "google/protobuf/field_mask.proto",
      "google/protobuf/struct.proto",
      "google/protobuf/timestamp.proto",
      "sessiond/v1/auth.proto",
      "sessiond/v1/conversation.proto",
      "sessiond/v1/memory.proto",
      "sessiond/v1/session.proto",
      "sessiond/v1/session_record.proto",
      "sessiond/v1/session_service.proto",
      "sessiond/v1/trace.proto",
    ]);
    // Imports first. (createFileRegistry(proto, resolve) in @bufbuild/protobuf 2.17 adds files in the
    // wrong order when two files import the same one, as session_service.proto and session.proto do.)
    const byName = new Map(protos.map((f) => [f.name, f]));
    const ordered: FileDescriptorProto[] = [];
    const visit = (f: FileDescriptorProto | undefined) => {
      if (!f) throw new Error("a dependency is missing from the answer");
      if (ordered.includes(f)) return;
      f.dependency.forEach((d) => visit(byName.get(d)));
      ordered.push(f);
    };
    visit(protos[0]);
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
    expect(registry.getService("sessiond.v1.SessionService")?.methods.map((m) => m.name)).toContain("DeleteSession");
    expect(registry.getMessage("sessiond.v1.Session")?.fields.length).toBeGreaterThan(3);
  });

  it("answers not_found (as an error_response, the stream goes on) for unknown files and symbols", async () => {
    const answers = await reflect(version, [
      { case: "fileByFilename", value: "nope.proto" },
      { case: "fileContainingSymbol", value: "no.such.Symbol" },
      { case: "listServices", value: "" },
    ]);
    expect(answers.map((a) => a.messageResponse.case)).toEqual(["errorResponse", "errorResponse", "listServicesResponse"]);
    expect((answers[0].messageResponse.value as v1.ErrorResponse).errorCode).toBe(Code.NotFound);
    expect((answers[1].messageResponse.value as v1.ErrorResponse).errorCode).toBe(Code.NotFound);
  });

  it("answers extension queries", async () => {
    const ext = (containingType: string, extensionNumber: number) => ({ case: "fileContainingExtension" as const, value: { containingType, extensionNumber } });
    const answers = await reflect(version, [
      ext("google.protobuf.FeatureSet", 1000),
      ext("google.protobuf.FeatureSet", 4242),
      ext("no.such.Type", 1),
      { case: "allExtensionNumbersOfType", value: "google.protobuf.FeatureSet" },
      { case: "allExtensionNumbersOfType", value: "grpc.health.v1.HealthCheckRequest" },
      { case: "allExtensionNumbersOfType", value: "no.such.Type" },
      { case: undefined },
    ]);
    expect(files(answers[0]).map((f) => f.name)).toEqual(["google/protobuf/cpp_features.proto", "google/protobuf/descriptor.proto"]);
    expect(answers[1].messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: Code.NotFound } });
    expect(answers[2].messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: Code.NotFound } });
    expect(answers[3].messageResponse).toMatchObject({ case: "allExtensionNumbersResponse", value: { baseTypeName: "google.protobuf.FeatureSet", extensionNumber: [1000] } });
    expect(answers[4].messageResponse).toMatchObject({ case: "allExtensionNumbersResponse", value: { baseTypeName: "grpc.health.v1.HealthCheckRequest", extensionNumber: [] } });
    expect(answers[5].messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: Code.NotFound } });
    expect(answers[6].messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: Code.InvalidArgument } });
  });
});
