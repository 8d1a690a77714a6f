import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The load test runs on its own: npm run test:load (vitest.load.config.ts).
    exclude: [...configDefaults.exclude, "test/load/**"],
    // Compiles the web console into dist/ui/ when it is missing or stale: nodes serve it from there.
    globalSetup: ["test/helpers/console-build.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests start real processes and servers; a few files at a time suit a small machine.
    maxWorkers: 3,
    fileParallelism: true,
  },
});
