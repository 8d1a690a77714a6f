import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumUnavailableReason, startBrowser, type TestBrowser } from "../helpers/browser.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { openConsolePage, terminalText } from "../helpers/console.js";

/*
 * A fan-out followed in the console's Run view, in Chromium, over a manager and three real
 * data nodes: every node's status (a zero and a non-zero exit, a node not started after the
 * max-errors stop, a name the manager does not know) and output as it arrives, the progress
 * bar reaching the count of targeted nodes, the label selector choosing its nodes, a
 * submitted fan-out followed per node with links, and a selection that names no node
 * refused with its codes.
 */

const unavailable = chromiumUnavailableReason();

// Each node runs the task in a directory under its own data directory (drce-<name>-...):
// beta fails with exit 3 and the others succeed, so the statuses differ by node.
const command = 'case "$PWD" in *drce-beta-*) echo "beta gives up" >&2; exit 3;; esac; echo "done in $PWD"';

/** Opens the Run view of the manager (which has no token: the console signs in at once). */
async function openRun(browser: TestBrowser, url: string): Promise<Page> {
  const { page } = await openConsolePage(browser.context, url, "#/run");
  await page.locator("nav[aria-label='Sections']").waitFor();
  // Tall enough for the three nodes' terminals to be on screen (xterm.js paints only those).
  await page.setViewportSize({ width: 1280, height: 1800 });
  return page;
}

/** The status word and badge of one node's part, as the progress view shows them. */
async function nodeStatus(page: Page, node: string): Promise<{ status: string | null; text: string | null }> {
  const item = page.locator(`li[data-node='${node}']`);
  if ((await item.count()) === 0) return { status: null, text: null };
  return { status: await item.getAttribute("data-status"), text: await item.locator(".badge").textContent() };
}

describe.skipIf(unavailable !== undefined)("a fan-out in the Run view of a manager", () => {
  let cluster: TestCluster;
  let browser: TestBrowser;

  beforeAll(async () => {
    [cluster, browser] = await Promise.all([
      startCluster({ nodes: [{ name: "alpha", labels: { rack: "r1" } }, { name: "beta", labels: { rack: "r1" } }, { name: "gamma", labels: { rack: "r2" } }], heartbeatMs: 1000 }),
      startBrowser(),
    ]);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  it("runs on every node and shows each node's status and output, the bar reaching 3/3", async () => {
    const page = await openRun(browser, cluster.url);
    await page.locator("#run-command").fill(command);
    await page.getByLabel("Every node").check();
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator(".fan-out-count").textContent(), { timeout: 30_000 }).toBe("3/3 nodes done");
    const bar = page.locator("progress.progress");
    expect([await bar.getAttribute("value"), await bar.getAttribute("max")]).toEqual(["3", "3"]);
    expect(await nodeStatus(page, "alpha")).toEqual({ status: "finished", text: "exit 0" });
    expect(await nodeStatus(page, "beta")).toEqual({ status: "finished", text: "exit 3" });
    expect(await nodeStatus(page, "gamma")).toEqual({ status: "finished", text: "exit 0" });
    // A non-zero exit is drawn as a failure, a zero one as a success.
    expect(await page.locator("li[data-node='beta'] .badge").getAttribute("class")).toBe("badge state-failed");
    expect(await page.locator("li[data-node='alpha'] .badge").getAttribute("class")).toBe("badge state-finished");
    await expect.poll(() => terminalText(page, "output of alpha")).toMatch(/done in \S*\/drce-alpha-/);
    await expect.poll(() => terminalText(page, "output of gamma")).toMatch(/done in \S*\/drce-gamma-/);
    await expect.poll(() => terminalText(page, "output of beta")).toContain("beta gives up");
    expect(await terminalText(page, "output of beta")).not.toContain("done in");
    // The nodes hold their parts under the task's own id, which the run links to once.
    expect(await page.locator("a.fan-out-task").count()).toBe(0);
    expect(await page.locator("[data-task-link]").getAttribute("href")).toMatch(/^#\/tasks\/.+/);
    await page.screenshot({ path: "docs/screenshots/run-fanout.png", fullPage: true });
    await page.close();
  });

  it("runs on one node of the manager's choice by default and names the node", async () => {
    const page = await openRun(browser, cluster.url);
    await page.locator("#run-command").fill("echo placed once");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator(".run-end").textContent(), { timeout: 30_000 }).toBe("finished, exit 0");
    // The terminal draws what it was written on its next frame, which may come after the end line.
    await expect.poll(() => terminalText(page, "output of the run"), { timeout: 10_000 }).toContain("placed once");
    expect(await page.locator(".run-task strong").textContent()).toMatch(/^(alpha|beta|gamma)$/);
    // One node: no per-node progress.
    expect(await page.locator(".fan-out").count()).toBe(0);
    await page.close();
  });

  it("stops starting nodes after max errors, one at a time: the rest are not started", async () => {
    const page = await openRun(browser, cluster.url);
    await page.locator("#run-command").fill(command);
    await page.getByLabel("These nodes").check();
    await page.locator("#run-nodes").fill("alpha, beta, gamma");
    await page.locator("#run-max-concurrency").fill("1");
    await page.locator("#run-max-errors").fill("1");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator(".fan-out-count").textContent(), { timeout: 30_000 }).toBe("3/3 nodes done");
    expect(await nodeStatus(page, "alpha")).toEqual({ status: "finished", text: "exit 0" });
    expect(await nodeStatus(page, "beta")).toEqual({ status: "finished", text: "exit 3" });
    expect(await nodeStatus(page, "gamma")).toEqual({ status: "not-started", text: "not started" });
    expect(await page.locator("li[data-node='gamma'] .notice").textContent()).toBe("not started: 1 nodes failed (max errors 1)");
    await page.close();
  });

  it("targets the nodes a label selector chooses", async () => {
    const page = await openRun(browser, cluster.url);
    await page.locator("#run-command").fill("echo labelled");
    await page.getByLabel("Nodes with these labels").check();
    await page.locator("#run-labels").fill("rack=r1");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator(".fan-out-count").textContent(), { timeout: 30_000 }).toBe("2/2 nodes done");
    expect(await page.locator("li[data-node]").evaluateAll((items) => items.map((item) => item.getAttribute("data-node")))).toEqual(["alpha", "beta"]);
    await page.close();
  });

  it("follows a submitted fan-out per node and links to the task", async () => {
    const page = await openRun(browser, cluster.url);
    await page.locator("#run-command").fill(command);
    await page.getByLabel("Every node").check();
    await page.getByLabel("submitted: in the background").check();
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator(".fan-out-count").textContent(), { timeout: 30_000 }).toBe("3/3 nodes done");
    expect(await nodeStatus(page, "beta")).toEqual({ status: "finished", text: "exit 3" });
    const id = (await page.locator("[data-task-link]").textContent()) ?? "";
    expect(await page.locator("[data-task-link]").getAttribute("href")).toBe(`#/tasks/${encodeURIComponent(id)}`);
    const task = await cluster.tasks.getTask({ task: id });
    expect(task.result?.nodes.map((item) => item.node)).toEqual(["alpha", "beta", "gamma"]);
    await page.close();
  });

  it("refuses a selection that names no node, with the manager's codes, and a malformed selector before sending", async () => {
    const page = await openRun(browser, cluster.url);
    await page.locator("#run-command").fill("true");
    await page.getByLabel("Nodes with these labels").check();
    await page.locator("#run-labels").fill("rack");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator("#run-form-error").textContent()).toBe('Label "rack": write KEY=VALUE, neither of them empty.');
    await page.locator("#run-labels").fill("rack=r9");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator(".run-outcome .error").textContent(), { timeout: 20_000 }).toBe("Unavailable: no target node available: no node matches labels rack=r9 (error 5000)");
    await page.close();
  });
});
