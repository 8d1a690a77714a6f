import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { SessionType, TaskState } from "../../gen/drce/v1/task_pb.js";
import { serverUrl } from "../../src/cli/client.js";
import { UsageError } from "../../src/cli/errors.js";
import { exitCodeForResult, exitCodeForSignal } from "../../src/cli/exit-codes.js";
import { listRows, parseStateFilter } from "../../src/cli/ls.js";
import { confinedPath, parseEnvAssignment, parseFileOption, parseGetOption, parseSignal, parseSshTarget, parseUint, resolveCommand } from "../../src/cli/option-values.js";
import { commonOptions, parseOptions, splitAtCommand, taskOptions } from "../../src/cli/options.js";
import { FileAction, taskSpecFromOptions } from "../../src/cli/task-plan.js";
import { formatDuration, formatTable, formatTime } from "../../src/cli/output.js";
import { isFinalState, parseStateName, stateName } from "../../src/cli/states.js";

/*
 * The pure parts of the drce command: argument parsing, state names, exit codes and
 * formatting. The CLI against a real node is in cli.test.ts.
 */

const runOptions = { ...commonOptions, ...taskOptions, "no-stdin": { type: "boolean", short: "n" } } as const;
const deps = (files: Record<string, string> = {}, env: Record<string, string> = {}) => ({
  env,
  readFile: async (path: string): Promise<Uint8Array> => {
    const content = files[path];
    if (content === undefined) throw new Error(`no fixture file ${path}`);
    return new TextEncoder().encode(content);
  },
});

describe("splitAtCommand", () => {
  it("ends the options at --", () => {
    expect(splitAtCommand(["--env", "A=1", "--", "ls", "-la"], runOptions)).toEqual({ optionArgs: ["--env", "A=1"], command: ["ls", "-la"] });
  });

  it("ends the options at the first word that is not an option or a value", () => {
    expect(splitAtCommand(["-n", "--id", "x", "ls", "-la", "--json"], runOptions)).toEqual({ optionArgs: ["-n", "--id", "x"], command: ["ls", "-la", "--json"] });
  });

  it("knows which short options take a value, alone, inline or clustered", () => {
    expect(splitAtCommand(["-e", "A=1", "-eB=2", "-nc", "echo hi"], runOptions)).toEqual({ optionArgs: ["-e", "A=1", "-eB=2", "-nc", "echo hi"], command: [] });
  });

  it("does not take a value for --name=value or for boolean flags", () => {
    expect(splitAtCommand(["--id=x", "--cleanup", "true"], runOptions)).toEqual({ optionArgs: ["--id=x", "--cleanup"], command: ["true"] });
  });

  it("keeps a -- that belongs to the command", () => {
    expect(splitAtCommand(["--", "git", "log", "--", "file"], runOptions).command).toEqual(["git", "log", "--", "file"]);
  });
});

describe("resolveCommand", () => {
  it("runs one word as a shell command line and several as an argv", () => {
    expect(resolveCommand(undefined, ["make -j4 && make test"])).toEqual({ command: "make -j4 && make test" });
    expect(resolveCommand(undefined, ["sleep", "300"])).toEqual({ argv: ["sleep", "300"] });
    expect(resolveCommand("echo $HOME", [])).toEqual({ command: "echo $HOME" });
  });

  it("refuses no command, an empty one, or -c together with words", () => {
    expect(() => resolveCommand(undefined, [])).toThrow(UsageError);
    expect(() => resolveCommand(undefined, [""])).toThrow(UsageError);
    expect(() => resolveCommand("ls", ["ls"])).toThrow(UsageError);
  });
});

describe("option values", () => {
  it("reads NAME=VALUE, and a bare NAME from the local environment", () => {
    expect(parseEnvAssignment("A=b=c", {})).toEqual(["A", "b=c"]);
    expect(parseEnvAssignment("EMPTY=", {})).toEqual(["EMPTY", ""]);
    expect(parseEnvAssignment("HOME", { HOME: "/home/me" })).toEqual(["HOME", "/home/me"]);
    expect(() => parseEnvAssignment("UNSET", {})).toThrow(/not set/);
    expect(() => parseEnvAssignment("1A=x", {})).toThrow(UsageError);
    expect(() => parseEnvAssignment("=x", {})).toThrow(UsageError);
  });

  it("reads --file NAME=@PATH and NAME=TEXT", () => {
    expect(parseFileOption("in.txt=@/tmp/a")).toEqual({ name: "in.txt", path: "/tmp/a" });
    expect(parseFileOption("conf=a=b")).toEqual({ name: "conf", text: "a=b" });
    expect(parseFileOption("empty=")).toEqual({ name: "empty", text: "" });
    expect(() => parseFileOption("=@x")).toThrow(UsageError);
    expect(() => parseFileOption("noequals")).toThrow(UsageError);
    expect(() => parseFileOption("x=@")).toThrow(UsageError);
  });

  it("reads --get NAME[:LOCALPATH], defaulting to NAME's base name", () => {
    expect(parseGetOption("out/report.txt")).toEqual({ name: "out/report.txt", localPath: "report.txt" });
    expect(parseGetOption("out.txt:/tmp/x")).toEqual({ name: "out.txt", localPath: "/tmp/x" });
    expect(parseGetOption("../up.txt")).toEqual({ name: "../up.txt", localPath: "up.txt" });
    expect(() => parseGetOption(":x")).toThrow(UsageError);
    expect(() => parseGetOption("..")).toThrow(UsageError);
  });

  it("reads [user@]host[:port], IPv6 in brackets", () => {
    expect(parseSshTarget("alice@build-host:2222")).toEqual({ user: "alice", host: "build-host", port: 2222 });
    expect(parseSshTarget("build-host")).toEqual({ user: "", host: "build-host", port: 0 });
    expect(parseSshTarget("root@[::1]:22")).toEqual({ user: "root", host: "::1", port: 22 });
    expect(() => parseSshTarget("alice@")).toThrow(UsageError);
    expect(() => parseSshTarget("a@h:70000")).toThrow(UsageError);
    expect(() => parseSshTarget("a@h:0")).toThrow(UsageError);
  });

  it("reads signals by number or name", () => {
    expect(parseSignal("9")).toBe(9);
    expect(parseSignal("KILL")).toBe(9);
    expect(parseSignal("sigterm")).toBe(15);
    expect(parseSignal("INT")).toBe(2);
    expect(() => parseSignal("FOO")).toThrow(UsageError);
    expect(() => parseSignal("0")).toThrow(UsageError);
  });

  it("reads non-negative integers within bounds", () => {
    expect(parseUint("0", "--x")).toBe(0);
    expect(parseUint("4294967295", "--x")).toBe(4294967295);
    expect(() => parseUint("4294967296", "--x")).toThrow(/too large/);
    expect(() => parseUint("-1", "--x")).toThrow(UsageError);
    expect(() => parseUint("1.5", "--x")).toThrow(UsageError);
  });

  it("turns parseArgs errors into usage errors", () => {
    expect(() => parseOptions(["--bogus"], commonOptions)).toThrow(UsageError);
    expect(() => parseOptions(["--server"], commonOptions)).toThrow(UsageError);
  });

  it("takes the server from --server, then DRCE_SERVER, then the default", () => {
    expect(serverUrl("http://a:1", { DRCE_SERVER: "http://b:2" })).toBe("http://a:1");
    expect(serverUrl(undefined, { DRCE_SERVER: "http://b:2" })).toBe("http://b:2");
    expect(serverUrl(undefined, {})).toBe("http://127.0.0.1:8470");
    expect(() => serverUrl("localhost:8470", {})).toThrow(UsageError);
    expect(() => serverUrl("not a url", {})).toThrow(UsageError);
  });
});

describe("confinedPath", () => {
  it("keeps result files under the directory", () => {
    expect(confinedPath("/tmp/out", "a/b.txt")).toBe(resolve("/tmp/out/a/b.txt"));
    expect(confinedPath("/tmp/out", "./c")).toBe(resolve("/tmp/out/c"));
  });

  it("refuses names that leave it", () => {
    for (const name of ["../x", "a/../../x", "/etc/passwd", "", ".", "a\0b"]) expect(confinedPath("/tmp/out", name)).toBeUndefined();
  });
});

describe("taskSpecFromOptions", () => {
  it("builds the spec of a plain command", async () => {
    const { spec, gets } = await taskSpecFromOptions(
      { id: "t1", alias: "build", env: ["A=1", "B"], cwd: "/srv", shell: "/bin/bash -c", timeout: "10", "time-max": "2500", cleanup: true },
      ["make test"],
      deps({}, { B: "two" }),
    );
    expect(spec).toMatchObject({ id: "t1", alias: "build", command: "make test", argv: [], env: { A: "1", B: "two" }, workDir: "/srv", shell: "/bin/bash -c", timeoutSeconds: 10, timeMaxMs: 2500n, cleanup: true });
    expect(spec.session).toBeUndefined();
    expect(gets).toEqual([]);
  });

  it("merges --file and --get of one name into one entry", async () => {
    const { spec, gets } = await taskSpecFromOptions({ file: ["in.txt=@local.txt", "note=hi"], get: ["in.txt:copy.txt", "out.txt"] }, ["a", "b"], deps({ "local.txt": "abc" }));
    expect(spec.argv).toEqual(["a", "b"]);
    const byName = Object.fromEntries(spec.files.map((f) => [f.name, { data: Buffer.from(f.data).toString(), action: f.action }]));
    expect(byName).toEqual({
      "in.txt": { data: "abc", action: FileAction.CreateBefore | FileAction.ReadAfter },
      note: { data: "hi", action: FileAction.CreateBefore },
      "out.txt": { data: "", action: FileAction.ReadAfter },
    });
    expect(gets).toEqual([
      { name: "in.txt", localPath: "copy.txt" },
      { name: "out.txt", localPath: "out.txt" },
    ]);
  });

  it("fills an SSH session from the target, the environment and the key file", async () => {
    const { spec } = await taskSpecFromOptions(
      { ssh: "alice@h:2222", "password-env": "PW", key: "id", "passphrase-env": "PP", fingerprint: "SHA256:abc" },
      ["uptime"],
      deps({ id: "-----BEGIN KEY-----" }, { PW: "secret", PP: "phrase" }),
    );
    expect(spec.session).toMatchObject({ type: SessionType.SSH, user: "alice", host: "h", port: 2222, password: "secret", privateKey: "-----BEGIN KEY-----", passphrase: "phrase", hostFingerprint: "SHA256:abc" });
  });

  it("refuses SSH credentials without --ssh, and unset secret variables", async () => {
    await expect(taskSpecFromOptions({ key: "id" }, ["x"], deps())).rejects.toThrow(/needs --ssh/);
    await expect(taskSpecFromOptions({ ssh: "a@h", "password-env": "NOPE" }, ["x"], deps())).rejects.toThrow(/NOPE is not set/);
  });

  it("asks to run as a user with --uid and --gid, on the node only", async () => {
    const { spec } = await taskSpecFromOptions({ uid: "65534", gid: "100" }, ["id"], deps());
    expect(spec.session).toMatchObject({ type: SessionType.LOCAL, runAsUid: 65534, runAsGid: 100 });
    expect((await taskSpecFromOptions({}, ["id"], deps())).spec.session).toBeUndefined();
    await expect(taskSpecFromOptions({ uid: "-1" }, ["id"], deps())).rejects.toThrow(/--uid: expected a non-negative integer/);
    await expect(taskSpecFromOptions({ ssh: "a@h", uid: "5" }, ["id"], deps())).rejects.toThrow(/not over --ssh/);
  });
});

describe("states", () => {
  it("names every proto state and reads the names back", () => {
    for (const state of Object.values(TaskState).filter((v): v is TaskState => typeof v === "number" && v !== TaskState.UNSPECIFIED)) {
      expect(parseStateName(stateName(state))).toBe(state);
    }
    expect(stateName(TaskState.IN_PROGRESS)).toBe("in-progress");
    expect(stateName(TaskState.FINISHED)).toBe("finished");
  });

  it("reads the names as users type them", () => {
    expect(parseStateName("In Progress")).toBe(TaskState.IN_PROGRESS);
    expect(parseStateName("in_progress")).toBe(TaskState.IN_PROGRESS);
    expect(parseStateName("running")).toBe(TaskState.IN_PROGRESS);
    expect(parseStateName("TASK_STATE_NOT_SET")).toBe(TaskState.NOT_SET);
    expect(parseStateName("bogus")).toBeUndefined();
  });

  it("maps the legacy numbers plus one", () => {
    // The proto enum is the legacy state + 1: legacy 0 finished, 11 expired.
    expect(TaskState.FINISHED).toBe(0 + 1);
    expect(TaskState.EXPIRED).toBe(11 + 1);
    expect(isFinalState(TaskState.EXPIRED)).toBe(true);
    expect(isFinalState(TaskState.QUEUED)).toBe(false);
  });

  it("reads --state filters, comma-separated or repeated", () => {
    expect(parseStateFilter(["finished,running", "expired"])).toEqual([TaskState.FINISHED, TaskState.IN_PROGRESS, TaskState.EXPIRED]);
    expect(() => parseStateFilter(["done"])).toThrow(UsageError);
  });
});

describe("exit codes", () => {
  const result = (state: TaskState, exitStatus = 0, signal = "") => ({ state, exitStatus, signal });

  it("passes a finished task's exit status through", () => {
    expect(exitCodeForResult(result(TaskState.FINISHED, 0))).toBe(0);
    expect(exitCodeForResult(result(TaskState.FINISHED, 3))).toBe(3);
    expect(exitCodeForResult(result(TaskState.FINISHED, 137, "SIGKILL"))).toBe(137);
  });

  it("gives 124 for expired, 128+N for terminated, 125 for the rest", () => {
    expect(exitCodeForResult(result(TaskState.EXPIRED, 143, "SIGTERM"))).toBe(124);
    expect(exitCodeForResult(result(TaskState.TERMINATED, 0, "SIGKILL"))).toBe(137);
    expect(exitCodeForResult(result(TaskState.TERMINATED, 130))).toBe(130);
    expect(exitCodeForResult(result(TaskState.TERMINATED, 0))).toBe(143);
    for (const state of [TaskState.NOT_SET, TaskState.CRASHED, TaskState.IN_PROGRESS, TaskState.QUEUED]) expect(exitCodeForResult(result(state))).toBe(125);
  });

  it("gives 128+N for a signal drce itself got", () => {
    expect(exitCodeForSignal("SIGINT")).toBe(130);
    expect(exitCodeForSignal("SIGTERM")).toBe(143);
  });
});

describe("formatting", () => {
  it("aligns table columns and leaves the last one unpadded", () => {
    expect(formatTable([["ID", "STATE", "COMMAND"], ["1234", "finished", "echo hi"], ["7", "new", "x"]])).toEqual([
      "ID    STATE     COMMAND",
      "1234  finished  echo hi",
      "7     new       x",
    ]);
  });

  it("formats times and durations", () => {
    expect(formatTime(0n)).toBe("-");
    expect(formatTime(Date.UTC(2024, 0, 2, 3, 4, 5, 678))).toBe("2024-01-02T03:04:05Z");
    expect(formatDuration(850n)).toBe("850ms");
    expect(formatDuration(12_340)).toBe("12.3s");
    expect(formatDuration(307_000)).toBe("5m07s");
    expect(formatDuration(3_720_000)).toBe("1h02m");
  });

  it("lists tasks with a dash for empty cells", () => {
    const rows = listRows([
      { id: "9", alias: "", state: TaskState.QUEUED, mode: 2, startedAtMs: 0n, command: "sleep\n1", exitStatus: 0 } as never,
    ]);
    expect(rows).toEqual([
      ["ID", "ALIAS", "STATE", "MODE", "STARTED", "EXIT", "COMMAND"],
      ["9", "-", "queued", "async", "-", "-", "sleep 1"],
    ]);
  });
});
