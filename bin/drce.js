#!/usr/bin/env node
// The drce command: runs the TypeScript sources through tsx's loader, in this process
// (so signals reach drce itself), with the project's tsconfig whatever the working directory.
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

register({ tsconfig: fileURLToPath(new URL("../tsconfig.json", import.meta.url)) });
await import("../src/main.ts");
