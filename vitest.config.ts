import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests start real processes and servers; a few files at a time suit a small machine.
    maxWorkers: 3,
    fileParallelism: true,
  },
});
