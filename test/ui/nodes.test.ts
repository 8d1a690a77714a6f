import { hostname } from "node:os";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNodeState } from "../../gen/drce/v1/node_service_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { chromiumUnavailableReason, startBrowser, type TestBrowser } from "../helpers/browser.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { openConsole, openConsolePage } from "../helpers/console.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * The console's Nodes view in Chromium: on a data node, the node itself (its load figures,
 * the history chart fed by WatchResourceReports, free slots, task statistics and host); on
 * a manager with three real nodes, every node with its state, labels and a chart that
 * grows, a stopped node leaving the up state, and the view readable at a phone's width.
 */

const unavailable = chromiumUnavailableReason();
const token = "nodes-view-token-41a";

/** The number of samples a chart has drawn, by its accessible name. */
async function chartPoints(page: Page, label: string): Promise<number> {
  const chart = page.locator(`[role='img'][aria-label^='${label}:']`);
  if ((await chart.count()) === 0) return 0;
  return Number(await chart.getAttribute("data-points"));
}

describe.skipIf(unavailable !== undefined)("the Nodes view on a data node", () => {
  let node: TestNode;
  let browser: TestBrowser;

  beforeAll(async () => {
    node = await startNode({ token, sampleIntervalMs: 200, name: "solo" });
    browser = await startBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await node?.stop();
  });

  it("shows the node itself: state, the eight figures, a growing chart, free slots, statistics and host", async () => {
    const tasks = createClient(TaskService, createConnectTransport({ baseUrl: node.url, httpVersion: "2", interceptors: [(next) => (request) => (request.header.set("authorization", `Bearer ${token}`), next(request))] }));
    await tasks.submitTask({ task: { command: "true", mode: 1 } });
    const { page } = await openConsole(browser.context, node.url, token, "#/nodes");
    const card = page.locator("article.self-card");
    await expect.poll(() => card.locator("h2").textContent()).toBe("This node solo up");
    // No cluster list on a data node.
    expect(await page.locator("ul.node-list").count()).toBe(0);
    expect(await card.locator("dd[data-figure]").count()).toBe(8);
    await expect.poll(() => card.locator("dd[data-figure='cpu']").textContent()).toMatch(/^\d+\.\d%$/);
    // The history replays the kept reports, then grows with each new one.
    await expect.poll(() => chartPoints(page, "load history of solo"), { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
    const first = await chartPoints(page, "load history of solo");
    await expect.poll(() => chartPoints(page, "load history of solo"), { timeout: 15_000 }).toBeGreaterThan(first);
    expect(await card.locator(".usage-chart canvas").count()).toBeGreaterThan(0);
    expect(Number(await card.locator("dd[data-fact='free-slots']").textContent())).toBeGreaterThan(0);
    await expect.poll(() => card.locator("table.node-stats tbody tr").first().locator("td").first().textContent()).toBe("1");
    await expect.poll(() => card.locator("dl.host-facts dd").first().textContent()).toBe(hostname());
    await page.close();
  });
});

describe.skipIf(unavailable !== undefined)("the Nodes view on a manager with three nodes", () => {
  let cluster: TestCluster;
  let browser: TestBrowser;

  beforeAll(async () => {
    [cluster, browser] = await Promise.all([
      startCluster({ nodes: [{ name: "alpha", labels: { rack: "r1" } }, { name: "beta", labels: { rack: "r1" } }, { name: "gamma", labels: { rack: "r2", gpu: "yes" } }], heartbeatMs: 1000 }),
      startBrowser(),
    ]);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  it("lists every node with its state, labels and figures, each chart growing with the heartbeats", async () => {
    const { page } = await openConsolePage(browser.context, cluster.url, "#/nodes");
    await page.locator("nav[aria-label='Sections']").waitFor();
    await page.setViewportSize({ width: 1280, height: 2000 });
    await expect.poll(() => page.locator(".nodes-count").textContent(), { timeout: 15_000 }).toBe("3 nodes, 3 up");
    expect(await page.locator("ul.node-list article").evaluateAll((cards) => cards.map((card) => [card.getAttribute("data-node"), card.getAttribute("data-state")]))).toEqual([
      ["alpha", "up"],
      ["beta", "up"],
      ["gamma", "up"],
    ]);
    const gamma = page.locator("ul.node-list article[data-node='gamma']");
    expect(await gamma.locator(".node-labels .badge").allTextContents()).toEqual(["gpu=yes", "rack=r2"]);
    expect(await gamma.locator("dd[data-figure]").count()).toBe(8);
    expect(await gamma.locator(".node-url").textContent()).toBe(cluster.members.get("gamma")!.child.url);
    for (const name of ["alpha", "beta", "gamma"]) await expect.poll(() => chartPoints(page, `load history of ${name}`), { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
    // The manager's own card has its chart from its own reports.
    await expect.poll(() => chartPoints(page, "load history of manager"), { timeout: 15_000 }).toBeGreaterThanOrEqual(1);
    await page.screenshot({ path: "docs/screenshots/nodes.png", fullPage: true });

    // At a phone's width nothing is wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await page.screenshot({ path: "docs/screenshots/nodes-phone.png" });
    await page.close();
  });

  it("shows a stopped node leaving the up state", async () => {
    const { page } = await openConsolePage(browser.context, cluster.url, "#/nodes");
    await page.locator("nav[aria-label='Sections']").waitFor();
    await expect.poll(() => page.locator(".nodes-count").textContent(), { timeout: 15_000 }).toBe("3 nodes, 3 up");
    const gamma = cluster.members.get("gamma")!.child;
    gamma.kill();
    await gamma.exited;
    const listed = await cluster.nodes.listNodes({});
    expect(listed.nodes.length).toBe(3);
    await expect.poll(() => page.locator("article[data-node='gamma']").getAttribute("data-state"), { timeout: 30_000 }).toMatch(/^(suspect|down)$/);
    expect(await page.locator("article[data-node='gamma'] .badge").first().getAttribute("class")).toMatch(/^badge node-(suspect|down)$/);
    await expect.poll(() => page.locator(".nodes-count").textContent()).toBe("3 nodes, 2 up");
    // The manager agrees.
    expect((await cluster.nodes.listNodes({})).nodes.find((node) => node.name === "gamma")?.state).not.toBe(ClusterNodeState.UP);
    await page.close();
  });
});
