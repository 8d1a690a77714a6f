#!/bin/sh
# Generates the Python messages and gRPC client code of drce.v1 from proto/ into gen/, with the
# protoc and the gRPC plugin Debian ships (apt-get install protobuf-compiler
# protobuf-compiler-grpc python3-grpcio python3-protobuf).
set -eu
cd "$(dirname "$0")"
proto=${DRCE_PROTO_DIR:-../../proto}
rm -rf gen && mkdir -p gen
protoc -I "$proto" \
  --python_out=gen \
  --grpc_out=gen --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" \
  "$proto/drce/v1/task.proto" "$proto/drce/v1/task_service.proto"
