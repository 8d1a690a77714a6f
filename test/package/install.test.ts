import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The package as a user gets it: `npm pack` (its prepack builds the bundles and the type
 * declarations), `npm install -g` of the tarball into a fresh prefix, a node started from the
 * installed `drce`, every command run through it, and a TypeScript project that depends on
 * the tarball, type-checks against its declarations and runs a task with `drce/client`.
 * Nothing is kept from an earlier run: one pack, into a fresh directory, each time.
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const version = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let work: string;
let tarball: string;
let prefix: string;
let node: ChildProcess | undefined;
let nodeLog = "";
let url = "";
let zmq = "";

/**
 * The environment of what the test starts: none of the caller's DRCE_* or npm_* variables
 * (npm passes its own configuration to `npm test` that way), and a PATH that finds the
 * installed drce first and no checkout's node_modules/.bin.
 */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^(DRCE_|npm_|NODE_OPTIONS$|NODE_PATH$)/i.test(name)) env[name] = value;
  env["PATH"] = [join(prefix, "bin"), dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"].join(":");
  return { ...env, ...extra };
}

function run(command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  const child = spawn(command, args, { cwd: options.cwd ?? work, env: options.env ?? cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 240_000);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The installed `drce` against the node this file started. */
const drce = (...args: string[]): Promise<Ran> => run(join(prefix, "bin", "drce"), args, { env: cleanEnv({ DRCE_SERVER: url }) });

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "drce-package-"));
  prefix = join(work, "prefix");
  // Packed from a copy of the sources, so that the build prepack makes (a fresh dist/) never
  // replaces the bundle under another test running bin/drce.js in this checkout.
  const source = join(work, "source");
  mkdirSync(source);
  for (const entry of ["bin", "src", "gen", "proto", "ui", "package.json", "tsconfig.json", "tsconfig.types.json", "README.md"]) cpSync(join(repoRoot, entry), join(source, entry), { recursive: true });
  symlinkSync(join(repoRoot, "node_modules"), join(source, "node_modules"));
  const packed = await run("npm", ["pack", "--pack-destination", work], { cwd: source, env: { ...cleanEnv(), PATH: `${join(source, "node_modules/.bin")}:${cleanEnv()["PATH"]}` } });
  expect(packed.code, packed.stderr).toBe(0);
  tarball = join(work, `drce-${version}.tgz`);
  expect(existsSync(tarball)).toBe(true);

  const installed = await run("npm", ["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", tarball]);
  expect(installed.code, installed.stderr).toBe(0);

  const dataDir = join(work, "data");
  node = spawn(join(prefix, "bin", "drce"), ["serve", "--listen", "127.0.0.1:0", "--zmq-listen", "127.0.0.1:0", "--no-admin-zmq", "--data-dir", dataDir, "--log-level", "info"], {
    cwd: work,
    env: cleanEnv(),
    stdio: ["ignore", "ignore", "pipe"],
  });
  const started = node;
  ({ url, zmq } = await new Promise<{ url: string; zmq: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the installed node did not start in time; log:\n${nodeLog}`)), 60_000);
    started.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      nodeLog += chunk;
      for (const line of nodeLog.split("\n")) {
        if (!line.includes('"drce node listening"')) continue;
        clearTimeout(timer);
        const entry = JSON.parse(line) as { url: string; zmq: string };
        resolve({ url: entry.url, zmq: entry.zmq });
      }
    });
    started.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the installed node exited (${code}) before listening; log:\n${nodeLog}`));
    });
  }));
}, 600_000);

afterAll(async () => {
  if (node !== undefined && node.exitCode === null && node.signalCode === null) {
    const exited = new Promise((resolve) => node!.once("exit", resolve));
    node.kill("SIGTERM");
    const timer = setTimeout(() => node!.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
  }
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe("npm pack", () => {
  it("packs the bundles, the type declarations and proto/, and no sources or tests", async () => {
    const listed = await run("tar", ["tzf", tarball]);
    const files = listed.stdout.split("\n").filter((line) => line !== "").map((line) => line.replace(/^package\//, ""));
    expect(files).toEqual(
      expect.arrayContaining([
        "package.json",
        "README.md",
        "bin/drce.cjs",
        "bin/drce.js",
        "dist/drce.cjs",
        "dist/drce-client.cjs",
        "dist/drce-client-loader.cjs",
        "dist/drce.mjs",
        "dist/spawner-main.mjs",
        "dist/client.mjs",
        "dist/types/src/client/index.d.ts",
        "dist/types/gen/drce/v1/task_service_pb.d.ts",
        "proto/drce/v1/task.proto",
        "proto/drce/v1/task_service.proto",
      ]),
    );
    expect(files.filter((file) => /^(src|test|gen|bench|examples|node_modules)\//.test(file) || file === "bin/build.js" || file.endsWith(".ts") && !file.endsWith(".d.ts"))).toEqual([]);
    console.log(`drce-${version}.tgz: ${statSync(tarball).size} bytes, ${files.length} files`);
  }, 60_000);
});

describe("npm install -g of the tarball", () => {
  it("installs the production dependencies only", () => {
    const modules = readdirSync(join(prefix, "lib/node_modules/drce/node_modules"));
    expect(modules).toEqual(expect.arrayContaining(["zeromq", "ssh2", "pino", "@connectrpc", "@bufbuild"]));
    for (const dev of ["tsx", "typescript", "esbuild", "vitest", "fast-check", "playwright-core"]) expect(modules).not.toContain(dev);
    expect(existsSync(join(prefix, "lib/node_modules/drce/src"))).toBe(false);
  });

  it("starts a node from the installed package, its ZeroMQ gateway included", () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(zmq).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
  });

  it("serves the web console compiled into the package: the page and its hashed script", async () => {
    const page = await fetch(`${url}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const script = /src="\.\/(console-[A-Z0-9]+\.js)"/.exec(await page.text())?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${url}/ui/${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
  });

  it("runs a task through the installed CLI: both streams, and the task's exit status", async () => {
    const result = await drce("run", "--", "sh", "-c", "echo out; echo err >&2; exit 3");
    expect(result.stdout).toBe("out\n");
    expect(result.stderr).toBe("err\n");
    expect(result.code).toBe(3);
  }, 60_000);

  it("runs every other command from the installed package", async () => {
    expect((await drce("--version")).stdout).toBe(`${version}\n`);
    expect((await drce("help")).stdout).toContain("usage: drce");
    const submitted = await drce("submit", "--async", "--id", "pkg-1", "--alias", "pkg", "--", "sh", "-c", "sleep 0.2; echo later");
    expect(submitted.stdout).toMatch(/^pkg-1\t(new|queued|in progress)\n$/);
    const logs = await drce("logs", "-f", "pkg");
    expect(logs.stdout).toBe("later\n");
    expect((await drce("status", "pkg-1")).stdout).toMatch(/^id +pkg-1\nalias +pkg\nstate +finished\n/);
    expect((await drce("ls")).stdout).toContain("pkg-1");
    const fetched = await drce("fetch", "pkg-1");
    expect(fetched.stdout).toBe("later\n");
    expect(fetched.code).toBe(0);
    expect((await drce("status", "pkg-1")).code).toBe(3);

    expect((await drce("submit", "--id", "pkg-2", "--", "sleep", "30")).code).toBe(0);
    const killed = await drce("kill", "pkg-2");
    expect(killed.code, killed.stderr).toBe(0);
    const status = await drce("submit", "--sync", "--id", "pkg-3", "--", "true");
    expect(status.code).toBe(0);
    const removed = await drce("rm", "pkg-3");
    expect(removed.stdout).toMatch(/^pkg-3\t/);
    expect((await drce("node", "info")).code).toBe(0);
    expect((await drce("watch", "--help")).stdout).toContain("usage: drce watch");
    const completion = await drce("completion", "bash");
    expect(completion.code).toBe(0);
    expect(completion.stdout).toContain("complete -o default -F _drce drce");
  }, 180_000);
});

describe("a TypeScript project that depends on the tarball", () => {
  let consumer: string;

  beforeAll(async () => {
    consumer = join(work, "consumer");
    mkdirSync(join(consumer, "examples"), { recursive: true });
    writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "drce-consumer", private: true, type: "module", dependencies: { drce: `file:${tarball}` } }, null, 2));
    // The types of Node.js come from this checkout; everything else from what was installed.
    writeFileSync(
      join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          // @connectrpc/connect's declarations name the fetch API's HeadersInit, a DOM type.
          lib: ["ES2023", "DOM"],
          types: ["node"],
          typeRoots: [join(repoRoot, "node_modules/@types")],
          strict: true,
          exactOptionalPropertyTypes: true,
          noUnusedLocals: true,
          skipLibCheck: false,
          outDir: "out",
          rootDir: ".",
        },
        include: ["main.ts", "examples"],
      }),
    );
    writeFileSync(join(consumer, "main.ts"), consumerProgram);
    for (const file of readdirSync(join(repoRoot, "examples/typescript"))) cpSync(join(repoRoot, "examples/typescript", file), join(consumer, "examples", file));
    const installed = await run("npm", ["install", "--no-audit", "--no-fund"], { cwd: consumer });
    expect(installed.code, installed.stderr).toBe(0);
  }, 300_000);

  it("type-checks against the installed declarations of drce/client, examples included", async () => {
    const checked = await run(process.execPath, [join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", consumer], { cwd: consumer });
    expect(checked.stdout + checked.stderr).toBe("");
    expect(checked.code).toBe(0);
  }, 120_000);

  it("runs a task with the installed client library", async () => {
    const result = await run(process.execPath, [join(consumer, "out/main.js")], { cwd: consumer, env: cleanEnv({ DRCE_SERVER: url }) });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(["live: hello", "exit 3", "sync: FINISHED a", "NotFound legacy 0 not-found"].join("\n") + "\n");
    expect(result.code).toBe(0);
  }, 60_000);

  it("runs the examples compiled against the installed package", async () => {
    const result = await run(process.execPath, [join(consumer, "out/examples/run-live.js"), "--", "sh", "-c", "echo from-example; exit 2"], { cwd: consumer, env: cleanEnv({ DRCE_SERVER: url }) });
    expect(result.stdout).toBe("from-example\n");
    expect(result.code).toBe(2);
  }, 60_000);
});

// A program as a user of the library writes it. The @ts-expect-error lines fail the
// type-check if the declarations stop typing the calls (an `any` would accept them).
const consumerProgram = `import { Code, createDrceClient, DrceCallError, TaskState, type RunEvent } from "drce/client";

const drce = createDrceClient({ server: process.env["DRCE_SERVER"] ?? "" });
try {
  let live = "";
  for await (const event of drce.run({ command: "printf hello; exit 3" })) {
    const seen: RunEvent = event;
    if (seen.kind === "output") live += new TextDecoder().decode(seen.data);
    if (seen.kind === "result") console.log(\`live: \${live}\\nexit \${seen.result.exitStatus}\`);
  }
  const result = await drce.submitAndWait({ argv: ["echo", "a"] });
  // @ts-expect-error an exit status is a number
  const typed: string = result.exitStatus;
  void typed;
  console.log(\`sync: \${TaskState[result.state]} \${new TextDecoder().decode(result.stdout).trim()}\`);
  try {
    await drce.wait("no-such-task");
  } catch (error) {
    if (error instanceof DrceCallError) console.log(\`\${Code[error.code]} legacy \${error.legacyCode} \${error.kind}\`);
  }
} finally {
  drce.close();
}

export function misuses(): void {
  // @ts-expect-error a spec is an object of TaskSpec fields, not a command line
  void drce.run("ls");
  // @ts-expect-error the server option is required
  createDrceClient({ token: "t" });
}
`;
