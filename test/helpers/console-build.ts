import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/*
 * The suite's global setup: nodes started by the tests (in this process through createApp, or
 * as `drce serve` children through bin/drce.cjs, from the sources or the bundle) serve the web
 * console from dist/ui/. It is compiled here, once per run, when it is missing or older than
 * its sources (ui/, gen/), so that a fresh checkout tests the console it has.
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return latest;
}

function builtAt(): number {
  try {
    return statSync(join(repoRoot, "dist/ui/index.html")).mtimeMs;
  } catch {
    // Not built yet.
    return 0;
  }
}

/** Compiles the console into dist/ui/ unless it is already fresh. */
export async function setup(): Promise<void> {
  const sources = Math.max(newest(join(repoRoot, "ui")), newest(join(repoRoot, "gen")), statSync(join(repoRoot, "bin/build-ui.js")).mtimeMs);
  if (builtAt() >= sources) return;
  const { buildConsole } = (await import(join(repoRoot, "bin/build-ui.js"))) as { buildConsole: () => Promise<string[]> };
  await buildConsole();
}
