/**
 * The operator scripts run while `npm run dev` serves requests, as the README tells operators to
 * do: both open the same persisted state. No request may fail and no script run may fail, and
 * what the scripts write is what the running server sees.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, postJson, startDevServer } from "./dev-server";

const exec = promisify(execFile);

let server: DevServer;
beforeAll(async () => {
  server = await startDevServer();
});
afterAll(async () => {
  await server?.stop();
});

async function script(file: string, args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [file, ...args, "--persist-to", server.stateDir], {
      env: { ...process.env, LATCHKEY_ADMIN_PASSWORD: "", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * Sends requests that read and write D1 and read KV (a failed login counts failures, a refresh
 * counts per-IP attempts, the directory reads) from `clients` loops, starts `work` once every loop
 * has had an answer, and stops the loops when it settles. `during` counts the requests that were
 * in flight while `work` ran, so the test shows the traffic overlapped it however fast or slow
 * this machine is (a count of all requests would depend on its speed).
 */
async function trafficDuring<T>(work: () => Promise<T>, clients = 4) {
  let done = false;
  let window: { start: number; end: number } | undefined;
  let during = 0;
  const statuses: number[] = [];
  const failures: string[] = [];
  let n = 0;
  const requests = [
    () => postJson(server, "/api/v1/auth/refresh", { refresh_token: "x".repeat(43) }, { "cf-connecting-ip": `198.51.100.${n % 200}` }),
    () =>
      postJson(
        server,
        "/api/v1/auth/login",
        { email: `nobody${n}@example.com`, password: "not-the-password-1" },
        { "cf-connecting-ip": `198.51.100.${n % 200}` },
      ),
    async () => {
      const res = await fetch(`${server.url}/api/v1/profiles`);
      return { status: res.status, text: await res.text() };
    },
  ];
  let answered = 0;
  let allAnswered: () => void = () => {};
  const warm = new Promise<void>((resolve) => {
    allAnswered = resolve;
  });
  const loop = async () => {
    for (let first = true; !done; first = false) {
      const send = requests[n++ % requests.length] as () => Promise<{ status: number; text: string }>;
      const sent = performance.now();
      const res = await send();
      statuses.push(res.status);
      if (res.status >= 500) failures.push(`${res.status} ${res.text.slice(0, 200)}`);
      if (window && sent < window.end && performance.now() > window.start) during++;
      if (first && ++answered === clients) allAnswered();
    }
  };
  const loops = Array.from({ length: clients }, loop);
  await warm;
  window = { start: performance.now(), end: Number.POSITIVE_INFINITY };
  const result = await work().finally(() => {
    if (window) window.end = performance.now();
    done = true;
  });
  await Promise.all(loops);
  return { result, statuses, failures, during };
}

describe("operator scripts against the state of a running dev server", () => {
  it("admin:create and config:set, run concurrently under traffic, all succeed and no request fails", async () => {
    const password = "operators-chosen-secret-42";
    const runs = () =>
      Promise.all([
        script("scripts/admin-create.mjs", ["--email", "live-ops1@example.com"], { LATCHKEY_ADMIN_PASSWORD: password }),
        script("scripts/admin-create.mjs", ["--email", "live-ops2@example.com"], { LATCHKEY_ADMIN_PASSWORD: password }),
        script("scripts/admin-create.mjs", ["--email", "live-ops3@example.com"], { LATCHKEY_ADMIN_PASSWORD: password }),
        script("scripts/config.mjs", ["set", "access_token_ttl", "120"]),
        script("scripts/config.mjs", ["set", "otp_ttl", "900"]),
        script("scripts/config.mjs", ["set", "otp_max_attempts", "7"]),
      ]);
    const { result, failures, during } = await trafficDuring(runs);
    for (const run of result) expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    // Every loop had a request in flight while the scripts ran.
    expect(during).toBeGreaterThanOrEqual(4);
    expect(failures, server.output().slice(-4000)).toEqual([]);

    // dev.mjs recorded the server in the state directory, which is how the scripts found it.
    expect(existsSync(join(server.stateDir, "latchkey-dev-server.json"))).toBe(true);
    const read = await script("scripts/config.mjs", ["get"]);
    expect(read.stdout).toMatch(/^access_token_ttl = 120$/m);
    expect(read.stdout).toMatch(/^activity_retention_days = 365 \(default\)$/m);

    // What the scripts wrote is what the running server serves.
    const login = await postJson(server, "/api/v1/auth/login", { email: "live-ops1@example.com", password });
    expect(login.status, login.text).toBe(200);
    const config = await fetch(`${server.url}/api/v1/admin/config`, { headers: { authorization: `Bearer ${login.json?.access_token}` } });
    const entries = ((await config.json()) as { config: { key: string; value: unknown }[] }).config;
    const value = (key: string) => entries.find((entry) => entry.key === key)?.value;
    expect([value("access_token_ttl"), value("otp_ttl"), value("otp_max_attempts")]).toEqual([120, 900, 7]);
  });

  it("admin:create takes over an address a stranger registered: the stranger's password stops working, the operator's works", async () => {
    const email = "live-ops-taken@example.com";
    const strangers = "strangers-own-secret-77";
    const registered = await postJson(server, "/api/v1/auth/register", { email, password: strangers });
    expect(registered.status, registered.text).toBe(201);

    const operators = "operators-chosen-secret-42";
    const run = await script("scripts/admin-create.mjs", ["--email", email], { LATCHKEY_ADMIN_PASSWORD: operators });
    expect(run.code, run.stderr).toBe(0);

    expect((await postJson(server, "/api/v1/auth/login", { email, password: strangers })).status).toBe(401);
    const login = await postJson(server, "/api/v1/auth/login", { email, password: operators });
    expect(login.status, login.text).toBe(200);
    const me = await fetch(`${server.url}/api/v1/admin/users?q=live-ops-taken`, {
      headers: { authorization: `Bearer ${login.json?.access_token}` },
    });
    expect(me.status).toBe(200);
  });
});
