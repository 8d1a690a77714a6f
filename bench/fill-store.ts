import { link, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runConcurrent } from "./lib.js";

/**
 * Fills a data directory with finished tasks `stored-<from>` to `stored-<to - 1>`, copies of
 * one real finished task: its status and request are rewritten with the new id, every other
 * file is a hard link to the sample's (the node only reads them), and its directories are made
 * empty as the sample's are. Returns the last id.
 */
export async function fillStore(source: string, target: string, from: number, to: number): Promise<string> {
  const tasks = join(source, "tasks");
  const sample = (await readdir(tasks)).find((name) => !name.startsWith("."));
  if (sample === undefined) throw new Error("no finished task to copy");
  const sampleDir = join(tasks, sample);
  const status = JSON.parse(await readFile(join(sampleDir, "status.json"), "utf8")) as { id: string };
  const request = JSON.parse(await readFile(join(sampleDir, "request.json"), "utf8")) as { spec: { id: string } };
  const entries = (await readdir(sampleDir, { withFileTypes: true })).filter((entry) => entry.name !== "status.json" && entry.name !== "request.json");
  const dirs = entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  const files = entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
  await mkdir(join(target, "tasks"), { recursive: true });
  await runConcurrent(to - from, 64, async (index) => {
    const id = `stored-${from + index}`;
    const dir = join(target, "tasks", id);
    await mkdir(dir);
    await Promise.all([
      writeFile(join(dir, "status.json"), JSON.stringify({ ...status, id })),
      writeFile(join(dir, "request.json"), JSON.stringify({ ...request, spec: { ...request.spec, id } })),
      ...dirs.map((name) => mkdir(join(dir, name))),
      ...files.map((name) => link(join(sampleDir, name), join(dir, name))),
    ]);
  });
  return `stored-${to - 1}`;
}
