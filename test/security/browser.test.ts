import http from "node:http";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleBrowserClient, chromiumUnavailableReason, startBrowser, type TestBrowser } from "../helpers/browser.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * Web pages against a node, in a real headless Chromium: a page served from a second
 * loopback origin tries what any site a user visits could try (a no-cors POST to /drce, a
 * Connect-Web call), and a page whose host name resolves to 127.0.0.1 (DNS rebinding)
 * calls the node as its own origin. Nothing runs, as the node's task list shows, until the
 * operator lists the page's origin with --cors-origin: then Connect-Web and gRPC-Web work,
 * with the token.
 */

const unavailable = chromiumUnavailableReason();
const mustRun = process.env["CI"] === "true";
if (unavailable !== undefined) {
  if (mustRun) {
    describe("browser test prerequisites", () => {
      it("has Chromium to test with in CI", () => {
        throw new Error(`the browser tests cannot run in CI: ${unavailable}`);
      });
    });
  } else {
    console.warn(`skipping the browser tests: ${unavailable}`);
  }
}

const token = "browser-token-81c";

/** The page's script, reachable from the test through page.evaluate. */
interface PageClient {
  submit(baseUrl: string, protocol: "connect" | "grpc-web", token: string, command: string): Promise<{ ok: true; exitStatus: number; stdout: string } | { ok: false; code: string; message: string; legacyCode: string }>;
  noCorsPost(url: string, body: string): Promise<string>;
}

describe.skipIf(unavailable !== undefined)("web pages against a node, in Chromium", () => {
  let browser: TestBrowser;
  let pages: http.Server;
  let pageOrigin: string;
  let open: TestNode;
  let listing: TestNode;
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "drce-browser-"));
    const script = await bundleBrowserClient();
    pages = http.createServer((req, res) => {
      if (req.url === "/client.js") {
        res.writeHead(200, { "content-type": "text/javascript" });
        res.end(script);
        return;
      }
      res.writeHead(200, { "content-type": "text/html" });
      res.end('<!doctype html><title>a page on another origin</title><script src="/client.js"></script>');
    });
    await new Promise<void>((resolve) => pages.listen(0, "127.0.0.1", resolve));
    pageOrigin = `http://127.0.0.1:${(pages.address() as { port: number }).port}`;
    // A default node: no token, loopback; and one whose operator lists the page's origin.
    open = await startNode();
    listing = await startNode({ token, corsOrigins: [pageOrigin] });
    browser = await startBrowser("MAP rebind.test 127.0.0.1");
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await open?.stop();
    await listing?.stop();
    await new Promise((resolve) => pages?.close(resolve));
    await rm(scratch, { recursive: true, force: true });
  });

  async function pageAt(url: string): Promise<Page> {
    const page = await browser.context.newPage();
    await page.goto(url);
    return page;
  }

  /** Calls a function of the page's script with these arguments, in the page. */
  const call = <K extends keyof PageClient>(page: Page, name: K, ...args: Parameters<PageClient[K]>): ReturnType<PageClient[K]> =>
    page.evaluate(({ name, args }) => (globalThis as unknown as { drce: Record<string, (...a: unknown[]) => unknown> }).drce[name]?.(...args), { name, args: args as unknown[] }) as ReturnType<PageClient[K]>;

  /** A fetch of the page's own origin, as a rebound page's script sends it: status and body. */
  const sameOriginPost = (page: Page, path: string, contentType: string, body: string): Promise<{ status: number; body: string }> =>
    page.evaluate(async ({ path, contentType, body }) => {
      const reply = await fetch(path, { method: "POST", headers: { "content-type": contentType }, body });
      return { status: reply.status, body: await reply.text() };
    }, { path, contentType, body });

  const legacyBody = (command: string): string => JSON.stringify({ type: 0, id: 4242, data: Buffer.from(JSON.stringify({ session: { tmode: 1 }, command })).toString("base64") });

  it("a page of another origin cannot run a command with a no-cors POST to /drce, nor through Connect-Web or gRPC-Web", async () => {
    const page = await pageAt(`${pageOrigin}/`);
    const marker = join(scratch, "no-cors-ran");
    const sent = await call(page, "noCorsPost", `${open.url}/drce`, legacyBody(`touch ${marker}`));
    // The browser sent it (an opaque reply is all a no-cors caller ever sees); the node refused it.
    expect(sent).toBe("opaque");
    for (const protocol of ["connect", "grpc-web"] as const) {
      const outcome = await call(page, "submit", open.url, protocol, "", `touch ${marker}-${protocol}`);
      expect(outcome.ok, protocol).toBe(false);
    }
    expect((await open.client.listTasks({})).tasks).toEqual([]);
    for (const suffix of ["", "-connect", "-grpc-web"]) expect(existsSync(`${marker}${suffix}`), suffix).toBe(false);
    await page.close();
  });

  it("a page whose host name was rebound to 127.0.0.1 is refused at the Host check, even from its own origin", async () => {
    const port = new URL(open.url).port;
    const page = await browser.context.newPage();
    const landing = await page.goto(`http://rebind.test:${port}/`);
    expect(landing?.status()).toBe(421);
    const marker = join(scratch, "rebind-ran");
    const connect = await sameOriginPost(page, "/drce.v1.TaskService/SubmitTask", "application/json", JSON.stringify({ task: { command: `touch ${marker}` } }));
    expect(connect.status).toBe(421);
    expect(connect.body).toMatch(/does not answer to the host name/);
    const legacy = await sameOriginPost(page, "/drce", "text/plain", legacyBody(`touch ${marker}`));
    expect(legacy.status).toBe(421);
    expect((await open.client.listTasks({})).tasks).toEqual([]);
    expect(existsSync(marker)).toBe(false);
    await page.close();
  });

  it("the same page, its origin listed with --cors-origin, runs a task through Connect-Web and gRPC-Web with the token", async () => {
    const page = await pageAt(`${pageOrigin}/`);
    for (const protocol of ["connect", "grpc-web"] as const) {
      const outcome = await call(page, "submit", listing.url, protocol, token, "echo from-the-browser");
      expect(outcome, protocol).toEqual({ ok: true, exitStatus: 0, stdout: "from-the-browser\n" });
    }
    // Without the token the page reads the node's answer: the CORS headers expose it.
    for (const protocol of ["connect", "grpc-web"] as const) {
      const outcome = await call(page, "submit", listing.url, protocol, "", "echo no");
      expect(outcome, protocol).toMatchObject({ ok: false, code: String(Code.Unauthenticated), message: "missing or wrong bearer token" });
    }
    const tasks = await until(() => listing.client.listTasks({}, { headers: { authorization: `Bearer ${token}` } }), (list) => list.tasks.length === 2, 10_000, "the two tasks of the page");
    expect(tasks.tasks).toHaveLength(2);
    await page.close();
  });
});
