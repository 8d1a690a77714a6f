import { defineConfig } from "vitest/config";

// The load test (npm run test:load): one file, a long deadline, nothing else running beside it.
export default defineConfig({
  test: {
    include: ["test/load/**/*.test.ts"],
    testTimeout: 1_200_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
