#!/usr/bin/env python3
"""Runs a command on a drce node over gRPC, from client code generated from proto/ (generate.sh).

  python3 drce_client.py -- sh -c 'echo out; echo err >&2; exit 3'   # RunTask, live output
  python3 drce_client.py --submit nightly -- sleep 1                 # SubmitTask async, then
                                                                    # StreamTaskOutput to its end
The node is $DRCE_SERVER (host:port of a cleartext node, default 127.0.0.1:8470); $DRCE_TOKEN,
when set, is sent as a bearer token. Exits with the task's exit status; a failed call prints
its gRPC code and the legacy DRCE error code (the drce-error-code trailer) and exits 125.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from drce.v1 import task_pb2, task_service_pb2, task_service_pb2_grpc  # noqa: E402


def write(stream, data):
    out = sys.stdout if stream == task_pb2.STREAM_STDOUT else sys.stderr
    out.buffer.write(data)
    out.flush()


def exit_status(result):
    return result.exit_status if result.state == task_pb2.TASK_STATE_FINISHED else 125


def run(client, metadata, argv):
    """RunTask: output as it is produced, then the result."""
    status = 125
    request = task_service_pb2.RunTaskRequest(task=task_pb2.TaskSpec(argv=argv))
    for message in client.RunTask(request, metadata=metadata):
        kind = message.WhichOneof("event")
        if kind == "output":
            write(message.output.stream, message.output.data)
        elif kind == "result":
            status = exit_status(message.result)
    return status


def submit(client, metadata, task_id, argv):
    """SubmitTask (async), then StreamTaskOutput with follow until the task ends."""
    spec = task_pb2.TaskSpec(id=task_id, argv=argv, mode=task_pb2.TASK_MODE_ASYNC)
    reply = client.SubmitTask(task_service_pb2.SubmitTaskRequest(task=spec), metadata=metadata)
    print(f"{reply.result.id}\t{task_pb2.TaskState.Name(reply.result.state)}", file=sys.stderr)
    status = 125
    request = task_service_pb2.StreamTaskOutputRequest(task=task_id, follow=True)
    for message in client.StreamTaskOutput(request, metadata=metadata):
        kind = message.WhichOneof("event")
        if kind == "output":
            write(message.output.stream, message.output.data)
        elif kind == "result":
            status = exit_status(message.result)
    return status


def main(args):
    task_id = None
    if args[:1] == ["--submit"]:
        task_id, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    metadata = [("authorization", f"Bearer {os.environ['DRCE_TOKEN']}")] if os.environ.get("DRCE_TOKEN") else []
    with grpc.insecure_channel(os.environ.get("DRCE_SERVER", "127.0.0.1:8470")) as channel:
        client = task_service_pb2_grpc.TaskServiceStub(channel)
        try:
            return submit(client, metadata, task_id, args) if task_id else run(client, metadata, args)
        except grpc.RpcError as error:
            legacy = dict(error.trailing_metadata() or ()).get("drce-error-code", "0")
            print(f"drce: {error.code().name}: {error.details()} (legacy error {legacy})", file=sys.stderr)
            return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
