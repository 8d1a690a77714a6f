// Profiles a node under one load: `node --cpu-prof` on the node, 32 callers submitting
// sync `true` tasks (or `--transfer` for one `drce run` of 256 MiB, the CLI profiled
// too), then a summary.
// `--sequential` submits them one at a time (the latency path).
// Usage: profile-node.ts [--transfer | --sequential] [COUNT]
// With KEEP_PROFILE set, the .cpuprofile files are kept (for Chrome's DevTools) and their
// directory printed.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { TaskSpecSchema } from "../gen/drce/v1/task_pb.js";
import { spawnSync } from "node:child_process";
import { measureTransfer, root, runConcurrent, startBenchNode } from "./lib.js";

const transfer = process.argv.includes("--transfer");
const sequential = process.argv.includes("--sequential");
const count = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 1000);
const work = await mkdtemp(join(tmpdir(), "drce-profile-"));
const profDir = join(work, "prof");
const node = await startBenchNode({ dataDir: join(work, "data"), nodeFlags: ["--cpu-prof", "--cpu-prof-dir", profDir], args: transfer ? ["--max-output-bytes", "0"] : [] });
try {
  if (transfer) {
    const result = await measureTransfer(process.execPath, ["--cpu-prof", "--cpu-prof-dir", join(work, "cli-prof"), "bin/drce.cjs", "run", "--", "head", "-c", String(256 * 1024 * 1024), "/dev/zero"], { ...process.env, DRCE_SERVER: node.url });
    console.log(`transfer: ${(result.bytesPerSecond / 1024 / 1024).toFixed(0)} MB/s`);
  } else {
    const ms = await runConcurrent(count, sequential ? 1 : 32, async () => {
      await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true" }) });
    });
    console.log(`sync: ${((count * 1000) / ms).toFixed(0)} tasks/s`);
  }
} finally {
  await node.stop();
}
for (const dir of transfer ? [profDir, join(work, "cli-prof")] : [profDir]) {
  const [profile] = await readdir(dir);
  console.log(`\n== ${dir === profDir ? "node" : "drce CLI"}`);
  spawnSync(process.execPath, ["--import", "tsx", "bench/profile-summary.ts", join(dir, profile!), "20"], { cwd: root, stdio: "inherit" });
}
if (process.env["KEEP_PROFILE"] === undefined) await rm(work, { recursive: true, force: true });
else console.log(`profiles kept in ${work}`);
