import { runCli } from "./cli/index.js";
import { processIo } from "./cli/io.js";

// The only module with side effects: run the drce command with the process's arguments.
// No top-level await: the compiled command is CommonJS (dist/drce.cjs), which has none.
void runCli(process.argv.slice(2), processIo()).then((code) => {
  process.exitCode = code;
});
