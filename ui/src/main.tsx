// The console's entry point: its styles (xterm.js's own, then the console's) and the mount.
import "@xterm/xterm/css/xterm.css";
import "./style.css";
import { render } from "preact";
import { App } from "./app.js";

const root = document.getElementById("app");
if (root !== null) render(<App />, root);
