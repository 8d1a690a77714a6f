/*
 * The spawner's tests again with the Node.js spawner (DRCE_SPAWNER=node), the one a node
 * uses where the native spawner cannot be built: both keep every guarantee.
 */
process.env["DRCE_SPAWNER"] = "node";
await import("./spawner.test.js");
