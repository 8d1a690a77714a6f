import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium, type BrowserContext } from "playwright-core";

/** Debian's Chromium, the browser the browser tests drive (`.ci/run` installs the package). */
export const chromiumPath = "/usr/bin/chromium";

/** Tells why the browser tests cannot run here, or undefined when they can. */
export function chromiumUnavailableReason(): string | undefined {
  return existsSync(chromiumPath) ? undefined : `${chromiumPath} is missing (apt-get install -y chromium)`;
}

/** A headless Chromium with a profile of its own, removed by `close()`. */
export interface TestBrowser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Starts headless Chromium through playwright-core with a fresh user data directory and
 * the flags that keep it from reaching anything but the test's own servers.
 * `hostRules` maps test host names to addresses (`MAP rebind.test 127.0.0.1`), which is
 * how a page's host name comes to resolve to loopback in a DNS rebinding.
 */
export async function startBrowser(hostRules = ""): Promise<TestBrowser> {
  const profile = await mkdtemp(join(tmpdir(), "drce-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-proxy-server",
      ...(hostRules === "" ? [] : [`--host-resolver-rules=${hostRules}`]),
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Bundles the page's client (`test/fixtures/browser-client.ts`: Connect-Web and gRPC-Web
 * transports over the generated TaskService) into one script for a browser, in memory.
 */
export async function bundleBrowserClient(): Promise<string> {
  const entry = fileURLToPath(new URL("../fixtures/browser-client.ts", import.meta.url));
  const result = await build({ entryPoints: [entry], bundle: true, format: "iife", platform: "browser", target: "es2022", write: false, logLevel: "silent" });
  return result.outputFiles[0]?.text ?? "";
}
