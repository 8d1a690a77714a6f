import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runToEnd, type ProcessOutcome } from "../helpers/run-to-end.js";

/*
 * bin/drce.cjs (the command the package installs) in a checkout runs the compiled bundle only
 * while the build's list of inputs (dist/drce-inputs.json) says it is fresh, and the
 * TypeScript sources through tsx otherwise. Each case is a small checkout of its own: the real
 * bin/drce.cjs and bin/drce.js, a src/main.ts and a dist/drce.cjs that each print which one
 * ran, and the real node_modules (for tsx).
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const builtAt = Date.now() - 60_000;
const before = new Date(builtAt - 60_000);
const after = new Date(builtAt + 30_000);

let checkout: string;

/** Writes a file of the small checkout, modified before the build began. */
function writeOld(path: string, text: string): void {
  const full = join(checkout, path);
  mkdirSync(join(full, ".."), { recursive: true });
  writeFileSync(full, text);
  utimesSync(full, before, before);
}

function writeManifest(manifest: unknown): void {
  writeFileSync(join(checkout, "dist/drce-inputs.json"), typeof manifest === "string" ? manifest : JSON.stringify(manifest));
}

/** Runs the checkout's drce with the arguments and resolves with its exit code and output. */
function drce(...args: string[]): ReturnType<typeof runEntry> {
  return runEntry("bin/drce.cjs", ...args);
}

/** Runs one of the checkout's entries with the arguments and resolves with its exit code and output. */
function runEntry(entry: string, ...args: string[]): Promise<ProcessOutcome> {
  return runToEnd([process.execPath, join(checkout, entry), ...args]);
}

beforeEach(() => {
  checkout = mkdtempSync(join(tmpdir(), "drce-bin-"));
  mkdirSync(join(checkout, "bin"));
  copyFileSync(join(repoRoot, "bin/drce.cjs"), join(checkout, "bin/drce.cjs"));
  copyFileSync(join(repoRoot, "bin/drce.js"), join(checkout, "bin/drce.js"));
  symlinkSync(join(repoRoot, "node_modules"), join(checkout, "node_modules"));
  writeOld("package.json", JSON.stringify({ name: "drce", type: "module" }));
  writeOld("tsconfig.json", JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", strict: true } }));
  writeOld("src/main.ts", 'const ran: string = "sources";\nconsole.log(ran);\n');
  writeOld("src/cli/run.ts", "export {};\n");
  writeOld("src/app.ts", "export {};\n");
  // The bundle says whether the ES module loader had started when it ran: it must not have.
  writeOld("dist/drce.cjs", 'console.log(process.moduleLoadList.some((name) => name.includes("internal/modules/esm/loader")) ? "bundle after the ES module loader" : "bundle");\n');
  writeManifest({ builtAt, client: ["package.json", "tsconfig.json", "src/main.ts", "src/cli/run.ts"], serve: ["src/app.ts"] });
});

afterEach(() => {
  rmSync(checkout, { recursive: true, force: true });
});

describe("bin/drce.cjs in a checkout", () => {
  it("runs the bundle when no input listed was modified after the build began", async () => {
    expect(await drce("--version")).toEqual({ code: 0, stdout: "bundle\n", stderr: "" });
    expect((await drce("serve")).stdout).toBe("bundle\n");
  });

  it("is what bin/drce.js runs, for whoever runs the command by that name (an ES module, so with the loader)", async () => {
    expect(await runEntry("bin/drce.js", "--version")).toEqual({ code: 0, stdout: "bundle after the ES module loader\n", stderr: "" });
    utimesSync(join(checkout, "src/cli/run.ts"), after, after);
    expect(await runEntry("bin/drce.js", "run", "--", "true")).toEqual({ code: 0, stdout: "sources\n", stderr: "" });
  });

  it("runs the sources when a client input is newer than the build", async () => {
    utimesSync(join(checkout, "src/cli/run.ts"), after, after);
    expect(await drce("run", "--", "true")).toEqual({ code: 0, stdout: "sources\n", stderr: "" });
  });

  it("checks the inputs only serve loads for serve alone", async () => {
    utimesSync(join(checkout, "src/app.ts"), after, after);
    expect((await drce("status", "42")).stdout).toBe("bundle\n");
    expect((await drce("serve", "--listen", "127.0.0.1:0")).stdout).toBe("sources\n");
  });

  it("runs the sources when a listed input is gone", async () => {
    unlinkSync(join(checkout, "src/cli/run.ts"));
    expect((await drce("--version")).stdout).toBe("sources\n");
  });

  it("runs the sources without a list of inputs, or with one it cannot read", async () => {
    unlinkSync(join(checkout, "dist/drce-inputs.json"));
    expect((await drce("--version")).stdout).toBe("sources\n");
    writeManifest("{ not json");
    expect((await drce("--version")).stdout).toBe("sources\n");
    writeManifest({ builtAt: String(builtAt), client: [], serve: [] });
    expect((await drce("--version")).stdout).toBe("sources\n");
  });

  it("runs the sources when the list names inputs but the bundle is gone", async () => {
    unlinkSync(join(checkout, "dist/drce.cjs"));
    expect((await drce("--version")).stdout).toBe("sources\n");
  });
});

describe("bin/drce.cjs as installed (no sources)", () => {
  it("runs the bundle whatever the list says", async () => {
    rmSync(join(checkout, "src"), { recursive: true });
    unlinkSync(join(checkout, "dist/drce-inputs.json"));
    expect(await drce("--version")).toEqual({ code: 0, stdout: "bundle\n", stderr: "" });
  });

  it("fails with a clear message when the bundle is missing too", async () => {
    rmSync(join(checkout, "src"), { recursive: true });
    unlinkSync(join(checkout, "dist/drce.cjs"));
    const result = await drce("--version");
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/dist\/drce\.cjs is missing: this copy of drce was packed without its build/);
  });
});
