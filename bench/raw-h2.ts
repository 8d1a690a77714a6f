// Baseline: raw node:http2 streaming the bytes of `head -c N /dev/zero`, without Connect.
// Usage: raw-h2.ts server  (prints {"port": P}, serves until killed)
//        raw-h2.ts client PORT BYTES  (writes the body to stdout)
import { spawn } from "node:child_process";
import http2 from "node:http2";
import { pipeline } from "node:stream/promises";

const windowBytes = 4 * 1024 * 1024;
const [mode, portText, bytesText] = process.argv.slice(2);
if (mode === "server") {
  const server = http2.createServer({ settings: { initialWindowSize: windowBytes } });
  server.on("stream", (stream, headers) => {
    const bytes = String(Number(headers["x-bytes"] ?? 0));
    const child = spawn("head", ["-c", bytes, "/dev/zero"], { stdio: ["ignore", "pipe", "ignore"] });
    stream.respond({ ":status": 200 });
    void pipeline(child.stdout, stream).catch(() => child.kill());
  });
  server.listen(0, "127.0.0.1", () => {
    const address = server.address();
    console.log(JSON.stringify({ port: typeof address === "object" && address !== null ? address.port : 0 }));
  });
} else if (mode === "client") {
  const session = http2.connect(`http://127.0.0.1:${portText}`, { settings: { initialWindowSize: windowBytes } });
  session.on("connect", () => session.setLocalWindowSize(windowBytes * 4));
  const request = session.request({ ":path": "/", "x-bytes": bytesText ?? "0" });
  await pipeline(request, process.stdout, { end: false });
  session.close();
} else {
  console.error("usage: raw-h2.ts server | client PORT BYTES");
  process.exit(2);
}
