/**
 * The real `wrangler dev` for the script tests: the repo's config, a temporary state, a free port,
 * the offline environment, and the flags `npm run dev` passes (from package.json).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { offlineEnv } from "../../scripts/lib/offline.mjs";
import { freePort } from "../net";

export const ROOT = join(import.meta.dirname, "../..");
export const WRANGLER = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");

export interface DevServer {
  base: string;
  /** Everything wrangler dev and the worker printed so far. */
  output: () => string;
  stop: () => Promise<void>;
}

/** Starts wrangler dev on `state` (migrations must be applied already) and waits until it is ready. */
export async function startDevServer(state: string, extraArgs: string[] = []): Promise<DevServer> {
  const port = await freePort();
  const devFlags = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.dev as string).split(" --start ")[1] ?? "";
  const args = ["dev", ...devFlags.split(" ").filter(Boolean), "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", "0"];
  const dev: ChildProcess = spawn(
    process.execPath,
    [WRANGLER, ...args, "--persist-to", state, "--show-interactive-dev-session=false", ...extraArgs],
    { cwd: ROOT, env: offlineEnv(), stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  for (const stream of [dev.stdout, dev.stderr]) {
    stream?.on("data", (chunk) => {
      output += chunk;
    });
  }
  const stop = async () => {
    if (dev.exitCode !== null) return;
    const exited = new Promise((resolve) => dev.once("exit", resolve));
    dev.kill("SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
  };
  const deadline = Date.now() + 90_000;
  while (!/Ready on/.test(output)) {
    if (Date.now() > deadline || dev.exitCode !== null) {
      await stop();
      throw new Error(`wrangler dev did not start:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return { base: `http://127.0.0.1:${port}`, output: () => output, stop };
}
