import { describe, expect, it } from "vitest";
import { parseAdminMessage } from "../../src/gateway/admin.js";

describe("legacy admin message parsing", () => {
  it("splits handler<TAB>COMMAND<TAB>parameters<TAB> as the original clients frame it", () => {
    expect(parseAdminMessage("Admin\tECHO\thello world\t")).toEqual({ handler: "Admin", command: "ECHO", parameters: "hello world" });
    expect(parseAdminMessage("DataProcessorData\tDRCE_GET_TASKS\t\t")).toEqual({ handler: "DataProcessorData", command: "DRCE_GET_TASKS", parameters: "" });
  });

  it("tolerates a missing trailing tab, missing parameters and a final line break", () => {
    expect(parseAdminMessage("Admin\tSTAT")).toEqual({ handler: "Admin", command: "STAT", parameters: "" });
    expect(parseAdminMessage("Admin\tSTAT\tp")).toEqual({ handler: "Admin", command: "STAT", parameters: "p" });
    expect(parseAdminMessage("Admin\tSTAT\t\r\n")).toEqual({ handler: "Admin", command: "STAT", parameters: "" });
  });

  it("says what is wrong with a malformed message", () => {
    expect(parseAdminMessage("")).toMatch(/empty/);
    expect(parseAdminMessage("STAT")).toMatch(/no tab-separated command/);
    expect(parseAdminMessage("Admin\t\t\t")).toMatch(/names no command/);
    expect(parseAdminMessage("Admin\tSTAT\ta\tb\t")).toMatch(/more than three/);
  });
});
