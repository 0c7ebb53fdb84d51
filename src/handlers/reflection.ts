/**
 * gRPC server reflection (`grpc.reflection.v1` and the older `grpc.reflection.v1alpha`, same messages in
 * another package): lets `buf curl`, grpcurl and Postman call the API without local .proto files.
 * Spec: https://github.com/grpc/grpc/blob/master/doc/server-reflection.md.
 */
import { create, toBinary, type DescFile } from "@bufbuild/protobuf";
import { createFileRegistry, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type DescriptorProto, type EnumDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** A reflection request, whichever version it came in (the shapes are identical). */
type Request = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

/** The `message_response` oneof of a reflection response, valid for both versions. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * Descriptors the reflection service answers from: `files` with all their transitive dependencies
 * (google/protobuf/*.proto included), and the names of the services it lists.
 */
export class ReflectionIndex {
  readonly #registry: FileRegistry;
  readonly #symbols = new Map<string, DescFile>();
  readonly #services: string[];

  /** `services`: the fully-qualified names list_services returns (the services actually served). */
  constructor(files: Iterable<DescFile>, services: Iterable<string>) {
    // Dependencies first: a FileDescriptorSet registry resolves imports from files added before.
    const ordered: DescFile[] = [];
    const seen = new Set<string>();
    const visit = (file: DescFile) => {
      if (seen.has(file.proto.name)) return;
      seen.add(file.proto.name);
      file.dependencies.forEach(visit);
      ordered.push(file);
    };
    for (const file of files) visit(file);
    this.#registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered.map((f) => f.proto) }));
    for (const file of this.#registry.files) this.#indexFile(file);
    this.#services = [...new Set(services)].sort();
  }

  /** Answers one request. Lookups that fail give an `error_response` (NOT_FOUND), never a stream error. */
  answer(req: Request): Answer {
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.#services.map((name) => ({ name })) } };
      case "fileByFilename":
        return this.#files(this.#registry.getFile(r.value), `file not found: ${r.value}`);
      case "fileContainingSymbol":
        return this.#files(this.#symbols.get(r.value.replace(/^\./, "")), `symbol not found: ${r.value}`);
      case "fileContainingExtension": {
        const message = this.#registry.getMessage(r.value.containingType);
        const ext = message && this.#registry.getExtensionFor(message, r.value.extensionNumber);
        return this.#files(ext?.file, `extension ${r.value.extensionNumber} of ${r.value.containingType} not found`);
      }
      case "allExtensionNumbersOfType": {
        const message = this.#registry.getMessage(r.value);
        if (!message) return notFound(`message type not found: ${r.value}`);
        const numbers: number[] = [];
        for (const desc of this.#registry) if (desc.kind === "extension" && desc.extendee.typeName === message.typeName) numbers.push(desc.number);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: message.typeName, extensionNumber: numbers.sort((a, b) => a - b) } };
      }
      default:
        return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "message_request is not set" } };
    }
  }

  /** The file first, then its transitive dependencies, each once, as serialized FileDescriptorProtos. */
  #files(file: DescFile | undefined, notFoundMessage: string): Answer {
    if (!file) return notFound(notFoundMessage);
    const out: Uint8Array[] = [];
    const seen = new Set<DescFile>();
    const add = (f: DescFile) => {
      if (seen.has(f)) return;
      seen.add(f);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      f.dependencies.forEach(add);
    };
    add(file);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
  }

  /**
   * Every symbol a client may ask about: messages (map entries included), enums, enum values (siblings
   * of their enum), fields, oneofs, extensions, services and methods. Read from the descriptor protos.
   */
  #indexFile(file: DescFile): void {
    const add = (name: string) => this.#symbols.set(name, file);
    const addEnum = (e: EnumDescriptorProto, scope: string) => {
      add(scope + e.name);
      for (const v of e.value) add(scope + v.name);
    };
    const addMessage = (m: DescriptorProto, scope: string) => {
      const name = scope + m.name;
      add(name);
      for (const f of [...m.field, ...m.extension, ...m.oneofDecl]) add(`${name}.${f.name}`);
      for (const e of m.enumType) addEnum(e, `${name}.`);
      for (const n of m.nestedType) addMessage(n, `${name}.`);
    };
    const prefix = file.proto.package ? `${file.proto.package}.` : "";
    for (const m of file.proto.messageType) addMessage(m, prefix);
    for (const e of file.proto.enumType) addEnum(e, prefix);
    for (const x of file.proto.extension) add(prefix + x.name);
    for (const s of file.proto.service) {
      add(prefix + s.name);
      for (const m of s.method) add(`${prefix}${s.name}.${m.name}`);
    }
  }
}

function notFound(errorMessage: string): Answer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } };
}

/**
 * Routes serving reflection v1 and v1alpha. Lists every service registered on the same router (read
 * at the first request, so registration order does not matter) and describes `files`, the services'
 * own files and all their dependencies.
 */
export function createReflectionRoutes(files: DescFile[] = []): (router: ConnectRouter) => void {
  return (router) => {
    let index: ReflectionIndex | undefined;
    const getIndex = () => {
      if (index) return index;
      const services = router.handlers.map((h) => h.service);
      return (index = new ReflectionIndex([...files, ...services.map((s) => s.file)], services.map((s) => s.typeName)));
    };
    router.service(v1.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          yield { validHost: req.host, originalRequest: req, messageResponse: getIndex().answer(req) };
        }
      },
    });
    router.service(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          yield { validHost: req.host, originalRequest: req, messageResponse: getIndex().answer(req) };
        }
      },
    });
  };
}
