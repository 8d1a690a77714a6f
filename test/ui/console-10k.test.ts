import { cp, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import { chromiumUnavailableReason, startBrowser, type TestBrowser } from "../helpers/browser.js";
import { openConsole } from "../helpers/console.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * The first screen of the console's task list on a node that keeps 10,000 tasks: the data
 * directory is made as bench/ makes its own (copies of one real finished task, each with an id
 * and a submission time of its own), the node recovers it, and Chromium opens the list. The
 * time from the page's load to its first rows drawn is printed; the list draws only the rows
 * in view, which the count of rows in the page shows.
 */

const unavailable = chromiumUnavailableReason();
const token = "console-10k-token-c42";
const stored = 10_000;

/** Fills `target` with `count` copies of the one finished task in `source`, newest last. */
async function fillStore(source: string, target: string, count: number): Promise<void> {
  const tasks = join(source, "tasks");
  const sample = (await readdir(tasks)).find((name) => !name.startsWith("."));
  if (sample === undefined) throw new Error("no finished task to copy");
  const status = JSON.parse(await readFile(join(tasks, sample, "status.json"), "utf8")) as { id: string; submittedAt: number; startedAt: number; finishedAt: number };
  const request = JSON.parse(await readFile(join(tasks, sample, "request.json"), "utf8")) as { spec: { id: string } };
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let index = next++; index < count; index = next++) {
      const id = `stored-${index}`;
      const dir = join(target, "tasks", id);
      await cp(join(tasks, sample), dir, { recursive: true });
      const shift = index * 1000;
      await writeFile(join(dir, "status.json"), JSON.stringify({ ...status, id, submittedAt: status.submittedAt + shift, startedAt: status.startedAt + shift, finishedAt: status.finishedAt + shift }));
      await writeFile(join(dir, "request.json"), JSON.stringify({ ...request, spec: { ...request.spec, id } }));
    }
  };
  await Promise.all(Array.from({ length: 16 }, () => worker()));
}

describe.skipIf(unavailable !== undefined)("the console's task list with 10,000 stored tasks", () => {
  let scratch: string;
  let node: TestNode;
  let browser: TestBrowser;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "drce-console-10k-"));
    const seedDir = join(scratch, "seed");
    const seed = await startNode({ dataDir: seedDir, token });
    const auth = { headers: { authorization: `Bearer ${token}` } };
    const { result } = await seed.client.submitTask({ task: { command: "echo stored", mode: TaskMode.ASYNC } }, auth);
    await until(async () => (await seed.client.getTask({ task: result!.id }, auth)).result?.state, (state) => state === TaskState.FINISHED, 15_000, "the seed task to finish");
    await seed.stop();
    const dataDir = join(scratch, "data");
    await fillStore(seedDir, dataDir, stored);
    node = await startNode({ dataDir, token });
    browser = await startBrowser();
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    await node?.stop();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  it("draws the first screen of the list, newest first, drawing only the rows in view", async () => {
    const { page } = await openConsole(browser.context, node.url, token);
    await page.locator(`tr[data-task='stored-${stored - 1}']`).waitFor({ timeout: 30_000 });
    // Measured on a reload: the token is kept for the tab, the assets are in the browser's cache
    // as a returning user has them, and the list is read from the node again.
    const times: number[] = [];
    const listing: number[] = [];
    for (let round = 0; round < 3; round++) {
      const started = Date.now();
      await page.reload();
      await page.locator(`tr[data-task='stored-${stored - 1}']`).waitFor({ timeout: 30_000 });
      times.push(Date.now() - started);
      // How much of it the ListTasks call took, request to last byte (the browser's resource timing).
      listing.push(await page.evaluate<number>("Math.round(performance.getEntriesByType('resource').filter((entry) => entry.name.endsWith('/ListTasks')).at(-1)?.duration ?? 0)"));
    }
    const drawn = await page.locator("tbody tr[data-task]").count();
    const sorted = [...times].sort((a, b) => a - b);
    console.log(`console: first screen of the task list with ${stored} stored tasks: ${times.join(" ms, ")} ms (median ${sorted[1]} ms), ${drawn} rows drawn; the ListTasks call ${listing.join(" ms, ")} ms`);
    expect(await page.locator("#tasks-count").textContent()).toBe(`${stored} of ${stored} tasks`);
    expect(drawn).toBeGreaterThan(10);
    expect(drawn).toBeLessThan(100);
    // The oldest task is in the list, though not drawn until scrolled to.
    expect(await page.locator(`tr[data-task='stored-0']`).count()).toBe(0);
    await page.locator(".scroller").hover();
    await until(
      async () => {
        await page.mouse.wheel(0, 200_000);
        return page.locator(`tr[data-task='stored-0']`).count();
      },
      (count) => count === 1,
      30_000,
      "the oldest task drawn once scrolled to",
    );
    await page.close();
  }, 120_000);
});
