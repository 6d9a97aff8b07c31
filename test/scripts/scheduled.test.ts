/**
 * The daily cron job, triggered locally the way the README says: `wrangler dev --test-scheduled`
 * (which `npm run dev` passes) and a request to /__scheduled. Runs the real wrangler dev on a
 * temporary state and a free port, offline.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { offlineEnv } from "../../scripts/lib/offline.mjs";
import { type DevServer, ROOT, startDevServer, WRANGLER } from "./dev-server";

const exec = promisify(execFile);

describe("the scheduled job under wrangler dev", () => {
  const state = mkdtempSync(join(tmpdir(), "latchkey-cron-"));
  let dev: DevServer;

  beforeAll(async () => {
    const env = { ...offlineEnv(), CI: "true" };
    await exec(process.execPath, [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { cwd: ROOT, env });
    dev = await startDevServer(state);
  });

  afterAll(async () => {
    await dev?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it("runs the retention job on GET /__scheduled, with no banner pointing elsewhere and no network errors", async () => {
    const res = await fetch(`${dev.base}/__scheduled?cron=17+3+*+*+*`);
    expect(res.status, dev.output()).toBe(200);
    const deadline = Date.now() + 30_000;
    // The job's structured log line (src/lib/log.ts).
    const line =
      /\{"time":"[^"]+","level":"info","event":"retention","deleted_activity":\d+,"deleted_refresh_tokens":\d+,"deleted_rate_limits":\d+,"deleted_otp_codes":\d+,"deleted_released_usernames":\d+,"deleted_avatars":\d+,"complete":true\}/;
    while (!line.test(dev.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(dev.output()).toMatch(line);
    // Without --test-scheduled wrangler suggests /cdn-cgi/handler/scheduled, which answers 500 here.
    expect(dev.output()).not.toMatch(/cdn-cgi\/handler\/scheduled/);
    expect(dev.output()).not.toMatch(/ENOTFOUND|workers\.cloudflare\.com/);
  });

  it("still answers 500 at /cdn-cgi/handler/scheduled (wrangler 4.86's miniflare sends it to the assets router)", async () => {
    // cloudflare/workers-sdk#9882, fixed upstream by PR #14177. When this fails after a wrangler
    // upgrade, the README's paragraph on the scheduled job can point at the banner's URL again.
    const res = await fetch(`${dev.base}/cdn-cgi/handler/scheduled?cron=17+3+*+*+*`);
    expect(res.status).toBe(500);
    expect(await res.text()).toBe("exception");
  });
});
