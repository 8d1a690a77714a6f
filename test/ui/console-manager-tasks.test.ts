import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNodeState } from "../../gen/drce/v1/node_service_pb.js";
import { TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import { chromiumUnavailableReason, startBrowser, type TestBrowser } from "../helpers/browser.js";
import { openConsolePage } from "../helpers/console.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { until } from "../helpers/node.js";

/*
 * The console's task list on a manager with two data nodes (no token: the console opens
 * without asking for one): each task shows the node it was placed on, the node filter narrows
 * the list to one node's tasks, and a task placed through the manager appears live.
 */

const unavailable = chromiumUnavailableReason();

describe.skipIf(unavailable !== undefined)("the console's task list on a manager", () => {
  let cluster: TestCluster;
  let browser: TestBrowser;

  beforeAll(async () => {
    cluster = await startCluster({ nodes: [{ name: "alpha" }, { name: "beta" }], heartbeatMs: 1000 });
    await cluster.waitForState(["alpha", "beta"], ClusterNodeState.UP);
    browser = await startBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  const placedOn = async (name: string, alias: string): Promise<string> => {
    const { result } = await cluster.tasks.submitTask({ task: { command: `echo on-${name}`, alias, mode: TaskMode.ASYNC, placement: { nodes: [name] } } });
    const id = result!.id;
    await until(async () => (await cluster.tasks.getTask({ task: id })).result?.state, (state) => state === TaskState.FINISHED, 20_000, `the task on ${name} to finish`);
    return id;
  };

  it("names each task's node, filters by node, and shows a new task live", async () => {
    const onAlpha = await placedOn("alpha", "on-alpha");
    const { page } = await openConsolePage(browser.context, cluster.url);
    // A node without a token needs no sign-in.
    await page.locator("nav[aria-label='Sections']").waitFor();
    expect(await page.locator(".node-name").textContent()).toBe("manager manager");
    await page.locator(`tr[data-task='${onAlpha}']`).waitFor();
    expect(await page.locator(`tr[data-task='${onAlpha}']`).textContent()).toContain("alpha");
    const onBeta = await placedOn("beta", "on-beta");
    await page.locator(`tr[data-task='${onBeta}']`).waitFor({ timeout: 20_000 });
    await until(() => page.locator(`tr[data-task='${onBeta}']`).textContent(), (text) => text?.includes("beta") === true && text.includes("finished"), 20_000, "the new row with its node and state");
    await page.locator("#filter-node").fill("alpha");
    await until(() => page.locator(`tr[data-task='${onBeta}']`).count(), (count) => count === 0, 10_000, "beta's task filtered out");
    expect(await page.locator(`tr[data-task='${onAlpha}']`).count()).toBe(1);
    await page.close();
  }, 90_000);
});
