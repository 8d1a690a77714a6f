import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import { taskSpec } from "../../src/domain/task.js";
import { dangerousEnvNames, validateSpec } from "../../src/domain/validate.js";
import { taskEnvironment } from "../../src/executor/env.js";
import { spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * The task environment: a request may not set the variables that change how programs load
 * or parse (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, BASH_ENV, ENV, IFS) unless the operator
 * allows them, wherever they sit among other variables; names are case-sensitive, as the
 * dynamic loader and the shells read them, so `ld_preload` is an ordinary variable. A task
 * starts from a minimal environment and never sees the node's own, its token included.
 */

const params = { seed: 42, numRuns: 500 } as const;

/** Ordinary variable names (never one of the refused six). */
const ordinaryName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/).filter((name) => !dangerousEnvNames.includes(name));
const value = fc.string({ maxLength: 20 }).map((v) => v.replace(/\0/g, ""));
const dangerousName = fc.constantFrom(...dangerousEnvNames);

/** An environment of ordinary variables with some refused names put at random positions. */
const envWith = (refused: fc.Arbitrary<string[]>) =>
  fc
    .tuple(fc.array(fc.tuple(ordinaryName, value), { maxLength: 8 }), refused, fc.array(fc.nat(), { maxLength: 6 }), value)
    .map(([ordinary, names, positions, v]) => {
      const entries = [...ordinary];
      names.forEach((name, i) => entries.splice((positions[i] ?? 0) % (entries.length + 1), 0, [name, v]));
      return Object.fromEntries(entries) as Record<string, string>;
    });

/** The legacy error code validateSpec refuses with, or "ok". */
function verdict(env: Record<string, string>, allowEnv: readonly string[], asSubtask: boolean): number | "ok" {
  const task = taskSpec({ command: "env", env });
  const spec = asSubtask ? taskSpec({ command: "true", subtasks: [task] }) : task;
  try {
    validateSpec(spec, { allowEnv });
    return "ok";
  } catch (error) {
    if (!(error instanceof DrceError)) throw error;
    return error.legacyCode;
  }
}

describe("environment filtering (properties)", () => {
  it("refuses a request with any refused name, at any position, in a task or a subtask, with error 102", () => {
    fc.assert(
      fc.property(envWith(fc.array(dangerousName, { minLength: 1, maxLength: 3 })), fc.boolean(), (env, asSubtask) => {
        expect(verdict(env, [], asSubtask)).toBe(ErrorCode.SetEnvironment);
      }),
      params,
    );
  });

  it("accepts refused names only when the operator allows every one present", () => {
    fc.assert(
      fc.property(envWith(fc.array(dangerousName, { minLength: 1, maxLength: 3 })), fc.subarray([...dangerousEnvNames]), (env, allowed) => {
        const present = dangerousEnvNames.filter((name) => name in env);
        const expected = present.every((name) => allowed.includes(name)) ? "ok" : ErrorCode.SetEnvironment;
        expect(verdict(env, allowed, false)).toBe(expected);
      }),
      params,
    );
  });

  it("accepts ordinary names, including the refused names in another case", () => {
    const otherCase = dangerousName.chain((name) =>
      fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length })
        .map((lower) => [...name].map((c, i) => (lower[i] ? c.toLowerCase() : c)).join(""))
        .filter((variant) => variant !== name),
    );
    fc.assert(
      fc.property(envWith(fc.array(otherCase, { maxLength: 3 })), (env) => {
        expect(verdict(env, [], false)).toBe("ok");
      }),
      params,
    );
  });

  it("builds a task environment from the minimal base and the request only, never from the node's", () => {
    const base = ["PATH", "HOME", "LANG", "USER", "LOGNAME", "SHELL"];
    fc.assert(
      fc.property(fc.dictionary(ordinaryName, value, { maxKeys: 6 }), fc.dictionary(ordinaryName, value, { maxKeys: 6 }), (requested, nodeOwn) => {
        const saved = { ...process.env };
        Object.assign(process.env, nodeOwn, { DRCE_TOKEN: "node-token-never-seen" });
        try {
          const env = taskEnvironment(requested);
          for (const name of Object.keys(env)) expect(base.includes(name) || name in requested).toBe(true);
          for (const [name, v] of Object.entries(requested)) expect(env[name]).toBe(v);
          expect(Object.values(env)).not.toContain("node-token-never-seen");
        } finally {
          for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
          Object.assign(process.env, saved);
        }
      }),
      params,
    );
  });
});

describe("a real task's environment", () => {
  const token = "node-token-5b1e0c";
  let node: NodeProcess;

  beforeAll(async () => {
    node = await spawnNodeProcess([], { DRCE_TOKEN: token, NODE_OWN_SECRET: "node-own-secret-77" });
  });

  afterAll(async () => {
    await node?.stop();
  });

  it("lacks the node's variables and its token: `env` prints the minimal base and the request's variables only", async () => {
    const bearer: Interceptor = (next) => (request) => {
      request.header.set("authorization", `Bearer ${token}`);
      return next(request);
    };
    const client = createClient(TaskService, createConnectTransport({ baseUrl: node.url, httpVersion: "2", interceptors: [bearer] }));
    // argv, not a shell: the shell would add PWD, SHLVL and _ of its own.
    const r = (await client.submitTask({ task: create(TaskSpecSchema, { argv: ["env"], env: { REQUESTED: "yes" } }) })).result!;
    expect(r.state).toBe(TaskState.FINISHED);
    const output = Buffer.from(r.stdout).toString();
    const names = output.trimEnd().split("\n").map((line) => line.slice(0, line.indexOf("=")));
    expect(names.sort()).toEqual(["DRCE_TASK_ID", "HOME", "LANG", "LOGNAME", "PATH", "REQUESTED", "SHELL", "USER"]);
    expect(output).not.toContain(token);
    expect(output).not.toContain("node-own-secret-77");
    expect(output).toContain("REQUESTED=yes\n");
  });
});
