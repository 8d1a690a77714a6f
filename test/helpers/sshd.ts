import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, link, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Path of the OpenSSH server the helper starts. */
export const sshdPath = "/usr/sbin/sshd";

/** The local account used for password logins. */
export const passwordUser = "drcetest1";
/** The local account used for key logins. */
export const keyUser = "drcetest2";
/** The local account whose login shell is /bin/sh (the bench's ssh baseline logs in as it). */
export const shellUser = "drcetest3";

/** Options of {@link startSshd}; the defaults are what the SSH tests rely on. */
export interface StartSshdOptions {
  /** sshd's `MaxSessions` (sessions per connection); 32 unless told. */
  readonly maxSessions?: number;
  /** sshd's `MaxStartups` (unauthenticated connections at once); "100" unless told. */
  readonly maxStartups?: string;
  /**
   * Also accepts {@link shellUser}, whose login shell is /bin/sh, with the same key as the key
   * account: a remote command then costs one /bin/sh, as on a host whose users log in to sh.
   */
  readonly shellAccount?: boolean;
}

/** A running test sshd. */
export interface TestSshd {
  /** Port it listens on (loopback only). */
  readonly port: number;
  /** Address it listens on. */
  readonly host: "127.0.0.1";
  /** Pid of the listening sshd. */
  readonly pid: number;
  /** "SHA256:..." fingerprint of its host key, as `ssh-keygen -l` prints it. */
  readonly hostKeyFingerprint: string;
  /** Its second host key, RSA, as "ssh-rsa <base64>" (known_hosts does not hold it). */
  readonly rsaHostKey: string;
  /** A known_hosts file holding its ed25519 host key for `[127.0.0.1]:port`. */
  readonly knownHostsFile: string;
  /** Its temporary directory (config, keys, logs). */
  readonly dir: string;
  /** Accounts it accepts. */
  readonly users: {
    readonly password: { readonly user: string; readonly password: string };
    readonly key: { readonly user: string; readonly privateKey: string; readonly passphrase: string };
  };
  /** What sshd wrote on stderr so far (for failing tests). */
  log(): string;
  /** Kills the per-connection processes of this sshd (not the listener): every client connection drops. */
  killConnections(): Promise<void>;
  /** Stops the listener and removes its directory. */
  stop(): Promise<void>;
}

/** Tells why the test sshd cannot run here, or undefined when it can. */
export function sshdUnavailableReason(): string | undefined {
  if (!existsSync(sshdPath)) return `${sshdPath} is missing (apt-get install -y openssh-server)`;
  if (!existsSync("/usr/bin/ssh-keygen")) return "ssh-keygen is missing";
  if (process.getuid?.() !== 0) return "the SSH tests create local users and need root";
  return undefined;
}

/** Tells whether {@link startSshd} can work on this machine. */
export function sshdAvailable(): boolean {
  return sshdUnavailableReason() === undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something on the port answers with an SSH banner, or rejects at the deadline. */
async function waitForBanner(port: number, deadline: number, alive: () => boolean): Promise<void> {
  for (;;) {
    if (!alive()) throw new Error("sshd exited before it listened");
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port });
      let data = "";
      const done = (value: boolean): void => {
        socket.destroy();
        resolve(value);
      };
      socket.setTimeout(1000, () => done(false));
      socket.on("data", (chunk: Buffer) => {
        data += chunk.toString("latin1");
        if (data.includes("\n")) done(data.startsWith("SSH-2.0-"));
      });
      socket.on("error", () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd did not answer on port ${port} in time`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function userExists(user: string): Promise<boolean> {
  try {
    await run("id", ["-u", user]);
    return true;
  } catch {
    return false;
  }
}

/** Creates the account if needed. Another test process may be creating it too: tolerate that. */
async function ensureUser(user: string, shell = "/bin/bash"): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    if (await userExists(user)) return;
    try {
      await run("useradd", ["-m", "-s", shell, user]);
      return;
    } catch {
      // /etc/passwd may be locked by a concurrent useradd; look again shortly.
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`cannot create local user ${user}`);
}

/**
 * The test accounts' password: random, made once per machine and kept in a root-only file,
 * so concurrent test processes agree on it and no fixed password ever unlocks these accounts.
 */
async function accountPassword(): Promise<string> {
  // Under root's home, not /tmp: a cleanup of temporary files must not change the password
  // while another test process uses it.
  const dir = join(homedir(), ".cache", "drce-ssh-test-accounts");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const file = join(dir, "password");
  try {
    return (await readFile(file, "utf8")).trim();
  } catch {
    const temp = join(dir, `password.${process.pid}.${randomBytes(4).toString("hex")}`);
    await writeFile(temp, randomBytes(18).toString("base64url"), { mode: 0o600 });
    try {
      await link(temp, file);
    } catch {
      // Another process won the race; its file is complete (link is atomic).
    }
    await rm(temp, { force: true });
    return (await readFile(file, "utf8")).trim();
  }
}

async function setPassword(user: string, password: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn("chpasswd", [], { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`chpasswd failed for ${user}: ${err.trim()}`))));
    child.stdin.end(`${user}:${password}\n`);
  });
}

async function fingerprintOf(publicKeyFile: string): Promise<string> {
  const { stdout } = await run("ssh-keygen", ["-l", "-E", "sha256", "-f", publicKeyFile]);
  const match = /SHA256:[A-Za-z0-9+/]+/.exec(stdout);
  if (match === null) throw new Error(`cannot read the fingerprint of ${publicKeyFile}`);
  return match[0];
}

/** Generates a key pair (ed25519 unless told; optionally encrypted) and returns its paths. */
export async function generateKey(dir: string, name: string, passphrase = "", type: "ed25519" | "rsa" = "ed25519"): Promise<{ privateKeyFile: string; publicKeyFile: string }> {
  const privateKeyFile = join(dir, name);
  const size = type === "rsa" ? ["-b", "2048"] : [];
  await run("ssh-keygen", ["-q", "-t", type, ...size, "-N", passphrase, "-C", `drce-test-${name}`, "-f", privateKeyFile]);
  return { privateKeyFile, publicKeyFile: `${privateKeyFile}.pub` };
}

/**
 * Starts a private OpenSSH server on a free loopback port, with its own host key and config,
 * and makes sure the two test accounts exist: one logs in with a password, one with an
 * ed25519 key protected by a passphrase. Readiness is polled (SSH banner), never slept for.
 */
export async function startSshd(options: StartSshdOptions = {}): Promise<TestSshd> {
  const reason = sshdUnavailableReason();
  if (reason !== undefined) throw new Error(`cannot start the test sshd: ${reason}`);
  // Privilege separation directory; a fresh container does not have it.
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });

  const dir = await mkdtemp(join(tmpdir(), "ssh-runner-test-sshd-"));
  // sshd reads authorized keys as the user logging in.
  await chmod(dir, 0o755);
  const keysDir = join(dir, "keys");
  await mkdir(keysDir, { mode: 0o755 });
  await chmod(keysDir, 0o755);

  await ensureUser(passwordUser);
  await ensureUser(keyUser);
  const password = await accountPassword();
  // Both accounts get a password: sshd without PAM refuses any login to a locked ("!") account.
  await setPassword(passwordUser, password);
  await setPassword(keyUser, password);
  if (options.shellAccount === true) {
    await ensureUser(shellUser, "/bin/sh");
    // An account made earlier with another shell is set back to sh: the baseline's cost depends on it.
    const { stdout } = await run("getent", ["passwd", shellUser]);
    if (stdout.trim().split(":").at(-1) !== "/bin/sh") await run("usermod", ["-s", "/bin/sh", shellUser]);
    await setPassword(shellUser, password);
  }

  const hostKey = await generateKey(dir, "host_ed25519_key");
  const rsaHostKey = await generateKey(dir, "host_rsa_key", "", "rsa");
  const passphrase = randomBytes(12).toString("base64url");
  const userKey = await generateKey(dir, "user_key", passphrase);
  await writeFile(join(keysDir, `${keyUser}.keys`), await readFile(userKey.publicKeyFile), { mode: 0o644 });
  if (options.shellAccount === true) await writeFile(join(keysDir, `${shellUser}.keys`), await readFile(userKey.publicKeyFile), { mode: 0o644 });
  const hostKeyFingerprint = await fingerprintOf(hostKey.publicKeyFile);
  const hostPublic = (await readFile(hostKey.publicKeyFile, "utf8")).trim().split(/\s+/);

  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = join(dir, "sshd_config");
    await writeFile(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey.privateKeyFile}`,
        `HostKey ${rsaHostKey.privateKeyFile}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${join(keysDir, "%u.keys")}`,
        "PasswordAuthentication yes",
        "PubkeyAuthentication yes",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "PermitRootLogin no",
        // Without PAM, sshd checks the shadow password itself; no PAM stack is needed.
        "UsePAM no",
        "StrictModes no",
        `MaxStartups ${options.maxStartups ?? "100"}`,
        `MaxSessions ${options.maxSessions ?? 32}`,
        "MaxAuthTries 10",
        "LoginGraceTime 30",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "Subsystem sftp internal-sftp",
        `AllowUsers ${[passwordUser, keyUser, ...(options.shellAccount === true ? [shellUser] : [])].join(" ")}`,
        "LogLevel INFO",
        "",
      ].join("\n"),
    );
    const child: ChildProcess = spawn(sshdPath, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-64 * 1024);
    });
    let exited = false;
    const exitedPromise = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    void exitedPromise.then(() => (exited = true));
    try {
      await waitForBanner(port, Date.now() + 10_000, () => !exited);
    } catch (error) {
      lastError = new Error(`${(error as Error).message}: ${log.trim()}`);
      child.kill("SIGKILL");
      await exitedPromise;
      continue;
    }
    const pid = child.pid ?? 0;
    const knownHostsFile = join(dir, "known_hosts");
    await writeFile(knownHostsFile, `[127.0.0.1]:${port} ${hostPublic[0]} ${hostPublic[1]}\n`, { mode: 0o600 });
    return {
      port,
      host: "127.0.0.1",
      pid,
      hostKeyFingerprint,
      rsaHostKey: (await readFile(rsaHostKey.publicKeyFile, "utf8")).trim().split(/\s+/).slice(0, 2).join(" "),
      knownHostsFile,
      dir,
      users: {
        password: { user: passwordUser, password },
        key: { user: keyUser, privateKey: await readFile(userKey.privateKeyFile, "utf8"), passphrase },
      },
      log: () => log,
      killConnections: async () => {
        // Every process below the listener: a connection is served by a child (the
        // privileged monitor) and its own child (the session), and either may hold the socket.
        const deadline = Date.now() + 5000;
        for (;;) {
          const serving = await descendantsOf(pid);
          if (serving.length === 0) return;
          if (Date.now() > deadline) throw new Error(`sshd connection processes ${serving.join(", ")} did not die`);
          for (const member of serving) {
            try {
              process.kill(member, "SIGKILL");
            } catch {
              // Already gone.
            }
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      },
      stop: async () => {
        if (!exited) {
          child.kill("SIGTERM");
          await exitedPromise;
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError instanceof Error ? lastError : new Error("cannot start the test sshd");
}

/** Live (not zombie) processes below `pid`, from /proc. */
async function descendantsOf(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z") parents.set(Number(entry), Number(fields[1]));
    } catch {
      // The process ended while we looked.
    }
  }
  const below = new Set<number>([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [child, parent] of parents) {
      if (below.has(parent) && !below.has(child)) {
        below.add(child);
        grew = true;
      }
    }
  }
  below.delete(pid);
  return [...below];
}
