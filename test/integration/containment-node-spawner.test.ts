/*
 * The containment tests again with the Node.js spawner (DRCE_SPAWNER=node): tasks then get
 * their cgroup through the gate and the move, as on a host where the native spawner cannot
 * be built, and keep every guarantee.
 */
process.env["DRCE_SPAWNER"] = "node";
await import("./containment.test.js");
await import("../executor/local-runner-containment.test.js");
