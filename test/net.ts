/** Ports for the servers the Node-side tests start (the dev server in e2e and the script tests). */
import { createServer } from "node:net";

/** A port nothing listens on right now (the OS picks it); a caller that binds it later retries if it was taken meanwhile. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}
