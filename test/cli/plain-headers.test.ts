import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PlainHeaders } from "../../src/cli/plain-headers.js";

/*
 * The drce command's Headers class behaves as Node.js's own (undici's, the Fetch standard's)
 * for every sequence of calls: the same names and values, in the same order, and a TypeError
 * wherever Node.js's throws one. This test process keeps Node.js's Headers as the reference.
 */

const params = { seed: 20, numRuns: 400 } as const;

const name = fc.oneof(
  fc.constantFrom("Content-Type", "content-type", "Set-Cookie", "set-cookie", "grpc-status", "Grpc-Message", "x-a", "X-A", "a", "B", "drce-error-code"),
  fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,6}$/),
  // Not tokens: each must be refused.
  fc.constantFrom("", "bad name", "a:b", "é", "x\n", "(a)"),
);
const value = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom(" padded ", "\t tab \t", "a, b", "", "x\u000by", "ok\r\nbad", "nul\0", "café", "€uro", "\n lead"),
);

type Call = readonly ["append" | "set", string, string] | readonly ["delete" | "get" | "has", string];
const call: fc.Arbitrary<Call> = fc.oneof(
  fc.tuple(fc.constantFrom("append" as const, "set" as const), name, value),
  fc.tuple(fc.constantFrom("delete" as const, "get" as const, "has" as const), name),
);

/** Applies one call and says what it gave back, or that it threw a TypeError. */
function apply(headers: Headers, [method, key, text]: Call): unknown {
  try {
    if (method === "append" || method === "set") return headers[method](key, text ?? "");
    return headers[method](key);
  } catch (error) {
    return error instanceof TypeError ? "TypeError" : `unexpected ${String(error)}`;
  }
}

function state(headers: Headers): unknown {
  const forEach: [string, string][] = [];
  headers.forEach((v, k) => forEach.push([k, v]));
  return { entries: [...headers], keys: [...headers.keys()], values: [...headers.values()], forEach, setCookie: headers.getSetCookie() };
}

describe("PlainHeaders", () => {
  it("answers every sequence of calls as Node.js's Headers does", () => {
    fc.assert(
      fc.property(fc.array(call, { maxLength: 12 }), (calls) => {
        const plain = new PlainHeaders();
        const reference = new Headers();
        for (const item of calls) expect(apply(plain, item)).toEqual(apply(reference, item));
        expect(state(plain)).toEqual(state(reference));
      }),
      params,
    );
  });

  it("is made from a record, pairs or another Headers as Node.js's is, and refuses what it refuses", () => {
    const pairs = fc.array(fc.tuple(name, value), { maxLength: 6 });
    fc.assert(
      fc.property(pairs, (list) => {
        const made = (make: () => Headers): unknown => {
          try {
            return state(make());
          } catch (error) {
            return error instanceof TypeError ? "TypeError" : `unexpected ${String(error)}`;
          }
        };
        const record = Object.fromEntries(list);
        expect(made(() => new PlainHeaders(list.map(([k, v]) => [k, v])))).toEqual(made(() => new Headers(list.map(([k, v]) => [k, v]))));
        expect(made(() => new PlainHeaders(record))).toEqual(made(() => new Headers(record)));
        const valid = new Headers();
        const validPlain = new PlainHeaders();
        for (const [k, v] of list) expect(apply(validPlain, ["append", k, v])).toEqual(apply(valid, ["append", k, v]));
        expect(made(() => new PlainHeaders(validPlain))).toEqual(made(() => new Headers(valid)));
      }),
      params,
    );
    expect(() => new PlainHeaders([["only-a-name"]] as unknown as [string, string][])).toThrow(TypeError);
    expect(() => new PlainHeaders(5 as unknown as Record<string, string>)).toThrow(TypeError);
    expect(state(new PlainHeaders({ a: ["x", "y"] } as unknown as Record<string, string>))).toEqual(state(new Headers({ a: ["x", "y"] } as unknown as Record<string, string>)));
    expect(Object.prototype.toString.call(new PlainHeaders())).toBe("[object Headers]");
  });
});

describe("the drce command's client commands", () => {
  it("never load undici: Node.js's Headers is replaced before Connect is loaded", () => {
    // A client command that fails at once (nothing listens on port 1) still loads and uses Connect.
    const probe = `
      const { runCli } = await import(${JSON.stringify(fileURLToPath(new URL("../../src/cli/index.ts", import.meta.url)))});
      const code = await runCli(["--server", "http://127.0.0.1:1", "--connect-timeout", "5", "status", "x"]);
      const undici = process.moduleLoadList.filter((name) => name.includes("undici"));
      process.stdout.write(JSON.stringify({ code, undici, headers: globalThis.Headers.name }));
    `;
    const ran = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", probe], { encoding: "utf8", timeout: 60_000 });
    expect(ran.stderr).toMatch(/unavailable/);
    expect(JSON.parse(ran.stdout)).toEqual({ code: 125, undici: [], headers: "PlainHeaders" });
  });
});
