import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import { chromiumUnavailableReason, startBrowser, type TestBrowser } from "../helpers/browser.js";
import { openConsole, openConsolePage, terminalText } from "../helpers/console.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * The Tasks views of the web console in Chromium, against a real node running real
 * commands: the list follows the node's events as tasks come and go, a task's page shows its
 * output while it is written (colors rendered) and its outcome after, and the page's Kill,
 * Download and Delete act on the node. The screenshots of docs/screenshots/ are taken here.
 */

const unavailable = chromiumUnavailableReason();
const token = "console-tasks-token-3e7";
const screenshots = fileURLToPath(new URL("../../docs/screenshots/", import.meta.url));

describe.skipIf(unavailable !== undefined)("the console's Tasks views in Chromium", () => {
  let node: TestNode;
  let browser: TestBrowser;
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "drce-console-"));
    node = await startNode({ token, name: "console-node" });
    browser = await startBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await node?.stop();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  const auth = { headers: { authorization: `Bearer ${token}` } };
  const submit = async (command: string, alias = ""): Promise<string> => {
    const reply = await node.client.submitTask({ task: { command, alias, mode: TaskMode.ASYNC } }, auth);
    return reply.result!.id;
  };
  const stateOf = async (id: string): Promise<TaskState> => (await node.client.getTask({ task: id }, auth)).result!.state;
  const badgeOf = (page: Page): Promise<string | null> => page.locator("#task-state").textContent();

  it("shows a task's output live while it runs, with its colors, then its outcome and state history", async () => {
    const gate = join(scratch, "go-on");
    const id = await submit(`printf '\\033[31mred line\\033[0m\\n'; echo first; while [ ! -e ${gate} ]; do sleep 0.05; done; echo second; exit 3`, "live-output");
    const { page } = await openConsole(browser.context, node.url, token, `#/tasks/${id}`);
    await until(() => terminalText(page, `stdout of task ${id}`), (text) => text.includes("first"), 15_000, "the first line in the terminal");
    expect(await badgeOf(page)).toBe("running");
    expect(await page.locator("#task-command").textContent()).toContain("echo first");
    // xterm.js draws the escape sequence as a color, not as text.
    const text = await terminalText(page, `stdout of task ${id}`);
    expect(text).toContain("red line");
    expect(text).not.toContain("[31m");
    expect(await page.locator(`[aria-label='stdout of task ${id}'] .xterm-rows span[class*='xterm-fg-1']`).count()).toBeGreaterThan(0);
    // The second line arrives on the same page, without a reload.
    writeFileSync(gate, "");
    await until(() => terminalText(page, `stdout of task ${id}`), (value) => value.includes("second"), 15_000, "the second line in the terminal");
    await until(() => badgeOf(page), (value) => value === "finished", 15_000, "the finished state on the page");
    await until(() => page.locator("#task-exit").textContent(), (value) => value === "3", 15_000, "the exit status");
    const history = await page.locator("#task-history li").allTextContents();
    expect(history.some((line) => line.startsWith("running"))).toBe(true);
    expect(history.at(-1)).toMatch(/^finished/);
    await page.screenshot({ path: join(screenshots, "task.png"), fullPage: true });
    await page.close();
  });

  it("pages a large output from offsets, the last page first, and never reads it whole", async () => {
    const id = await submit("seq 1 100000", "large-output");
    await until(() => stateOf(id), (state) => state === TaskState.FINISHED, 15_000, "the task to finish");
    const { page, requests } = await openConsole(browser.context, node.url, token, `#/tasks/${id}`);
    const label = `stdout of task ${id}`;
    const notice = page.locator("[data-output-size]").first();
    // 588,895 bytes: three pages of 256 KiB, the last one shown first, ending with the last line.
    await until(() => notice.textContent(), (text) => text === "bytes 524288–588895 of 588895 · page 3 of 3", 15_000, "the last page");
    await until(() => terminalText(page, label), (text) => text.includes("100000"), 15_000, "the last line");
    await page.getByRole("button", { name: "Earlier" }).first().click();
    await page.getByRole("button", { name: "Earlier" }).first().click();
    await until(() => notice.textContent(), (text) => text === "bytes 0–262144 of 588895 · page 1 of 3", 15_000, "the first page");
    // The first page ends at byte 262,144: inside line 45542 (48,888 bytes for lines 1 to 9999, then 6 a line).
    await until(() => terminalText(page, label), (text) => text.trimEnd().endsWith("45541\n4554"), 15_000, "the first page's end");
    await page.getByRole("button", { name: "Latest" }).first().click();
    await until(() => terminalText(page, label), (text) => text.includes("100000"), 15_000, "the last line again");
    expect(requests.filter((url) => url.endsWith("/FetchTask"))).toEqual([]);
    await page.close();
  });

  it("kills a running task from its page", async () => {
    const id = await submit("sleep 300", "to-kill");
    const { page } = await openConsole(browser.context, node.url, token, `#/tasks/${id}`);
    await until(() => badgeOf(page), (value) => value === "running", 15_000, "the running state");
    await page.locator("#task-kill").click();
    await until(() => badgeOf(page), (value) => value === "terminated", 20_000, "the terminated state on the page");
    expect(await stateOf(id)).toBe(TaskState.TERMINATED);
    await page.close();
  });

  it("keeps the list live: a new task appears and changes state without a reload, and the state filter narrows it", async () => {
    const gate = join(scratch, "list-gate");
    const { page, requests } = await openConsole(browser.context, node.url, token);
    await page.locator("#tasks-count").filter({ hasText: /tasks$/ }).waitFor();
    const listCalls = (): number => requests.filter((url) => url.endsWith("/ListTasks")).length;
    const before = listCalls();
    const id = await submit(`while [ ! -e ${gate} ]; do sleep 0.05; done`, "appears-live");
    const row = page.locator(`tr[data-task='${id}']`);
    await row.waitFor({ timeout: 15_000 });
    await until(() => row.locator(".badge").textContent(), (value) => value === "running", 15_000, "the new row running");
    writeFileSync(gate, "");
    await until(() => row.locator(".badge").textContent(), (value) => value === "finished", 15_000, "the row finished");
    await until(() => row.textContent(), (value) => value?.includes("while [") === true, 15_000, "the row's command");
    // The list followed the events, not a timer: read again only for the new task's command,
    // at most once per event of that task (new, running, finished).
    expect(listCalls() - before).toBeLessThanOrEqual(3);
    await page.locator("#filter-state").selectOption({ label: "running" });
    await until(() => page.locator(`tr[data-task='${id}']`).count(), (count) => count === 0, 10_000, "the finished row filtered out");
    await page.locator("#filter-state").selectOption({ label: "finished" });
    await page.locator(`tr[data-task='${id}']`).waitFor();
    await page.locator("#filter-state").selectOption({ label: "all" });
    await page.locator("#filter-text").fill("appears-li");
    await until(() => page.locator("tbody tr[data-task]").count(), (count) => count === 1, 10_000, "one row left by the alias filter");
    await page.locator("#filter-text").fill("");
    await page.screenshot({ path: join(screenshots, "tasks.png"), fullPage: true });
    await page.close();
  });

  it("is usable by keyboard: Tab reaches the rows, Enter opens a task, and focus is visible", async () => {
    const id = await submit("echo keyboard", "by-keyboard");
    await until(() => stateOf(id), (state) => state === TaskState.FINISHED, 15_000, "the task to finish");
    const { page } = await openConsole(browser.context, node.url, token);
    await page.locator(`tr[data-task='${id}']`).waitFor();
    let focused = "";
    for (let presses = 0; presses < 30 && focused !== id; presses++) {
      await page.keyboard.press("Tab");
      focused = await page.evaluate<string>("document.activeElement?.dataset?.task ?? ''");
    }
    // Rows are newest first, after the navigation and the filters.
    expect(focused).toBe(id);
    const outline = await page.evaluate<string>("getComputedStyle(document.activeElement).outlineStyle");
    expect(outline).not.toBe("none");
    await page.keyboard.press("Enter");
    await page.waitForURL(`**/ui/#/tasks/${id}`);
    await until(() => terminalText(page, `stdout of task ${id}`), (text) => text.includes("keyboard"), 15_000, "the opened task's output");
    await page.close();
  });

  it("downloads stdout and stderr as files", async () => {
    const id = await submit("echo to-stdout; echo to-stderr >&2", "downloads");
    await until(() => stateOf(id), (state) => state === TaskState.FINISHED, 15_000, "the task to finish");
    const { page } = await openConsole(browser.context, node.url, token, `#/tasks/${id}`);
    for (const [stream, text] of [["stdout", "to-stdout\n"], ["stderr", "to-stderr\n"]] as const) {
      const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: `Download ${stream}` }).click()]);
      expect(download.suggestedFilename()).toBe(`${id}.${stream}`);
      const saved = join(scratch, `${id}.${stream}`);
      await download.saveAs(saved);
      expect(readFileSync(saved, "utf8")).toBe(text);
    }
    await page.close();
  });

  it("deletes a task from its page, back to the list", async () => {
    const id = await submit("echo gone", "to-delete");
    await until(() => stateOf(id), (state) => state === TaskState.FINISHED, 15_000, "the task to finish");
    const { page } = await openConsole(browser.context, node.url, token, `#/tasks/${id}`);
    await page.locator("#task-state").waitFor();
    page.once("dialog", (dialog) => void dialog.accept());
    await page.locator("#task-delete").click();
    await page.waitForURL("**/ui/#/tasks");
    const gone = await node.client.getTask({ task: id }, auth).then(
      (reply) => reply.result?.state,
      (error: unknown) => ConnectError.from(error).code,
    );
    expect([Code.NotFound, TaskState.DELETED]).toContain(gone);
    await page.close();
  });

  it("says so when a task does not exist", async () => {
    const { page } = await openConsole(browser.context, node.url, token, "#/tasks/no-such-task");
    await page.locator("[role='alert']").waitFor();
    expect(await page.locator("[role='alert']").first().textContent()).toMatch(/^NotFound: /);
    await page.close();
  });

  it("is readable at a phone's width, and its sign-in form too", async () => {
    const { page } = await openConsole(browser.context, node.url, token);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator("tbody tr[data-task]").first().waitFor();
    // Nothing wider than the screen: no sideways scrolling of the page.
    expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(screenshots, "tasks-phone.png") });
    await page.close();
    const signIn = await openConsolePage(browser.context, node.url);
    await signIn.page.evaluate("sessionStorage.clear()");
    await signIn.page.reload();
    await signIn.page.locator("#token").waitFor();
    await signIn.page.setViewportSize({ width: 800, height: 500 });
    await signIn.page.screenshot({ path: join(screenshots, "login.png") });
    expect(existsSync(join(screenshots, "login.png"))).toBe(true);
    await signIn.page.close();
  });
});
