// Node.js's built-in modules in the client commands' bundle, each loaded when one of its
// exports is first read rather than when the bundle starts. A client command's code imports
// what any command may need (node:http2 and node:tls for an https:// node, node:zlib for a
// compressed answer, node:os, node:https), and esbuild evaluates a bundled module's imports
// with it: every built-in was loaded at each start, used or not (tls and crypto alone: 6 ms
// of CPU). Each built-in becomes an object with one getter per export, named at build time
// from the building Node.js's own module, which loads the module at the first read. A
// built-in is required, not imported: an import goes through an ES module facade that reads
// every export, and so would load what each lazy getter guards (6 ms over the eleven the
// client loads).

import { readFileSync } from "node:fs";

/**
 * The banner that defines the bundle's loaders of built-ins: `__drceBuiltin(name, exports)`
 * and `__drceRequire(name)`, through process.getBuiltinModule() (Node.js 20.16), which needs
 * no CommonJS require function (making one for the bundle's file cost 4 ms of CPU).
 */
export const lazyBuiltinsBanner = `const __drceRequire = (name) => process.getBuiltinModule?.(name) ?? require(name);
const __drceBuiltin = (name, exports) => {
  let loaded;
  const lazy = {};
  for (const key of exports) Object.defineProperty(lazy, key, { get: () => (loaded ??= __drceRequire(name))[key], enumerable: true });
  return lazy;
};`;

// connect-node's compression module promisifies zlib's functions when it is evaluated, which
// would load zlib at every start for compression the CLI never asks for: each is promisified
// at its first call instead.
const promisifiedAtStart = /[\\/]@connectrpc[\\/]connect-node[\\/]dist[\\/]esm[\\/]compression\.js$/;

/**
 * The esbuild plugin: `node:` imports resolve to a module whose exports are getters over the
 * built-in (see the file's comment).
 */
export function lazyBuiltins() {
  return {
    name: "lazy-builtins",
    setup(plugin) {
      plugin.onLoad({ filter: promisifiedAtStart }, (args) => ({
        contents: readFileSync(args.path, "utf8").replace(/\bpromisify\((zlib\.\w+)\)/g, "((...args) => promisify($1)(...args))"),
        loader: "js",
      }));
      plugin.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: "builtin" }));
      plugin.onLoad({ filter: /.*/, namespace: "builtin" }, (args) => {
        const builtin = process.getBuiltinModule(args.path);
        if (builtin === undefined) return { errors: [{ text: `${args.path} is not a built-in module of this Node.js` }] };
        // A module that is itself a function (node:events is EventEmitter) may be extended or
        // called as its default export: it is required as it is (those are loaded by Node.js's
        // own start anyway).
        if (typeof builtin === "function") return { contents: `module.exports = __drceRequire(${JSON.stringify(args.path)});`, loader: "js" };
        // Every own name, as esbuild's import helpers copy them: a class or a function
        // exported by name is read through its getter as a value would be.
        const exports = Object.getOwnPropertyNames(builtin).filter((key) => key !== "default");
        return { contents: `module.exports = __drceBuiltin(${JSON.stringify(args.path)}, ${JSON.stringify(exports)});`, loader: "js" };
      });
    },
  };
}
