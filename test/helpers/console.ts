import type { BrowserContext, Page } from "playwright-core";

/** A console page signed in to a node, and every request it made so far. */
export interface ConsolePage {
  readonly page: Page;
  /** The URL of every request the page made, in order (assets and API calls alike). */
  readonly requests: readonly string[];
}

/**
 * Opens the web console of the node at `url` (`<url>/ui/`) in a new page of `context`, signs
 * in with `token` and resolves once the console shows its navigation. Every request the page
 * makes from its first one is recorded in `requests`, so a test can check that none leaves
 * the node.
 */
export async function openConsole(context: BrowserContext, url: string, token: string, hash = "#/tasks"): Promise<ConsolePage> {
  const { page, requests } = await openConsolePage(context, url, hash);
  await signInConsole(page, token);
  await page.locator("nav[aria-label='Sections']").waitFor();
  return { page, requests };
}

/** Opens `<url>/ui/<hash>` without signing in (the sign-in form, for a node with a token). */
export async function openConsolePage(context: BrowserContext, url: string, hash = ""): Promise<ConsolePage> {
  const page = await context.newPage();
  const requests: string[] = [];
  page.on("request", (request) => void requests.push(request.url()));
  await page.goto(`${url}/ui/${hash}`);
  return { page, requests };
}

/** Types a token into the sign-in form and submits it. */
export async function signInConsole(page: Page, token: string): Promise<void> {
  await page.locator("#token").fill(token);
  await page.locator("#token").press("Enter");
}

/** The text an xterm.js terminal of the page shows (its rendered rows), by its accessible name. */
export async function terminalText(page: Page, label: string): Promise<string> {
  return page.locator(`[role='log'][aria-label='${label}'] .xterm-rows`).innerText();
}
