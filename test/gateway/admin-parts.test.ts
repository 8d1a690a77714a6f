import { describe, expect, it } from "vitest";
import type { NodeAdmin } from "../../src/core/node-admin.js";
import type { ModeStats, StatFigure } from "../../src/core/node-stats.js";
import { createAdminAnswers, unknownCommand, type AdminAnswer, type ReportedAddress } from "../../src/gateway/admin-answers.js";
import { adminCommands, inapplicableCommands, managerHandlers, dataNodeHandlers, servedAdminCommands } from "../../src/gateway/admin-command-table.js";
import { adminFailureReply, AdminFailure, adminOkReply } from "../../src/gateway/admin-reply.js";
import { legacyStats, propertyFields, storagePropertiesList } from "../../src/gateway/admin-stats.js";

const figure = (min: number, avg: number, max: number): StatFigure => ({ min, avg, max, count: 1 });
const mode = (tasks: number): ModeStats => ({
  tasks,
  failed: 1,
  timeMs: figure(1, 2.345, 3),
  inputBytes: figure(0, 0, 0),
  outputBytes: figure(4, 5, 6),
  cpuPercent: figure(0, 0, 0),
  memoryBytes: figure(0, 0, 0),
  perMinute: figure(0, 0, 0),
});

describe("the admin command table", () => {
  it("serves every reporting command and never calls a served command inapplicable", () => {
    for (const command of adminCommands) expect(servedAdminCommands).toContain(command);
    for (const command of servedAdminCommands) expect(inapplicableCommands[command]).toBeUndefined();
  });

  it("keeps the handlers of data nodes apart from those of routers and managers", () => {
    for (const handler of dataNodeHandlers) expect(managerHandlers as readonly string[]).not.toContain(handler);
  });
});

describe("the admin reply envelope", () => {
  it("names the handler and command in an OK reply", () => {
    expect(adminOkReply({ handler: "Admin", command: "ECHO", parameters: "x" }, "x")).toEqual({ status: 200, body: '{"status":"OK","handler":"Admin","command":"ECHO","data":"x"}' });
  });

  it("gives each error code its HTTP status, with empty names when the request is unknown", () => {
    const statuses = { malformed: 400, unauthenticated: 401, forbidden: 403, unknown_command: 404, method_not_allowed: 405, internal: 500, not_applicable: 501, unavailable: 503 } as const;
    for (const [code, status] of Object.entries(statuses)) {
      const reply = adminFailureReply(code as keyof typeof statuses, "why");
      expect(reply.status).toBe(status);
      expect(JSON.parse(reply.body)).toEqual({ status: "ERROR", handler: "", command: "", error: { code, message: "why" } });
    }
  });
});

describe("the admin statistics", () => {
  it("round the figures to two decimals under the protocol's names", () => {
    const stats = legacyStats(mode(3), mode(4));
    expect(stats["timeSyncTask"]).toEqual({ min: 1, avg: 2.35, max: 3 });
    expect(stats["countSyncTasks"]).toBe(3);
    expect(stats["countAsyncTasks"]).toBe(4);
    expect(stats["countSyncTasksFail"]).toBe(1);
  });

  it("print objects as JSON in name=value fields and as dotted keys in the storage list", () => {
    expect(propertyFields({ a: 1, b: { min: 1 } })).toEqual(["a=1", 'b={"min":1}']);
    expect(storagePropertiesList({ a: 1, b: { min: 1, max: 2 } })).toBe("a:1,b.min:1,b.max:2");
  });
});

describe("the admin answers", () => {
  const admin = { stats: () => ({ sync: mode(1), async: mode(2) }), info: () => ({ uptimeMs: 5, startedAt: 7 }) } as unknown as NodeAdmin;
  const message = (command: string, parameters = ""): { handler: string; command: string; parameters: string } => ({ handler: "Admin", command, parameters });

  it("answers ECHO and TIME in both the JSON and the text form", async () => {
    const answer = createAdminAnswers({ admin });
    expect(await answer(message("ECHO", "hi"), undefined)).toEqual({ data: "hi", text: ["hi"] });
    expect(await answer(message("TIME"), undefined)).toEqual({ data: { time: 5, startedAt: 7 }, text: ["time=5", "startedAt=7"] });
  });

  it("changes the reported address with DRCE_SET_PORT and refuses a port out of range as malformed", async () => {
    const reported: ReportedAddress = { host: "h", port: 1 };
    const answer = createAdminAnswers({ admin, reported });
    expect(((await answer(message("DRCE_SET_PORT", "8080"), undefined)) as AdminAnswer).data).toEqual({ port: 8080, previous: 1 });
    expect(reported.port).toBe(8080);
    await expect(answer(message("DRCE_SET_PORT", "70000"), undefined)).rejects.toMatchObject({ code: "malformed" });
  });

  it("refuses a command that means nothing here, or a part the node was not given, as not applicable", async () => {
    const answer = createAdminAnswers({ admin });
    await expect(answer(message("MMGET"), undefined)).rejects.toBeInstanceOf(AdminFailure);
    await expect(answer(message("MMGET"), undefined)).rejects.toMatchObject({ code: "not_applicable", message: /manager mode/ });
    await expect(answer(message("LLGET"), undefined)).rejects.toMatchObject({ code: "not_applicable" });
    await expect(answer(message("SHUTDOWN"), undefined)).rejects.toMatchObject({ code: "not_applicable" });
  });

  it("marks a command nobody serves, leaving its refusal to the handler", async () => {
    expect(await createAdminAnswers({ admin })(message("NO_SUCH"), undefined)).toBe(unknownCommand);
  });
});
