import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/drce/v1/task_pb.js";
import { PlacementMode, TaskMode } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { emptyRunForm, RunFormError, runRequestOf, type RunFormValues } from "../../ui/src/run/run-spec.js";
import { chromiumUnavailableReason, startBrowser, type TestBrowser } from "../helpers/browser.js";
import { openConsole, terminalText } from "../helpers/console.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * The console's Run view on a data node, in Chromium: a sync run from the form shows its
 * output live and then its exit status; stdin, environment and an argument vector reach the
 * command; an async run links to its task's detail view; a field that cannot be sent is
 * named beside the form and nothing is sent; Stop terminates an attached run.
 */

const unavailable = chromiumUnavailableReason();

/** The field and sentence the form shows for these values, or "sent" when they make a request. */
function refusal(values: Partial<RunFormValues>, manager = true): { field: string; message: string } | "sent" {
  try {
    runRequestOf({ ...emptyRunForm, command: "true", ...values }, manager);
    return "sent";
  } catch (error) {
    if (!(error instanceof RunFormError)) throw error;
    return { field: error.field, message: error.message };
  }
}

describe("the Run form's request", () => {
  it("is the task drce run would send: shell line or argv, env, work dir, timeout, stdin and mode", () => {
    const shell = runRequestOf({ ...emptyRunForm, command: "make && make test", env: "A=1\nB=x=y\n", workDir: " /srv ", timeout: "30", stdin: "in" }, false);
    expect(shell.fanOut).toBe(false);
    expect(shell.spec.command).toBe("make && make test");
    expect(shell.spec.env).toEqual({ A: "1", B: "x=y" });
    expect(shell.spec.workDir).toBe("/srv");
    expect(shell.spec.timeoutSeconds).toBe(30);
    expect(new TextDecoder().decode(shell.spec.input)).toBe("in");
    expect(shell.spec.mode).toBe(TaskMode.SYNC);
    expect(shell.spec.placement).toBeUndefined();
    const argv = runRequestOf({ ...emptyRunForm, form: "argv", command: "ls\r\n-l\n\n/tmp dir", async: true }, false);
    expect(argv.spec.argv).toEqual(["ls", "-l", "/tmp dir"]);
    expect(argv.spec.command).toBe("");
    expect(argv.spec.mode).toBe(TaskMode.ASYNC);
  });

  it("builds a manager's placement as drce run --all, --nodes and --target do, with the rate controls", () => {
    expect(runRequestOf({ ...emptyRunForm, command: "true" }, true).spec.placement).toBeUndefined();
    const all = runRequestOf({ ...emptyRunForm, command: "true", targeting: "all", maxConcurrency: "2", maxErrors: "50%" }, true);
    expect(all.fanOut).toBe(true);
    expect(all.spec.placement?.mode).toBe(PlacementMode.ALL);
    expect(all.spec.placement?.nodes).toEqual([]);
    expect(all.spec.placement?.maxConcurrency?.value).toEqual({ case: "count", value: 2 });
    expect(all.spec.placement?.maxErrors?.value).toEqual({ case: "percent", value: 50 });
    expect(runRequestOf({ ...emptyRunForm, command: "true", targeting: "nodes", nodes: "alpha, beta gamma" }, true).spec.placement?.nodes).toEqual(["alpha", "beta", "gamma"]);
    expect(runRequestOf({ ...emptyRunForm, command: "true", targeting: "labels", labels: "env=prod, os=linux" }, true).spec.placement?.labels).toEqual({ env: "prod", os: "linux" });
    // A data node has no placement: the targeting is not even shown there.
    expect(runRequestOf({ ...emptyRunForm, command: "true", targeting: "all" }, false).spec.placement).toBeUndefined();
  });

  it("names the field and what is wrong for each value that cannot be sent", () => {
    expect(refusal({ command: "  " })).toEqual({ field: "run-command", message: "The command is empty: type a shell command line." });
    expect(refusal({ form: "argv", command: "\n\n" })).toEqual({ field: "run-command", message: "The argument vector is empty: type the program, then one argument a line." });
    expect(refusal({ timeout: "0" })).toEqual({ field: "run-timeout", message: 'Timeout "0": a whole number of seconds, at least 1.' });
    expect(refusal({ timeout: "ten" })).toEqual({ field: "run-timeout", message: 'Timeout "ten": a whole number of seconds, at least 1.' });
    expect(refusal({ env: "NOEQUALS" })).toEqual({ field: "run-env", message: 'Environment line 1 ("NOEQUALS"): write NAME=VALUE, NAME of letters, digits and _.' });
    expect(refusal({ targeting: "nodes", nodes: " , " })).toEqual({ field: "run-nodes", message: "No node named: type one name or more, separated by commas." });
    expect(refusal({ targeting: "labels", labels: "" })).toEqual({ field: "run-labels", message: "No label selector: type KEY=VALUE pairs separated by commas, such as env=prod,os=linux." });
    expect(refusal({ targeting: "labels", labels: "env=" })).toEqual({ field: "run-labels", message: 'Label "env=": write KEY=VALUE, neither of them empty.' });
    expect(refusal({ targeting: "labels", labels: "env=a,env=b" })).toEqual({ field: "run-labels", message: 'Label "env" is given twice.' });
    expect(refusal({ targeting: "all", maxConcurrency: "0" })).toEqual({ field: "run-max-concurrency", message: 'Max concurrency "0": a number of nodes (at least 1) or a percentage of them (1% to 100%).' });
    expect(refusal({ targeting: "all", maxErrors: "101%" })).toEqual({ field: "run-max-errors", message: 'Max errors "101%": a number of nodes (at least 1) or a percentage of them (1% to 100%).' });
    expect(refusal({ targeting: "all", maxErrors: "-1" })).toEqual({ field: "run-max-errors", message: 'Max errors "-1": a number of nodes (at least 1) or a percentage of them (1% to 100%).' });
    expect(refusal({ targeting: "manager", maxErrors: "1" })).toEqual({ field: "run-max-errors", message: "The rate controls belong to a run on several nodes: choose all nodes, names or labels." });
    expect(refusal({ targeting: "all", maxConcurrency: "100%", maxErrors: "1" })).toBe("sent");
  });
});
const token = "run-view-token-7c2";

describe.skipIf(unavailable !== undefined)("the Run view on a data node", () => {
  let node: TestNode;
  let browser: TestBrowser;
  let tasks: Client<typeof TaskService>;

  beforeAll(async () => {
    node = await startNode({ token });
    tasks = createClient(TaskService, createConnectTransport({ baseUrl: node.url, httpVersion: "2", interceptors: [(next) => (request) => (request.header.set("authorization", `Bearer ${token}`), next(request))] }));
    browser = await startBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await node?.stop();
  });

  it("runs a sync shell command from the form, shows its output live, then its exit status", async () => {
    const { page } = await openConsole(browser.context, node.url, token, "#/run");
    // No targeting on a data node: the manager's fieldset is not shown.
    expect(await page.locator("fieldset.run-targeting").count()).toBe(0);
    await page.locator("#run-command").fill("echo first line; read go < /dev/null; printf 'second\\n'; echo warned >&2; exit 3");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => terminalText(page, "output of the run"), { timeout: 15_000 }).toContain("second");
    expect(await terminalText(page, "output of the run")).toContain("first line");
    expect(await terminalText(page, "output of the run")).toContain("warned");
    await expect.poll(() => page.locator(".run-end").textContent(), { timeout: 15_000 }).toBe("finished, exit 3");
    const id = await page.locator("[data-task-link]").textContent();
    expect(await page.locator("[data-task-link]").getAttribute("href")).toBe(`#/tasks/${id}`);
    const stored = await tasks.getTask({ task: id! });
    expect(stored.result?.state).toBe(TaskState.FINISHED);
    expect(stored.result?.exitStatus).toBe(3);
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.screenshot({ path: "docs/screenshots/run.png", fullPage: true });
    await page.close();
  });

  it("sends stdin and the environment with the task, and runs an argument vector without a shell", async () => {
    const { page } = await openConsole(browser.context, node.url, token, "#/run");
    await page.locator("#run-command").fill('cat; echo "greeting=$GREETING"');
    await page.locator("#run-env").fill("GREETING=hello there");
    await page.locator("#run-stdin").fill("from stdin\n");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator(".run-end").textContent(), { timeout: 15_000 }).toBe("finished, exit 0");
    const shown = await terminalText(page, "output of the run");
    expect(shown).toContain("from stdin");
    expect(shown).toContain("greeting=hello there");

    await page.getByLabel("an argument vector, one word a line").check();
    // Without a shell, $HOME and ; are plain words.
    await page.locator("#run-command").fill("/bin/echo\n$HOME;\nword two");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => terminalText(page, "output of the run"), { timeout: 15_000 }).toContain("$HOME; word two");
    await expect.poll(() => page.locator(".run-end").textContent(), { timeout: 15_000 }).toBe("finished, exit 0");
    await page.close();
  });

  it("submits an async run and links to its task's detail view", async () => {
    const { page } = await openConsole(browser.context, node.url, token, "#/run");
    await page.locator("#run-command").fill("echo in the background");
    await page.getByLabel("submitted: in the background").check();
    await page.getByRole("button", { name: "Run" }).click();
    const link = page.locator("[data-task-link]");
    await link.waitFor({ timeout: 15_000 });
    const id = (await link.textContent()) ?? "";
    expect(id).not.toBe("");
    // No attached output for a submitted task: its detail view follows it.
    expect(await page.locator("[role='log'][aria-label='output of the run']").count()).toBe(0);
    await until(() => tasks.getTask({ task: id }), (reply) => reply.result?.state === TaskState.FINISHED, 15_000, "the async task to finish");
    const fetched = await tasks.fetchTask({ task: id });
    expect(Buffer.from(fetched.result?.stdout ?? new Uint8Array()).toString()).toBe("in the background\n");
    await link.press("Enter");
    await expect.poll(() => page.evaluate("location.hash")).toBe(`#/tasks/${encodeURIComponent(id)}`);
    await page.close();
  });

  it("names the field that cannot be sent, focuses it, and sends nothing", async () => {
    const { page, requests } = await openConsole(browser.context, node.url, token, "#/run");
    const calls = (): number => requests.filter((url) => /TaskService\/(RunTask|SubmitTask)$/.test(url)).length;
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator("#run-form-error").textContent()).toBe("The command is empty: type a shell command line.");
    expect(await page.evaluate("document.activeElement?.id")).toBe("run-command");
    expect(await page.locator("#run-command").getAttribute("aria-invalid")).toBe("true");

    await page.locator("#run-command").fill("true");
    await page.locator("#run-timeout").fill("1.5");
    await page.locator("#run-timeout").press("Enter");
    await expect.poll(() => page.locator("#run-form-error").textContent()).toBe('Timeout "1.5": a whole number of seconds, at least 1.');
    expect(await page.evaluate("document.activeElement?.id")).toBe("run-timeout");

    await page.locator("#run-timeout").fill("");
    await page.locator("#run-env").fill("GOOD=1\n2BAD=x");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator("#run-form-error").textContent()).toBe('Environment line 2 ("2BAD=x"): write NAME=VALUE, NAME of letters, digits and _.');
    expect(calls()).toBe(0);
    await page.close();
  });

  it("shows the node's refusal of a task with its Connect code and legacy error number, and can run again", async () => {
    const { page } = await openConsole(browser.context, node.url, token, "#/run");
    await page.locator("#run-command").fill("true");
    await page.locator("#run-env").fill("LD_PRELOAD=/tmp/x.so");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => page.locator(".run-outcome .error").textContent(), { timeout: 15_000 }).toBe("InvalidArgument: environment variable LD_PRELOAD is refused by this node (error 102)");
    expect(await page.locator("[data-task-link]").count()).toBe(0);
    await expect.poll(() => page.getByRole("button", { name: "Run" }).isEnabled()).toBe(true);
    await page.close();
  });

  it("is usable by keyboard alone: the form is filled, a choice made and the run started without a pointer", async () => {
    const { page } = await openConsole(browser.context, node.url, token, "#/run");
    await page.locator("input[name='run-form']").first().focus();
    // Arrow keys move through a radio group, as in any form.
    await page.keyboard.press("ArrowRight");
    expect(await page.getByLabel("an argument vector, one word a line").isChecked()).toBe(true);
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.id")).toBe("run-command");
    await page.keyboard.type("/bin/echo");
    await page.keyboard.press("Enter");
    await page.keyboard.type("typed by keys");
    let presses = 0;
    while ((await page.evaluate("document.activeElement?.type")) !== "submit" && presses++ < 20) await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await expect.poll(() => terminalText(page, "output of the run"), { timeout: 15_000 }).toContain("typed by keys");
    await expect.poll(() => page.locator(".run-end").textContent(), { timeout: 15_000 }).toBe("finished, exit 0");
    await page.close();
  });

  it("stops an attached run with Stop, which terminates its task", async () => {
    const { page } = await openConsole(browser.context, node.url, token, "#/run");
    await page.locator("#run-command").fill("echo started; sleep 30");
    await page.getByRole("button", { name: "Run" }).click();
    await expect.poll(() => terminalText(page, "output of the run"), { timeout: 15_000 }).toContain("started");
    const id = (await page.locator("[data-task-link]").textContent()) ?? "";
    await page.getByRole("button", { name: "Stop" }).click();
    await expect.poll(() => page.locator(".run-outcome .notice").textContent()).toBe("The run was stopped: its task is terminated.");
    const ended = await until(() => tasks.getTask({ task: id }), (reply) => reply.result?.state === TaskState.TERMINATED, 15_000, "the stopped task to be terminated");
    expect(ended.result?.state).toBe(TaskState.TERMINATED);
    // The form can run again once the call has ended.
    expect(await page.getByRole("button", { name: "Run" }).isEnabled()).toBe(true);
    await page.close();
  });
});
