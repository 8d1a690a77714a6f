import { readFileSync } from "node:fs";

let cached: string | undefined;

/**
 * The drce version: the `version` of package.json, read once. The file is one level above
 * this module both in the sources (src/) and in the compiled bundle (dist/).
 */
export function packageVersion(): string {
  if (cached === undefined) {
    try {
      const text = readFileSync(new URL("../package.json", import.meta.url), "utf8");
      cached = (JSON.parse(text) as { version?: string }).version ?? "unknown";
    } catch {
      cached = "unknown";
    }
  }
  return cached;
}
