import { describe, expect, it } from "vitest";
import { parseAdminMessage } from "../../src/gateway/admin-message.js";
import { adminErrorText, adminField, adminOkText, adminProperty } from "../../src/gateway/admin-text.js";

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

describe("legacy admin text replies", () => {
  /** What the Python NodeManager and the PHP manager make of a reply: the status, then name=value fields. */
  const parse = (text: string): { code: string; fields: Record<string, string> } => {
    const [code = "", ...rest] = text.split("\t");
    return { code, fields: Object.fromEntries(rest.map((f) => f.split("=")).map(([k = "", v = ""]) => [k, v])) };
  };

  it("frames OK replies as OK<TAB>field... without a trailing tab", () => {
    expect(adminOkText([adminProperty("param1", "val1"), adminProperty("param2", 2)])).toBe("OK\tparam1=val1\tparam2=2");
    expect(parse(adminOkText([adminProperty("param1", "val1"), adminProperty("param2", 2)]))).toEqual({ code: "OK", fields: { param1: "val1", param2: "2" } });
  });

  it("keeps a value with tabs, line breaks or '=' in one field that both clients read whole", () => {
    const text = adminOkText([adminProperty("message", "a\tb\nc=d")]);
    expect(text).toBe("OK\tmessage=a b c:d");
    expect(parse(text).fields).toEqual({ message: "a b c:d" });
    expect(adminField("x\r\n\ty")).toBe("x y");
  });

  it("frames ERROR replies as ERROR<TAB>message, one field without '='", () => {
    const text = adminErrorText("bad\tvalue x=1");
    expect(text).toBe("ERROR\tbad value x:1");
    expect(parse(text)).toEqual({ code: "ERROR", fields: { "bad value x:1": "" } });
  });
});
