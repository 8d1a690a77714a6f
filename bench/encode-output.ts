// The CPU the node spends encoding one output message as it goes on the wire: protobuf-es's
// `toBinary` of a `RunTaskResponse` carrying an output chunk, then Connect's envelope, in a
// loop, for chunks of a full MiB (the node's `outputChunkBytes`) and of sizes whose message
// fits the MiB the protobuf writer grows to. CPU per MiB is what counts on a shared machine;
// run it under `MALLOC_MMAP_THRESHOLD_=33554432` to see what glibc's fresh mappings cost.
// Each size is measured in a process of its own: glibc's allocator adapts its thresholds to
// the sizes it has seen, so a size measured after another inherits its state.
// Usage: node --import tsx bench/encode-output.ts [MIB_PER_SIZE] [SIZE]
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { Stream } from "../gen/drce/v1/task_pb.js";
import { RunTaskResponseSchema } from "../gen/drce/v1/task_service_pb.js";

const MiB = 1024 * 1024;
const mibPerSize = Number(process.argv[2] ?? 500);
const sizes = process.argv[3] === undefined ? [MiB, MiB - 1024, MiB - 64, MiB / 2 - 64] : [Number(process.argv[3])];
if (sizes.length > 1) {
  for (const size of sizes) spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), String(mibPerSize), String(size)], { stdio: "inherit" });
}
for (const size of sizes.length > 1 ? [] : sizes) {
  const data = Buffer.alloc(size, 1);
  const message = create(RunTaskResponseSchema, { event: { case: "output", value: { stream: Stream.STDOUT, offset: 123_456_789n, data } } });
  const encode = (): Uint8Array => encodeEnvelope(0, toBinary(RunTaskResponseSchema, message));
  // Warmed up, so that the loop measures the compiled encoder and a settled allocator.
  for (let i = 0; i < 50; i++) encode();
  const count = Math.round((mibPerSize * MiB) / size);
  const before = process.cpuUsage();
  for (let i = 0; i < count; i++) encode();
  const used = process.cpuUsage(before);
  const perMiB = (used.user + used.system) / 1000 / ((count * size) / MiB);
  console.log(`${String(size).padStart(8)} bytes of data per message: ${perMiB.toFixed(2)} ms of CPU per MiB`);
}
