/**
 * Each multi-statement change is one D1 batch, so a failure of any statement leaves nothing
 * half-written. These tests make one chosen statement fail (test/d1-wrap.ts) and check both the
 * stored state and that the client gets a clean 5xx problem with nothing internal in it.
 */
import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { type D1Probe, probeD1 } from "../d1-wrap";
import { harness, unique } from "../helpers";

type Result = Awaited<ReturnType<ReturnType<typeof harness>["call"]>>;

function expectCleanServerError(res: Result) {
  expect(res.status).toBeGreaterThanOrEqual(500);
  expect(res.status).toBeLessThan(600);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  expect(res.json).toMatchObject({ type: expect.any(String), title: expect.any(String), status: res.status, detail: expect.any(String) });
  for (const leak of ["D1_ERROR", "injected", "SQLITE", "refresh_tokens", "insert into", "update ", "delete from", "stack", ".ts:"]) {
    expect(res.text).not.toContain(leak);
  }
}

async function count(sql: string, ...params: unknown[]) {
  const row = await env.DB.prepare(sql)
    .bind(...params)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

/** Runs `fn` with statements matching `pattern` failing (with `message`), against the same local D1. */
function failing(pattern: RegExp, message?: string): { probe: D1Probe; env: Env } {
  const probe = probeD1(env.DB);
  probe.failWhen(pattern, message);
  return { probe, env: { ...env, DB: probe.db } };
}

describe("fault injection: registration", () => {
  const h = harness();
  const PASSWORD = "Tr0ub4dor&3-horse";

  it.each([
    ["the user insert", /insert into "users"/i],
    ["the profile insert", /insert into "profiles"/i],
    ["the activity insert", /insert into "activity"/i],
  ])("leaves no account behind when %s fails", async (_name, pattern) => {
    const email = `${unique("fault")}@example.com`;
    const f = failing(pattern);
    const res = await h.call("POST", "/api/v1/auth/register", { email, password: PASSWORD }, { env: f.env });
    expectCleanServerError(res);
    expect(f.probe.statements.some((s) => pattern.test(s))).toBe(true);
    expect(await count("SELECT COUNT(*) AS n FROM users WHERE email = ?", email)).toBe(0);
    expect(await count("SELECT COUNT(*) AS n FROM profiles p WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p.user_id)")).toBe(0);

    // Nothing is left to conflict with: the same registration works once the fault is gone.
    expect((await h.call("POST", "/api/v1/auth/register", { email, password: PASSWORD })).status).toBe(201);
  });

  it("logs the failed query without its bound values (emails, hashes)", async () => {
    const email = `${unique("logged")}@example.com`;
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      // The duplicate check is a single statement: drizzle wraps its failure with every parameter.
      const res = await h.call("POST", "/api/v1/auth/register", { email, password: PASSWORD }, { env: failing(/from "users"/i).env });
      expectCleanServerError(res);
      const lines = logged.mock.calls.map((args) => args.map(String).join(" ")).join("\n");
      expect(lines).toContain("query failed: select");
      expect(lines).not.toContain(email);
    } finally {
      logged.mockRestore();
    }
  });
});

describe("fault injection: login", () => {
  const h = harness();

  it("issues no token when the refresh-token insert fails", async () => {
    const u = await h.registerVerified();
    const f = failing(/insert into "refresh_tokens"/i);
    const res = await h.call("POST", "/api/v1/auth/login", { email: u.email, password: u.password }, { env: f.env });
    expectCleanServerError(res);
    expect(res.text).not.toContain("access_token");
    expect(await count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ?", u.id)).toBe(0);
  });
});

describe("fault injection: refresh rotation", () => {
  const h = harness();

  it.each([
    ["the successor insert", /insert into "refresh_tokens"/i],
    ["the parent revocation", /update "refresh_tokens"/i],
  ])("keeps the old token valid and issues none when %s fails", async (_name, pattern) => {
    const u = await h.signedInUser();
    const f = failing(pattern);
    const res = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token }, { env: f.env });
    expectCleanServerError(res);
    expect(f.probe.statements.some((s) => pattern.test(s))).toBe(true);
    expect(await count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ?", u.id)).toBe(1);
    expect(await count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL", u.id)).toBe(1);

    // The client retries with the same token and it works (no false reuse detection).
    const retry = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token });
    expect(retry.status).toBe(200);
  });
});

describe("fault injection: password change", () => {
  const h = harness();
  const NEW_PASSWORD = "Brand-new-passw0rd-42";

  it.each([
    ["the password update", /update "users" set .*"password_hash"/i],
    ["the revocation of other sessions", /update "refresh_tokens"/i],
    ["the activity insert", /insert into "activity"/i],
  ])("keeps the old password and sessions when %s fails", async (_name, pattern) => {
    const u = await h.signedInUser();
    const other = await h.login(u.email, u.password);
    h.clock.advance(1000);
    const f = failing(pattern);
    const res = await h.call(
      "POST",
      "/api/v1/me/password",
      { current_password: u.password, new_password: NEW_PASSWORD },
      { token: u.access_token, env: f.env },
    );
    expectCleanServerError(res);
    expect(f.probe.statements.some((s) => pattern.test(s))).toBe(true);

    expect((await h.call("GET", "/api/v1/me", undefined, { token: other.access_token })).status).toBe(200);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: other.refresh_token })).status).toBe(200);
    expect((await h.call("POST", "/api/v1/auth/login", { email: u.email, password: u.password })).status).toBe(200);
    expect((await h.call("POST", "/api/v1/auth/login", { email: u.email, password: NEW_PASSWORD })).status).toBe(401);
  });
});

describe("fault injection: account deletion", () => {
  const h = harness();

  it("leaves the account intact when the delete fails", async () => {
    const u = await h.signedInUser();
    const f = failing(/delete from "users"/i);
    const res = await h.call("DELETE", "/api/v1/me", { current_password: u.password }, { token: u.access_token, env: f.env });
    expectCleanServerError(res);
    expect(f.probe.statements.some((s) => /delete from "users"/i.test(s))).toBe(true);

    expect(await count("SELECT COUNT(*) AS n FROM users WHERE id = ?", u.id)).toBe(1);
    expect(await count("SELECT COUNT(*) AS n FROM profiles WHERE user_id = ?", u.id)).toBe(1);
    expect(await count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL", u.id)).toBe(1);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: u.access_token })).status).toBe(200);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token })).status).toBe(200);
  });
});

describe("fault injection: a right password whose change fails is no failed guess", () => {
  const h = harness();
  const identifierFailures = async (email: string) =>
    count("SELECT count AS n FROM rate_limits WHERE key = ?", `loginFailuresPerIdentifier:email:${email}`);

  it.each([
    [
      "a password change",
      "POST",
      "/api/v1/me/password",
      /update "users" set .*"password_hash"/i,
      { new_password: "Brand-new-passw0rd-42" },
    ],
    ["an email change", "PATCH", "/api/v1/me", /insert into "pending_notices"/i, { email: "moved@example.com" }],
    ["an account deletion", "DELETE", "/api/v1/me", /delete from "users"/i, {}],
  ] as const)("%s failing in the database gives the password check back, so ten of them lock nobody out", async (_name, method, path, pattern, body) => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const u = await h.signedInUser();
    const f = failing(pattern);
    for (let i = 0; i < 10; i++) {
      const res = await h.call(method, path, { ...body, current_password: u.password }, { token: u.access_token, env: f.env });
      expectCleanServerError(res);
    }
    expect(await identifierFailures(u.email)).toBe(0);
    expect((await h.call("POST", "/api/v1/auth/login", { email: u.email, password: u.password })).status).toBe(200);
  });

  it("an email change failing in the database uses none of the account's email changes, nor the address's code mails", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const u = await h.signedInUser();
    const email = `${unique("moved")}@example.com`;
    const f = failing(/insert into "pending_notices"/i);
    for (let i = 0; i < 6; i++) {
      expectCleanServerError(
        await h.call("PATCH", "/api/v1/me", { email, current_password: u.password }, { token: u.access_token, env: f.env }),
      );
    }
    expect((await h.call("GET", "/api/v1/me", undefined, { token: u.access_token })).json.user.pending_email).toBeNull();
    const again = await h.call("PATCH", "/api/v1/me", { email, current_password: u.password }, { token: u.access_token });
    expect(again.status, again.text).toBe(200);
  });
});

describe("races with account deletion", () => {
  const h = harness();

  it("a wrong password re-entered while the account is deleted is a 401, not a 500: its failure is recorded only for an account that exists", async () => {
    const u = await h.signedInUser();
    const probe = probeD1(env.DB);
    // Between reserving the check and recording the failure, the account goes (deleted elsewhere).
    const meanwhile = probe.onceBefore(/insert into "rate_limits"/i, async () => {
      await env.DB.prepare("DELETE FROM users WHERE id = ?").bind(u.id).run();
    });
    const res = await h.call(
      "PATCH",
      "/api/v1/me",
      { email: `${unique("moved")}@example.com`, current_password: "not-the-password-1" },
      { token: u.access_token, env: { ...env, DB: probe.db } },
    );
    expect(meanwhile.done).toBe(true);
    expect(res.status).toBe(401);
    expect(res.json.code).toBe("invalid_current_password");
    expect(await count("SELECT COUNT(*) AS n FROM activity WHERE user_id = ?", u.id)).toBe(0);
  });
});

/**
 * An outage is not a bug: D1's errors that its documentation says to retry (a lost connection, a
 * database restarting, overload; developers.cloudflare.com/d1/observability/debug-d1) answer 503
 * with `Retry-After`, so a client or the website says "try again" rather than "something broke".
 * Anything else stays a 500. Either way the error is logged and nothing is half-written.
 */
describe("a D1 outage", () => {
  const h = harness();
  const OUTAGES = [
    "D1_ERROR: Network connection lost.",
    "D1_ERROR: D1 DB reset because its code was updated.",
    "D1_ERROR: Internal error while starting up D1 DB storage caused object to be reset.",
    "D1 DB is overloaded. Requests queued for too long.",
    "D1_ERROR: Cannot resolve D1 DB due to transient issue on remote node.",
  ];

  function expectOutage(res: Result) {
    expectCleanServerError(res);
    expect(res.status).toBe(503);
    expect(res.json.code).toBe("database_unavailable");
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(res.text).not.toMatch(/network connection|overloaded|reset/i);
  }

  it.each(OUTAGES)("answers 503 with Retry-After to a sign-in when D1 says %j", async (message) => {
    const u = await h.registerVerified();
    const f = failing(/from "users"/i, message);
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      const res = await h.call("POST", "/api/v1/auth/login", { email: u.email, password: u.password }, { env: f.env });
      expectOutage(res);
      // Still logged: an outage is for the operator to see.
      expect(logged.mock.calls.map((args) => args.map(String).join(" ")).join("\n")).toContain('"event":"error"');
    } finally {
      logged.mockRestore();
    }
    expect(await count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ?", u.id)).toBe(0);
  });

  it("answers 503 to a registration whose batch D1 could not run, and leaves no account", async () => {
    const email = `${unique("outage")}@example.com`;
    const f = failing(/insert into "users"/i, OUTAGES[2]);
    expectOutage(await h.call("POST", "/api/v1/auth/register", { email, password: "Tr0ub4dor&3-horse" }, { env: f.env }));
    expect(await count("SELECT COUNT(*) AS n FROM users WHERE email = ?", email)).toBe(0);
  });

  it("answers 503 to an authenticated read, and to a public one", async () => {
    const u = await h.signedInUser();
    expectOutage(await h.call("GET", "/api/v1/me", undefined, { token: u.access_token, env: failing(/from "users"/i, OUTAGES[0]).env }));
    expectOutage(await h.call("GET", "/api/v1/profiles", undefined, { env: failing(/from "users"/i, OUTAGES[3]).env }));
  });

  it("keeps a 500 for a failure D1 does not call transient (a bug, a broken query)", async () => {
    const u = await h.registerVerified();
    for (const message of [undefined, 'D1_ERROR: near "SELEC": syntax error: SQLITE_ERROR']) {
      const res = await h.call(
        "POST",
        "/api/v1/auth/login",
        { email: u.email, password: u.password },
        { env: failing(/from "users"/i, message).env },
      );
      expectCleanServerError(res);
      expect(res.status).toBe(500);
      expect(res.headers.get("retry-after")).toBeNull();
    }
  });

  it("shows the website's visitor a 503 page that says to try again", async () => {
    const res = await h.call("GET", "/people", undefined, { env: failing(/from "users"/i, OUTAGES[0]).env });
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(res.text).toMatch(/try again/i);
    expect(res.text).not.toMatch(/network connection|D1_ERROR/i);
  });
});
