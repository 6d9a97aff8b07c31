import { env } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBackgroundDeps } from "../../src/deps";
import { scheduledRetention } from "../../src/features/activity/activity.retention";
import { MAIL_MAX_RETRIES } from "../../src/features/mail/mail.consumer";
import { MemoryMailer } from "../../src/features/mail/mailer";
import { checkReadiness } from "../../src/features/meta/ready";
import { FixedClock } from "../../src/lib/clock";
import { setLogSink, userRef } from "../../src/lib/log";
import { chooseRequestId, REQUEST_ID_MAX } from "../../src/middleware/request-id";
import { harness, unique } from "../helpers";
import { capturingEnv, deliver } from "../mail-helpers";

type Line = Record<string, unknown>;
let lines: Line[] = [];
let restore: () => void = () => {};
beforeEach(() => {
  lines = [];
  restore = setLogSink((_level, line) => lines.push(JSON.parse(line) as Line));
});
afterEach(() => restore());

const requestLines = () => lines.filter((l) => l.event === "request");

describe("request ids", () => {
  const h = harness();

  it("keeps a valid incoming X-Request-Id and echoes it in the header, the problem document and the log line", async () => {
    const res = await h.call("GET", "/api/v1/nowhere", undefined, { headers: { "x-request-id": "client-42.a:b_c" } });
    expect(res.status).toBe(404);
    expect(res.headers.get("x-request-id")).toBe("client-42.a:b_c");
    expect(res.json).toMatchObject({ code: "not_found", request_id: "client-42.a:b_c" });
    expect(requestLines()).toEqual([expect.objectContaining({ request_id: "client-42.a:b_c", status: 404, error_code: "not_found" })]);
  });

  it("falls back to cf-ray, then to a random id, for a missing or malformed X-Request-Id", () => {
    const headers = (h: Record<string, string>) => new Headers(h);
    expect(chooseRequestId(headers({ "x-request-id": "a".repeat(REQUEST_ID_MAX) }))).toBe("a".repeat(REQUEST_ID_MAX));
    expect(chooseRequestId(headers({ "x-request-id": "a".repeat(REQUEST_ID_MAX + 1), "cf-ray": "8f1e2d3c4b5a6978-AMS" }))).toBe(
      "8f1e2d3c4b5a6978-AMS",
    );
    expect(chooseRequestId(headers({ "x-request-id": "bad id;forged", "cf-ray": "8f1e2d3c4b5a6978-AMS" }))).toBe("8f1e2d3c4b5a6978-AMS");
    const random = chooseRequestId(headers({ "x-request-id": "<script>" }));
    expect(random).toMatch(/^[0-9a-f]{32}$/);
    expect(chooseRequestId(headers({}))).not.toBe(random);
  });

  it("is on every response: success, 405 with Allow, a validation error and a CORS preflight", async () => {
    const ok = await h.call("GET", "/health");
    expect(ok.headers.get("x-request-id")).toMatch(/^[0-9a-f]{32}$/);
    const wrongMethod = await h.call("PUT", "/health", undefined, { headers: { "cf-ray": "8f00aa-LHR" } });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("x-request-id")).toBe("8f00aa-LHR");
    expect(wrongMethod.json.request_id).toBe("8f00aa-LHR");
    const invalid = await h.call("POST", "/api/v1/auth/login", { email: "nope" });
    expect(invalid.status).toBe(400);
    expect(invalid.json.request_id).toBe(invalid.headers.get("x-request-id"));
    expect(invalid.json.errors.length).toBeGreaterThan(0);
    const preflight = await h.call("OPTIONS", "/api/v1/me", undefined, { headers: { origin: "https://nowhere.example" } });
    expect(preflight.headers.get("x-request-id")).toBeTruthy();
  });

  it("is in every kind of problem document, and its code in the log line", async () => {
    lines = [];
    // The error handler (a thrown 401), the dev inbox's guard (outside development), the 404.
    const answers = [
      { path: "/api/v1/me", id: "unauth-1", status: 401, code: "unauthorized" },
      { path: "/dev/mail", id: "dev-1", status: 404, code: "not_found" },
      { path: "/nowhere", id: "none-1", status: 404, code: "not_found" },
    ];
    for (const { path, id, status, code } of answers) {
      const res = await h.call("GET", path, undefined, { headers: { "x-request-id": id } });
      expect(res.status).toBe(status);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(res.headers.get("x-request-id")).toBe(id);
      expect(res.json).toMatchObject({ status, code, request_id: id });
    }
    expect(requestLines().map((l) => [l.request_id, l.error_code])).toEqual(answers.map((a) => [a.id, a.code]));
  });
});

describe("the request log line", () => {
  const h = harness();

  it("has the route pattern, status, duration, a keyed user hash, and no secrets", async () => {
    const user = await h.signedInUser();
    lines = [];
    const res = await h.call("GET", `/api/v1/profiles/${user.id}`, undefined, {
      token: user.access_token,
      headers: { "x-request-id": "trace-1" },
    });
    expect(res.status).toBe(200);
    const me = await h.call("GET", "/api/v1/me", undefined, { token: user.access_token });
    expect(me.status).toBe(200);
    const [profile, line] = requestLines();
    expect(profile).toMatchObject({ request_id: "trace-1", route: "/api/v1/profiles/:user_id", status: 200 });
    expect(line).toMatchObject({
      level: "info",
      event: "request",
      method: "GET",
      route: "/api/v1/me",
      status: 200,
      user_ref: await userRef(env.OTP_SECRET, user.id),
    });
    expect(typeof line?.duration_ms).toBe("number");
    expect(new Date(line?.time as string).toISOString()).toBe(line?.time);
    expect(line?.user_ref).toMatch(/^[0-9a-f]{16}$/);
    const text = JSON.stringify(lines);
    for (const secret of [user.id, user.email, user.password, user.access_token, user.refresh_token]) expect(text).not.toContain(secret);
  });

  it("logs sign-in and a failed sign-in without the email, password or tokens, with the error code", async () => {
    const user = await h.registerVerified();
    lines = [];
    const tokens = await h.login(user.email, user.password);
    const bad = await h.call("POST", "/api/v1/auth/login", { email: user.email, password: "wrong-password-123" });
    expect(bad.status).toBe(401);
    expect(requestLines()).toEqual([
      expect.objectContaining({ route: "/api/v1/auth/login", status: 200 }),
      expect.objectContaining({ route: "/api/v1/auth/login", status: 401, level: "warn", error_code: "invalid_credentials" }),
    ]);
    const text = JSON.stringify(lines);
    for (const secret of [user.email, user.password, "wrong-password-123", tokens.access_token, tokens.refresh_token, "203.0.113."]) {
      expect(text).not.toContain(secret);
    }
  });

  it("names no route for an unknown path, and adds colo and country when request.cf has them", async () => {
    const res = await h.app.fetch(
      new Request("http://latchkey.test/api/v1/users/123/secret", { cf: { colo: "AMS", country: "NL" } } as RequestInit),
      env,
    );
    expect(res.status).toBe(404);
    expect(requestLines()).toEqual([expect.objectContaining({ route: null, status: 404, colo: "AMS", country: "NL" })]);
    expect(JSON.stringify(lines)).not.toContain("/users/123");
  });

  it("turns an unexpected error into one structured error line without SQL parameters, and a 500 with its request id", async () => {
    const user = await h.signedInUser();
    const broken = {
      ...env,
      // Requests query through a D1 session (src/store/replica.ts): break the session's statements.
      DB: new Proxy(env.DB, {
        get(target, prop) {
          if (prop !== "withSession") return Reflect.get(target, prop);
          return (...args: Parameters<D1Database["withSession"]>) =>
            new Proxy(target.withSession(...args), {
              get(session, key) {
                if (key === "prepare") {
                  return () => {
                    throw Object.assign(new Error(`Failed query: select … params: ${user.email}`), {
                      query: "select ?",
                      params: [user.email],
                    });
                  };
                }
                const value = Reflect.get(session, key);
                return typeof value === "function" ? value.bind(session) : value;
              },
            });
        },
      }),
    } as Env;
    lines = [];
    const res = await h.call("GET", "/api/v1/me", undefined, {
      token: user.access_token,
      env: broken,
      headers: { "x-request-id": "boom-1" },
    });
    expect(res.status).toBe(500);
    expect(res.json).toMatchObject({ code: "internal_error", request_id: "boom-1" });
    const error = lines.find((l) => l.event === "error");
    expect(error).toMatchObject({ level: "error", request_id: "boom-1", method: "GET", route: "/api/v1/me" });
    expect(error?.error).toContain("query failed: select ?");
    expect(requestLines()).toEqual([expect.objectContaining({ status: 500, level: "error", error_code: "internal_error" })]);
    expect(JSON.stringify(lines)).not.toContain(user.email);
  });
});

describe("GET /health/ready", () => {
  const h = harness();

  it("answers 200 when D1, KV and R2 answer", async () => {
    const res = await h.call("GET", "/health/ready");
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ status: "ready", checks: { d1: "ok", kv: "ok", r2: "ok" } });
    expect(res.headers.get("cache-control")).toBe("no-store");
  });

  it("answers 503 naming the failed binding, without its error", async () => {
    const failing = {
      ...env,
      DB: { prepare: () => ({ first: () => Promise.reject(new Error("D1_ERROR: internal secret detail")) }) },
    } as unknown as Env;
    const res = await h.call("GET", "/health/ready", undefined, { env: failing });
    expect(res.status).toBe(503);
    expect(res.json).toEqual({ status: "unavailable", checks: { d1: "failed", kv: "ok", r2: "ok" } });
    expect(res.text).not.toContain("secret detail");
    expect(lines).toContainEqual(expect.objectContaining({ event: "ready.check", check: "d1", result: "failed" }));
  });

  it("reuses an answer for 5 s, so a flood of probes of this public route costs each isolate one check per interval", async () => {
    let heads = 0;
    const counting = {
      ...env,
      AVATARS: {
        head: (key: string) => {
          heads++;
          return env.AVATARS.head(key);
        },
      },
    } as unknown as Env;
    expect((await h.call("GET", "/health/ready", undefined, { env: counting })).status).toBe(200);
    expect((await h.call("GET", "/health/ready", undefined, { env: counting })).status).toBe(200);
    h.clock.advance(4_999);
    expect((await h.call("GET", "/health/ready", undefined, { env: counting })).status).toBe(200);
    expect(heads).toBe(1);
    h.clock.advance(1);
    expect((await h.call("GET", "/health/ready", undefined, { env: counting })).status).toBe(200);
    expect(heads).toBe(2);
  });

  it("never has a probe wait on another request's unfinished check, which that request's end would leave hanging", async () => {
    let heads = 0;
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const gated = {
      ...env,
      AVATARS: {
        head: async (key: string) => {
          if (++heads === 1) await held; // the first probe's check is still running
          return env.AVATARS.head(key);
        },
      },
    } as unknown as Env;
    const first = h.call("GET", "/health/ready", undefined, { env: gated });
    const second = await h.call("GET", "/health/ready", undefined, { env: gated });
    expect(second.status).toBe(200);
    expect(heads).toBe(2);
    release();
    expect((await first).status).toBe(200);
  });

  it("gives up on a binding that hangs after its timeout", async () => {
    const hanging = {
      ...env,
      CONFIG: { get: () => new Promise(() => {}) },
      AVATARS: { head: () => Promise.reject(new Error("r2 down")) },
    } as unknown as Env;
    const result = await checkReadiness(createBackgroundDeps(hanging, FixedClock()), { timeoutMs: 50 });
    expect(result).toEqual({ ready: false, checks: { d1: "ok", kv: "timeout", r2: "failed" } });
  });
});

describe("queue and cron log lines", () => {
  /**
   * The batch lines logged since `lines` was emptied. Mail the earlier tests of this file sent
   * through the real queue may be delivered meanwhile and log a line of its own, so the lines
   * are matched by content, never by position.
   */
  const batchLines = () => lines.filter((l) => l.event === "mail.batch");

  it("summarise a mail batch: size, acked, retried and dead-lettered", async () => {
    const cap = capturingEnv();
    const h = harness();
    const email = `${unique("obs")}@example.com`;
    expect((await h.call("POST", "/api/v1/auth/register", { email, password: "Tr0ub4dor&3-horse" }, { env: cap.env })).status).toBe(201);
    const mailer = MemoryMailer();
    lines = [];
    await deliver([cap.sent[0], { kind: "bogus" }], { mailer });
    expect(batchLines()).toContainEqual(
      expect.objectContaining({
        level: "info",
        queue: "latchkey-mail",
        batch_size: 2,
        acked: 2,
        sent: 1,
        malformed: 1,
        retried: 0,
        dead_lettered: 0,
      }),
    );
    const failing = { name: "failing", send: () => Promise.reject(new Error("provider down")) };
    lines = [];
    await deliver([cap.sent[0]], { mailer: failing as unknown as ReturnType<typeof MemoryMailer> });
    expect(batchLines()).toContainEqual(expect.objectContaining({ level: "warn", retried: 1, dead_lettered: 0 }));
    lines = [];
    await deliver([cap.sent[0]], { mailer: failing as unknown as ReturnType<typeof MemoryMailer>, attempts: MAIL_MAX_RETRIES + 1 });
    expect(batchLines()).toContainEqual(expect.objectContaining({ retried: 0, dead_lettered: 1 }));
    expect(lines.find((l) => l.event === "mail.dead_letter")).toMatchObject({ level: "error", attempt: MAIL_MAX_RETRIES + 1 });
    expect(JSON.stringify(lines)).not.toContain(email);
  });

  it("report the rows the retention job deleted per kind", async () => {
    await scheduledRetention(createBackgroundDeps(env, FixedClock(Date.now())));
    expect(lines.find((l) => l.event === "retention")).toMatchObject({
      level: "info",
      deleted_activity: expect.any(Number),
      deleted_refresh_tokens: expect.any(Number),
      deleted_rate_limits: expect.any(Number),
      deleted_otp_codes: expect.any(Number),
      deleted_avatars: expect.any(Number),
      complete: true,
    });
  });
});
