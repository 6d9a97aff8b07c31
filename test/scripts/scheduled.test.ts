/**
 * The daily cron job, triggered locally the way the README says: `wrangler dev --test-scheduled`
 * (which `npm run dev` passes) and a request to /__scheduled. Runs the real wrangler dev on a
 * temporary state and a free port, offline.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { offlineEnv } from "../../scripts/lib/offline.mjs";

const ROOT = join(import.meta.dirname, "../..");
const WRANGLER = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
const exec = promisify(execFile);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe("the scheduled job under wrangler dev", () => {
  const state = mkdtempSync(join(tmpdir(), "latchkey-cron-"));
  let dev: ChildProcess | undefined;
  let output = "";
  let base = "";

  beforeAll(async () => {
    const env = { ...offlineEnv(), CI: "true" };
    await exec(process.execPath, [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { cwd: ROOT, env });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // The dev arguments of `npm run dev` (package.json), plus a private port and state.
    const devFlags = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.dev as string).split(" --start ")[1] ?? "";
    const args = ["dev", ...devFlags.split(" ").filter(Boolean), "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", "0"];
    dev = spawn(process.execPath, [WRANGLER, ...args, "--persist-to", state, "--show-interactive-dev-session=false"], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const stream of [dev.stdout, dev.stderr]) {
      stream?.on("data", (chunk) => {
        output += chunk;
      });
    }
    const deadline = Date.now() + 90_000;
    while (!/Ready on/.test(output)) {
      if (Date.now() > deadline || dev.exitCode !== null) throw new Error(`wrangler dev did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  afterAll(async () => {
    if (dev && dev.exitCode === null) {
      const exited = new Promise((r) => dev?.once("exit", r));
      dev.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
    rmSync(state, { recursive: true, force: true });
  });

  it("runs the retention job on GET /__scheduled, with no banner pointing elsewhere and no network errors", async () => {
    const res = await fetch(`${base}/__scheduled?cron=17+3+*+*+*`);
    expect(res.status, output).toBe(200);
    const deadline = Date.now() + 10_000;
    while (!/\[retention\] deleted activity=\d+/.test(output) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(output).toMatch(/\[retention\] deleted activity=\d+ refresh_tokens=\d+ rate_limits=\d+ otp_codes=\d+/);
    // Without --test-scheduled wrangler suggests /cdn-cgi/handler/scheduled, which answers 500 here.
    expect(output).not.toMatch(/cdn-cgi\/handler\/scheduled/);
    expect(output).not.toMatch(/ENOTFOUND|workers\.cloudflare\.com/);
  });

  it("still answers 500 at /cdn-cgi/handler/scheduled (wrangler 4.86's miniflare sends it to the assets router)", async () => {
    // cloudflare/workers-sdk#9882, fixed upstream by PR #14177. When this fails after a wrangler
    // upgrade, the README's "Scheduled job" paragraph can point at the banner's URL again.
    const res = await fetch(`${base}/cdn-cgi/handler/scheduled?cron=17+3+*+*+*`);
    expect(res.status).toBe(500);
    expect(await res.text()).toBe("exception");
  });
});
