import { runCli } from "./cli/index.js";
import { processIo } from "./cli/io.js";

// The only module with side effects: run the drce command with the process's arguments.
process.exitCode = await runCli(process.argv.slice(2), processIo());
