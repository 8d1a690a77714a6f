// Compiles the web console (ui/src/main.tsx, with Preact, xterm.js and uPlot) into dist/ui/:
// index.html, one script and one style sheet (xterm's own rules included), both named by the
// hash of their content so that a node can let browsers keep them for a year. Nothing is
// fetched from elsewhere at run time: the page loads only what its node serves, since the
// machines of its users may have no internet. bin/build.js runs it; the test suite's global
// setup runs it when dist/ui/ is older than ui/ (see test/helpers/console-build.ts).
import { build } from "esbuild";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Where the compiled console goes, relative to the package root. */
export const consoleOutDir = "dist/ui";

/**
 * Builds the console into `dist/ui/` and removes what older builds left there. Resolves with
 * the names of the files written.
 */
export async function buildConsole() {
  const outdir = join(root, consoleOutDir);
  const result = await build({
    absWorkingDir: root,
    entryPoints: [{ in: "ui/src/main.tsx", out: "console" }],
    outdir,
    entryNames: "[name]-[hash]",
    bundle: true,
    minify: true,
    metafile: true,
    sourcemap: false,
    platform: "browser",
    format: "esm",
    target: "es2022",
    jsx: "automatic",
    jsxImportSource: "preact",
    tsconfig: "ui/tsconfig.json",
    legalComments: "none",
    logLevel: "warning",
  });
  const outputs = Object.keys(result.metafile.outputs).map((path) => basename(path));
  const script = outputs.find((name) => name.endsWith(".js"));
  const style = outputs.find((name) => name.endsWith(".css"));
  if (script === undefined || style === undefined) throw new Error("build-ui: esbuild made no script or no style sheet");
  const html = readFileSync(join(root, "ui/index.html"), "utf8").replace("%SCRIPT%", script).replace("%STYLE%", style);
  mkdirSync(outdir, { recursive: true });
  writeFileSync(join(outdir, "index.html"), html);
  const kept = new Set([...outputs, "index.html"]);
  for (const name of readdirSync(outdir)) if (!kept.has(name)) rmSync(join(outdir, name), { force: true });
  return [...kept];
}
