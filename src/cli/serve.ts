import { createApp, ListenError } from "../app.js";
import { ConfigError, parseServeConfig, serveUsage } from "../config.js";
import type { CliIo } from "./io.js";

/**
 * `drce serve`: starts a node and runs until SIGTERM or SIGINT, then shuts down
 * gracefully within the configured grace period.
 */
export async function serve(argv: string[], io: CliIo): Promise<number> {
  let config;
  try {
    config = parseServeConfig(argv, io.env);
  } catch (error) {
    if (error instanceof ConfigError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") === true) {
      io.stderr.write(`drce serve: ${(error as Error).message}\n`);
      return 2;
    }
    throw error;
  }
  if (config === "help") {
    io.stdout.write(`${serveUsage}\n`);
    return 0;
  }
  let app;
  try {
    app = await createApp(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr.write(`drce serve: ${error.message}\n`);
    return 2;
  }
  try {
    const { url } = await app.listen();
    // The one line a newcomer needs: where to open the console (a wildcard address is this host).
    io.stdout.write(`drce serve: the web console is at ${url.replace(/\/\/(0\.0\.0\.0|\[::\]):/, "//localhost:")}/ui/\n`);
  } catch (error) {
    const message = error instanceof ListenError ? error.message : `cannot listen on ${config.listen}: ${(error as Error).message}`;
    io.stderr.write(`drce serve: ${message}\n`);
    await app.close();
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      resolve();
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    // A legacy admin SHUTDOWN (behind the token like every command) stops the node the same way.
    void app.shutdownRequested.then(stop);
  });
  await app.close();
  return 0;
}
