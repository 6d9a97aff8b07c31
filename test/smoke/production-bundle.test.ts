/**
 * The artifact that deploys is the one tested: the production bundle, built exactly as `npm run
 * deploy` builds it (`wrangler deploy --minify --env production`, here with `--dry-run --outdir`),
 * loaded module by module into workerd through Miniflare's API (as bench/run.mjs does), with fresh
 * local D1, KV, R2 and Queues, the migrations applied, [env.production.vars] as they are except
 * MAIL_API_URL (a stub of the provider on 127.0.0.1) and CORS_ORIGINS, and freshly generated
 * secrets. It drives a user's whole life through the real mail queue and checks the request ids
 * and the log lines workerd prints. Not covered here: static assets (the docs page's files), which
 * `wrangler deploy` uploads beside the bundle rather than in it.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readEnvironment } from "../../scripts/lib/deploy-env.mjs";
import { generateSigningJwk, randomSecret } from "../../scripts/lib/keys.mjs";
import { migrationBatches } from "../../scripts/lib/migrations.mjs";
import { offlineEnv } from "../../scripts/lib/offline.mjs";
import { uniqueId } from "../ids";

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, "../..");
const ORIGIN = "https://app.example.com";
const PASSWORD = "correct-horse-battery-staple-9";
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

interface ReceivedMail {
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  body: { from: string; to: string[]; subject: string; text: string; html: string };
  answered: number;
}

/** The mail provider: accepts Resend-style POSTs, or fails the next `failNext` of them with a 500. */
function stubProvider() {
  const received: ReceivedMail[] = [];
  const state = { failNext: 0 };
  const server: Server = createServer((req: IncomingMessage, res) => {
    let data = "";
    req.on("data", (chunk) => {
      data += chunk;
    });
    req.on("end", () => {
      const answered = state.failNext > 0 ? 500 : 200;
      if (state.failNext > 0) state.failNext--;
      received.push({
        authorization: req.headers.authorization,
        idempotencyKey: req.headers["idempotency-key"] as string | undefined,
        body: JSON.parse(data),
        answered,
      });
      res.writeHead(answered, { "content-type": "application/json" });
      res.end(answered === 200 ? `{"id":"stub-${received.length}"}` : `{"message":"stub failure"}`);
    });
  });
  return { server, received, state };
}

const tmp = mkdtempSync(join(tmpdir(), "latchkey-smoke-"));
const provider = stubProvider();
const stdout: string[] = [];
let mf: Miniflare;
let base: string;

/** workerd's stdout, line by line; the JSON ones parsed. */
const logLines = () => stdout.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>);

async function call(method: string, path: string, options: { json?: unknown; token?: string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.json !== undefined) headers["content-type"] = "application/json";
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: options.json === undefined ? undefined : JSON.stringify(options.json),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: the test reads several JSON shapes
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {}
  expect(res.headers.get("x-request-id"), `${method} ${path}`).toMatch(REQUEST_ID_PATTERN);
  return { status: res.status, headers: res.headers, json, text };
}

/** Waits for the provider to accept a mail to `to` (the `skip` first ones aside); returns it with its code. */
async function mailTo(to: string, skip = 0, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const accepted = provider.received.filter((m) => m.answered === 200 && m.body.to.includes(to));
    const mail = accepted[skip];
    if (mail) {
      const code = /^ {4}(\d{6})$/m.exec(mail.body.text)?.[1];
      if (!code) throw new Error(`no code in the mail:\n${mail.body.text}`);
      return { ...mail, code };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no mail to ${to} within ${timeoutMs} ms; workerd said:\n${stdout.slice(-30).join("\n")}`);
}

beforeAll(async () => {
  // 1. The bundle, as `npm run deploy -- --env production` makes it.
  const outdir = join(tmp, "dist");
  await exec(
    process.execPath,
    [join(ROOT, "scripts/wrangler.mjs"), "deploy", "--dry-run", "--minify", "--env", "production", "--outdir", outdir],
    { cwd: ROOT, env: { ...offlineEnv(), WRANGLER_LOG_PATH: join(tmp, "wrangler-logs") } },
  );
  const types = { ".js": "ESModule", ".wasm": "CompiledWasm", ".txt": "Text" } as const;
  const modules = readdirSync(outdir)
    .filter((f) => Object.keys(types).some((ext) => f.endsWith(ext)))
    .sort((a, b) => (a === "index.js" ? -1 : b === "index.js" ? 1 : a.localeCompare(b)))
    .map((f) => ({ type: types[f.slice(f.lastIndexOf(".")) as keyof typeof types], path: join(outdir, f) }));
  expect(modules[0]?.path).toMatch(/index\.js$/);

  // 2. The provider stub, and the production environment as wrangler.toml declares it.
  await new Promise<void>((resolve) => provider.server.listen(0, "127.0.0.1", resolve));
  const providerUrl = `http://127.0.0.1:${(provider.server.address() as AddressInfo).port}/emails`;
  const production = readEnvironment(join(ROOT, "wrangler.toml"), "production");
  expect(production.vars.MAIL_DRIVER).toBe("http");
  const compatibilityDate = /^compatibility_date = "(.+)"$/m.exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"))?.[1];

  mf = new Miniflare({
    cf: false, // Miniflare's built-in Request.cf placeholder: no download
    host: "127.0.0.1",
    port: 0,
    d1Persist: join(tmp, "d1"),
    kvPersist: join(tmp, "kv"),
    r2Persist: join(tmp, "r2"),
    handleRuntimeStdio(out, err) {
      // Whole lines only: a chunk may end mid-line (each stream keeps its own unfinished tail).
      for (const stream of [out, err]) {
        let partial = "";
        stream.on("data", (data) => {
          const lines = (partial + String(data)).split("\n");
          partial = lines.pop() ?? "";
          stdout.push(...lines.filter(Boolean));
        });
      }
    },
    modules,
    modulesRoot: outdir,
    compatibilityDate,
    d1Databases: { DB: production.d1.name },
    kvNamespaces: { CONFIG: production.kv.title },
    r2Buckets: { AVATARS: production.r2.bucket },
    queueProducers: { MAIL_QUEUE: production.queue },
    queueConsumers: {
      [production.queue]: {
        maxBatchSize: 10,
        maxBatchTimeout: 1,
        maxRetries: production.maxRetries,
        deadLetterQueue: production.deadLetterQueue,
      },
    },
    bindings: {
      ...production.vars,
      MAIL_API_URL: providerUrl,
      CORS_ORIGINS: ORIGIN,
      JWT_KEYS: JSON.stringify({ keys: [await generateSigningJwk()] }),
      OTP_SECRET: randomSecret(),
      MAIL_API_KEY: "smoke-test-key",
    },
  });
  base = (await mf.ready).origin;

  // 3. The migrations, as `wrangler d1 migrations apply` runs them: each file's statements in order.
  const db = await mf.getD1Database("DB");
  for (const statements of migrationBatches(join(ROOT, "migrations"))) await db.batch(statements.map((s) => db.prepare(s)));
}, 240_000);

afterAll(async () => {
  await mf?.dispose();
  await new Promise((resolve) => provider.server.close(resolve));
  rmSync(tmp, { recursive: true, force: true });
});

describe.sequential("the production bundle in workerd", () => {
  const email = `smoke-${uniqueId(PASSWORD)}@example.com`;
  const tokens = { access: "", refresh: "", rotated: "" };

  it("is live and ready, with request ids and CORS for the configured origin", async () => {
    const health = await call("GET", "/health", { headers: { "x-request-id": "smoke-health-1" } });
    expect(health.status, health.text).toBe(200);
    expect(health.headers.get("x-request-id")).toBe("smoke-health-1");
    const ready = await call("GET", "/health/ready");
    expect(ready.status, ready.text).toBe(200);
    expect(ready.json).toEqual({ status: "ready", checks: { d1: "ok", kv: "ok", r2: "ok" } });
    const preflight = await call("OPTIONS", "/api/v1/me", {
      headers: { origin: ORIGIN, "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
    });
    expect(preflight.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    // The development inbox does not exist in production.
    expect((await call("GET", "/dev/mail")).status).toBe(404);
  });

  it("registers, and the provider receives the activation mail with its code", async () => {
    const reg = await call("POST", "/api/v1/auth/register", {
      json: { email, password: PASSWORD, username: `smoke${uniqueId(PASSWORD)}` },
      headers: { "x-request-id": "smoke-register-1" },
    });
    expect(reg.status, reg.text).toBe(201);
    const mail = await mailTo(email);
    expect(mail.authorization).toBe("Bearer smoke-test-key");
    expect(mail.idempotencyKey).toBeTruthy();
    expect(mail.body.from).toBe(readEnvironment(join(ROOT, "wrangler.toml"), "production").vars.MAIL_FROM);
    const verified = await call("POST", "/api/v1/auth/verify-email", { json: { email, code: mail.code, password: PASSWORD } });
    expect(verified.status, verified.text).toBe(200);
  });

  it("signs in, answers /me, rotates the refresh token", async () => {
    const login = await call("POST", "/api/v1/auth/login", { json: { email, password: PASSWORD } });
    expect(login.status, login.text).toBe(200);
    tokens.access = login.json.access_token;
    tokens.refresh = login.json.refresh_token;
    const me = await call("GET", "/api/v1/me", { token: tokens.access });
    expect(me.status, me.text).toBe(200);
    expect(me.json.user.email).toBe(email);
    const refreshed = await call("POST", "/api/v1/auth/refresh", { json: { refresh_token: tokens.refresh } });
    expect(refreshed.status, refreshed.text).toBe(200);
    expect(refreshed.json.refresh_token).not.toBe(tokens.refresh);
    tokens.rotated = tokens.refresh;
    tokens.refresh = refreshed.json.refresh_token;
    tokens.access = refreshed.json.access_token;
  });

  it("detects reuse of a rotated refresh token: 401 with its request id, and the whole family revoked", async () => {
    // Past the grace period for a client's own duplicate request (tokens.service.ts REFRESH_RACE_GRACE_MS).
    await new Promise((resolve) => setTimeout(resolve, 5_200));
    const reuse = await call("POST", "/api/v1/auth/refresh", {
      json: { refresh_token: tokens.rotated },
      headers: { "x-request-id": "smoke-reuse-1" },
    });
    expect(reuse.status, reuse.text).toBe(401);
    expect(reuse.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(reuse.json).toMatchObject({ code: "invalid_refresh_token", request_id: "smoke-reuse-1" });
    const current = await call("POST", "/api/v1/auth/refresh", { json: { refresh_token: tokens.refresh } });
    expect(current.status, "the newest token of the family is revoked too").toBe(401);
  });

  it("signs out: the refresh token stops working", async () => {
    const login = await call("POST", "/api/v1/auth/login", { json: { email, password: PASSWORD } });
    expect(login.status, login.text).toBe(200);
    const out = await call("POST", "/api/v1/auth/logout", { json: { refresh_token: login.json.refresh_token } });
    expect(out.status, out.text).toBe(204);
    expect((await call("POST", "/api/v1/auth/refresh", { json: { refresh_token: login.json.refresh_token } })).status).toBe(401);
  });

  it("retries a mail the provider refused once: it arrives on the queue's retry", async () => {
    const second = `smoke-retry-${uniqueId(PASSWORD)}@example.com`;
    provider.state.failNext = 1;
    const reg = await call("POST", "/api/v1/auth/register", { json: { email: second, password: PASSWORD } });
    expect(reg.status, reg.text).toBe(201);
    const mail = await mailTo(second, 0, 45_000);
    const attempts = provider.received.filter((m) => m.body.to.includes(second));
    expect(attempts.map((m) => m.answered)).toEqual([500, 200]);
    expect(attempts[0]?.idempotencyKey).toBe(mail.idempotencyKey);
    expect((await call("POST", "/api/v1/auth/verify-email", { json: { email: second, code: mail.code, password: PASSWORD } })).status).toBe(
      200,
    );
    await expect.poll(() => logLines().filter((l) => l.event === "mail.batch" && l.retried === 1), { timeout: 10_000 }).toHaveLength(1);
  }, 60_000);

  it("printed one JSON line per request, with the request id and route pattern, and no secrets", async () => {
    const lines = logLines();
    const requests = lines.filter((l) => l.event === "request");
    expect(requests.length).toBeGreaterThanOrEqual(12);
    for (const line of requests) {
      expect(Object.keys(line)).toEqual(
        expect.arrayContaining(["time", "level", "event", "request_id", "method", "route", "status", "duration_ms"]),
      );
      expect(line.request_id).toMatch(REQUEST_ID_PATTERN);
    }
    expect(requests).toContainEqual(
      expect.objectContaining({ request_id: "smoke-register-1", method: "POST", route: "/api/v1/auth/register", status: 201 }),
    );
    expect(requests).toContainEqual(
      expect.objectContaining({
        request_id: "smoke-reuse-1",
        route: "/api/v1/auth/refresh",
        status: 401,
        error_code: "invalid_refresh_token",
      }),
    );
    const me = requests.find((l) => l.route === "/api/v1/me" && l.status === 200);
    expect(me?.user_ref).toMatch(/^[0-9a-f]{16}$/);
    expect(lines).toContainEqual(expect.objectContaining({ event: "mail.batch", queue: expect.stringContaining("mail") }));
    // Nothing a log store must not hold: addresses, the password, codes, tokens, the provider key.
    const all = stdout.join("\n");
    const codes = provider.received.map((m) => /^ {4}(\d{6})$/m.exec(m.body.text)?.[1]).filter(Boolean) as string[];
    for (const secret of [email, PASSWORD, tokens.access, tokens.refresh, "smoke-test-key"]) expect(all).not.toContain(secret);
    // A code is six digits: as a number of its own, since random hex request ids may hold any six digits in a row.
    for (const code of codes) expect(all).not.toMatch(new RegExp(`(?<![0-9a-f])${code}(?![0-9a-f])`));
  });
});
