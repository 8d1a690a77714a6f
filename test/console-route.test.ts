import http from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsoleRoute } from "../src/console-route.js";

/*
 * The console's route on a real HTTP server, with the directories it reads given: a copy of
 * drce with no built console says so (503) until it is built, then serves what the build
 * wrote, and nothing else.
 */

describe("the web console's route", () => {
  let dir: string;
  let server: http.Server;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "drce-console-route-"));
    const route = createConsoleRoute({ directories: [join(dir, "missing"), dir] });
    server = http.createServer((req, res) => route.handle(req, res, (req.url ?? "/").split("?")[0] ?? "/"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it("answers 503 with what to run while the console is not built, and serves it once it is", async () => {
    const before = await fetch(`${url}/ui/`);
    expect(before.status).toBe(503);
    expect(await before.text()).toBe("the web console is not built in this copy of drce: run `npm run build` (npm start does it)\n");
    await writeFile(join(dir, "console-ABC.js"), "export {};\n");
    await writeFile(join(dir, "notes.txt"), "not an asset");
    await writeFile(join(dir, "index.html"), '<script type="module" src="./console-ABC.js"></script>');
    const page = await fetch(`${url}/ui/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("console-ABC.js");
    const script = await fetch(`${url}/ui/console-ABC.js`);
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    // A file of a type the console does not serve is not served, even in its directory.
    expect((await fetch(`${url}/ui/notes.txt`)).status).toBe(404);
  });

  it("matches / and /ui/..., and leaves every other path to the routes after it", () => {
    const route = createConsoleRoute({ directories: [dir] });
    expect(["/", "/ui", "/ui/", "/ui/console-ABC.js"].every((path) => route.matches(path))).toBe(true);
    expect(["/drce", "/metrics", "/drce.v1.TaskService/ListTasks", "/uix", "/index.html"].some((path) => route.matches(path))).toBe(false);
    expect(route.guard).toBe("open");
  });
});
