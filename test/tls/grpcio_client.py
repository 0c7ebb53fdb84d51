"""A gRPC client on grpcio (Debian's python3-grpcio), driven by test/tls/grpcio.test.ts.

There are no generated Python stubs: the Node test encodes each request with the generated TypeScript
schemas and decodes the answers, and this client sends and receives the raw protobuf bytes through
grpcio's generic multi-callables (no serializer), over a TLS channel built from PEM files.

Reads one job as JSON on stdin:
  {"target": "127.0.0.1:PORT", "ca": PATH, "cert": PATH|null, "key": PATH|null,
   "metadata": [[name, value], ...],
   "calls": [{"method": "/pkg.Service/Method", "stream": false, "request": BASE64}, ...]}
and prints {"results": [...]} with, per call in order, {"ok": true, "responses": [BASE64, ...]} or
{"ok": false, "code": "UNAUTHENTICATED", "details": "..."}.
"""
import base64
import json
import sys

import grpc

CALL_TIMEOUT_S = 60  # a bound, not a deadline a busy machine could miss


def read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def main():
    job = json.load(sys.stdin)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(job["ca"]),
        private_key=read(job.get("key")),
        certificate_chain=read(job.get("cert")),
    )
    metadata = [tuple(pair) for pair in job.get("metadata", [])]
    results = []
    # No proxy, whatever the environment says: the server is on this machine.
    with grpc.secure_channel(job["target"], credentials, options=[("grpc.enable_http_proxy", 0)]) as channel:
        for call in job["calls"]:
            request = base64.b64decode(call["request"])
            try:
                if call.get("stream"):
                    rpc = channel.unary_stream(call["method"], request_serializer=None, response_deserializer=None)
                    responses = list(rpc(request, metadata=metadata, timeout=CALL_TIMEOUT_S))
                else:
                    rpc = channel.unary_unary(call["method"], request_serializer=None, response_deserializer=None)
                    responses = [rpc(request, metadata=metadata, timeout=CALL_TIMEOUT_S)]
                results.append({"ok": True, "responses": [base64.b64encode(r).decode("ascii") for r in responses]})
            except grpc.RpcError as err:
                results.append({"ok": False, "code": err.code().name, "details": err.details()})
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
