#!/usr/bin/env node
// The drce command by its former name, for whoever runs `node bin/drce.js`: the command is
// bin/drce.cjs (what the package installs as `drce`), which this ES module runs as it is.
// Through this name a command pays for the ES module loader; through bin/drce.cjs it does not.
import { createRequire } from "node:module";

createRequire(import.meta.url)("./drce.cjs");
