import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumUnavailableReason, startBrowser, type TestBrowser } from "../helpers/browser.js";
import { openConsole, openConsolePage, signInConsole } from "../helpers/console.js";
import { startDrce } from "../helpers/cli.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * The web console as a node serves it: the redirect from /, the page and its hashed assets
 * with their types and caching, refusals of what it does not serve, the node's browser guard
 * on the page as on the API, and, in Chromium, the sign-in with the token: a wrong one is
 * refused, the right one opens the console, and no request of the page leaves the node.
 */

const unavailable = chromiumUnavailableReason();
const token = "console-token-5d1";

/** One HTTP/1.1 request with exactly the headers given (fetch would add an Origin of its own to some). */
function request(url: string, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    // The path goes as written, dot segments included (a URL would resolve them first).
    const req = http.request({ host: hostname, port, path, method: options.method ?? "GET", headers: options.headers ?? {} }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the web console's files, served by a node", () => {
  let node: TestNode;

  beforeAll(async () => {
    node = await startNode({ token });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("redirects GET / and /ui to /ui/", async () => {
    for (const path of ["/", "/ui"]) {
      const reply = await request(node.url, path);
      expect(reply.status).toBe(302);
      expect(reply.headers.location).toBe("/ui/");
    }
  });

  it("serves the page without the token, revalidated at each load, and its hashed assets for a year", async () => {
    const page = await request(node.url, "/ui/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["cache-control"]).toBe("no-cache");
    expect(page.headers["content-security-policy"]).toContain("connect-src 'self'");
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    const script = /src="\.\/(console-[A-Z0-9]+\.js)"/.exec(page.body)?.[1];
    const style = /href="\.\/(console-[A-Z0-9]+\.css)"/.exec(page.body)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    const js = await request(node.url, `/ui/${script}`);
    expect(js.status).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    const css = await request(node.url, `/ui/${style}`);
    expect(css.status).toBe(200);
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
    // xterm.js's own rules are compiled into the one style sheet.
    expect(css.body).toContain(".xterm");
  });

  it("answers a repeated load with 304 when the page has not changed (ETag)", async () => {
    const first = await request(node.url, "/ui/");
    const etag = first.headers.etag;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await request(node.url, "/ui/", { headers: { "if-none-match": etag! } });
    expect(again.status).toBe(304);
    expect(again.body).toBe("");
  });

  it("answers HEAD with the headers and no body", async () => {
    const head = await request(node.url, "/ui/", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(Number(head.headers["content-length"])).toBeGreaterThan(100);
    expect(head.body).toBe("");
  });

  it("answers 404 for a file the console does not have, however its name is written", async () => {
    for (const path of ["/ui/missing.js", "/ui/../package.json", "/ui/%2e%2e/package.json", "/ui/sub/index.html"]) {
      const reply = await request(node.url, path);
      expect(reply.status, path).toBe(404);
      expect(reply.body, path).toMatch(/^the web console has no file /);
    }
  });

  it("answers 405 for a method other than GET and HEAD", async () => {
    const reply = await request(node.url, "/ui/", { method: "POST" });
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe("GET, HEAD");
  });

  it("applies the node's browser guard to the page: a foreign Host gets 421, another site's page 403", async () => {
    const rebound = await request(node.url, "/ui/", { headers: { host: "rebind.example:80" } });
    expect(rebound.status).toBe(421);
    expect(rebound.body).toMatch(/does not answer to the host name "rebind.example"/);
    const crossSite = await request(node.url, "/ui/", { headers: { "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors" } });
    expect(crossSite.status).toBe(403);
    const foreignOrigin = await request(node.url, "/ui/", { headers: { origin: "http://evil.example" } });
    expect(foreignOrigin.status).toBe(403);
  });
});

describe("drce serve", () => {
  it("prints the URL of its web console as it starts, and the URL serves it", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "drce-console-serve-"));
    const serve = startDrce(["serve", "--listen", "127.0.0.1:0", "--no-zmq", "--no-admin-zmq", "--data-dir", dataDir, "--log-level", "silent"], { cleanDrceEnv: true });
    try {
      const line = await until(() => serve.stdout(), (out) => out.includes("\n"), 30_000, "the console line on stdout");
      const consoleUrl = /^drce serve: the web console is at (http:\/\/127\.0\.0\.1:\d+\/ui\/)\n$/.exec(line)?.[1];
      expect(consoleUrl, line).toBeDefined();
      const page = await fetch(consoleUrl!);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("<title>drce console</title>");
    } finally {
      serve.child.kill("SIGTERM");
      await serve.done;
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(unavailable !== undefined)("the web console in Chromium", () => {
  let node: TestNode;
  let browser: TestBrowser;

  beforeAll(async () => {
    node = await startNode({ token });
    browser = await startBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await node?.stop();
  });

  it("refuses a wrong token with a clear message and keeps asking", async () => {
    const { page } = await openConsolePage(browser.context, node.url);
    await signInConsole(page, "not-the-token");
    await expect.poll(() => page.locator("#login-error").textContent()).toBe("The node refused this token: it is not the node's --token.");
    expect(await page.locator("nav[aria-label='Sections']").count()).toBe(0);
    await page.close();
  });

  it("signs in with the token, calls only its own node (same origin, through the browser guard), and keeps the token for the tab", async () => {
    const { page, requests } = await openConsole(browser.context, node.url, token);
    expect(await page.locator(".node-name").textContent()).toMatch(/^node /);
    // A reload signs in again with the token kept in sessionStorage: no form.
    await page.reload();
    await page.locator("nav[aria-label='Sections']").waitFor();
    expect(await page.locator("#token").count()).toBe(0);
    const origin = new URL(node.url).origin;
    expect(requests.length).toBeGreaterThan(3);
    expect(requests.filter((url) => new URL(url).origin !== origin)).toEqual([]);
    expect(requests.some((url) => url.includes("/drce.v1.NodeService/GetNodeInfo"))).toBe(true);
    await page.close();
  });

  it("is served by a manager too, which it names as a manager", async () => {
    const manager = await startNode({ token, role: "manager", name: "console-manager" });
    try {
      const { page } = await openConsole(browser.context, manager.url, token);
      expect(await page.locator(".node-name").textContent()).toBe("manager console-manager");
      await page.close();
    } finally {
      await manager.stop();
    }
  });
});
