// Summarises a V8 .cpuprofile (as `node --cpu-prof` writes it): self time by function and
// by file, the heaviest first. Usage: profile-summary.ts FILE.cpuprofile [TOP]
import { readFile } from "node:fs/promises";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const [file, topText] = process.argv.slice(2);
if (file === undefined) {
  console.error("usage: profile-summary.ts FILE.cpuprofile [TOP]");
  process.exit(2);
}
const top = Number(topText ?? 25);
const profile = JSON.parse(await readFile(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const self = new Map<number, number>();
profile.samples.forEach((id, index) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
for (const [id, micros] of self) {
  const frame = byId.get(id)!.callFrame;
  const where = frame.url.replace(/^file:\/\/.*?node_modules\//, "").replace(/^file:\/\/.*?\/(src|gen|bench)\//, "$1/");
  const name = `${frame.functionName || "(anonymous)"} ${where}:${frame.lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  const group = where === "" ? frame.functionName : where.split("/").slice(0, where.startsWith("@") ? 2 : 1).join("/");
  byFile.set(group, (byFile.get(group) ?? 0) + micros);
}
const print = (title: string, map: Map<string, number>): void => {
  console.log(`\n${title} (total ${(total / 1000).toFixed(0)} ms)`);
  for (const [name, micros] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((micros / total) * 100).toFixed(1).padStart(5)}%  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${name}`);
  }
};
print("self time by package or directory", byFile);
print("self time by function", byFunction);
