import { env } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { OTP_SECRET_MIN_LENGTH, setupError } from "../../src/middleware/readiness";
import { BASE, harness, unique } from "../helpers";

/**
 * A worker started without its secrets or migrations (no .dev.vars, a fresh database) names the
 * missing piece in one log line, once, and answers 503 problem documents, never a stack trace.
 */
describe("an incomplete setup", () => {
  const h = harness();
  let errors: MockInstance<typeof console.error>;
  beforeEach(() => {
    errors = vi.spyOn(console, "error").mockImplementation(() => {});
  });
  afterEach(() => errors.mockRestore());

  const logLines = () => errors.mock.calls.map((args) => args.map(String).join(" "));
  /** The problems the `setup` lines name (one JSON line each, see src/lib/log.ts). */
  const setupProblems = () =>
    logLines().flatMap((line) => {
      const record = JSON.parse(line) as { event: string; problem?: string };
      return record.event === "setup" ? [String(record.problem)] : [];
    });
  /** Lines that say more than "not set up": free-form text, an unexpected error's, or any that carries an error and its stack. */
  const unexpected = () =>
    logLines().filter((line) => !line.startsWith('{"') || JSON.parse(line).event === "error" || "error" in JSON.parse(line));
  const register = (e: Env) =>
    h.call("POST", "/api/v1/auth/register", { email: `${unique("setup")}@example.com`, password: "Tr0ub4dor&3-horse" }, { env: e });

  async function expectNotSetUp(e: Env, named: RegExp) {
    const probes = [await h.call("GET", "/health", undefined, { env: e }), await h.call("GET", "/health/ready", undefined, { env: e })];
    for (const res of [await register(e), await register(e), ...probes]) {
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(res.json).toMatchObject({ status: 503, code: "service_unavailable" });
      expect(res.json.detail).toMatch(/not fully set up/);
      // Not a moment's wait: an operator has to act, so no Retry-After invites clients to hammer.
      expect(res.headers.get("retry-after")).toBeNull();
    }
    // One line naming the problem, for four requests; no stack trace.
    expect(setupProblems().filter((problem) => named.test(problem))).toHaveLength(1);
    expect(unexpected()).toEqual([]);
  }

  it("names a missing JWT_KEYS (not 'invalid JSON') and answers 503", async () => {
    const { JWT_KEYS: _, ...rest } = env;
    await expectNotSetUp(rest as Env, /^JWT_KEYS is missing: .*npm run dev/);
  });

  it("names a malformed JWT_KEYS and says what is wrong with it", async () => {
    await expectNotSetUp({ ...env, JWT_KEYS: "{not json" }, /^JWT_KEYS is malformed \(it is not valid JSON\)/);
    await expectNotSetUp({ ...env, JWT_KEYS: '{"keys":[{"kty":"RSA"}]}' }, /^JWT_KEYS is malformed \(it must hold Ed25519/);
  });

  it("names a missing or too short OTP_SECRET", async () => {
    const { OTP_SECRET: _, ...rest } = env;
    await expectNotSetUp(rest as Env, /^OTP_SECRET is missing/);
    await expectNotSetUp(
      { ...env, OTP_SECRET: "short" },
      new RegExp(`^OTP_SECRET is malformed \\(5 characters, at least ${OTP_SECRET_MIN_LENGTH}`),
    );
  });

  it("names an unmigrated database, at /health and at the first request that queries it", async () => {
    // A database with no tables, as before `wrangler d1 migrations apply`: every query fails the way D1 does.
    const noSuchTable = (sql: string) =>
      new Error(`D1_ERROR: no such table: ${/(?:from|into|update)\s+"?(\w+)/i.exec(sql)?.[1] ?? "users"}: SQLITE_ERROR`);
    const statement = (sql: string): D1PreparedStatement => {
      const fail = async () => {
        if (/sqlite_master|^SELECT 1$/.test(sql)) return { results: [], success: true, meta: {} };
        throw noSuchTable(sql);
      };
      return { bind: () => statement(sql), all: fail, first: fail, run: fail, raw: fail } as unknown as D1PreparedStatement;
    };
    const empty = {
      prepare: statement,
      batch: async (list: unknown[]) => {
        throw noSuchTable(String((list[0] as { sql?: string })?.sql ?? ""));
      },
    } as unknown as D1Database;
    const e = { ...env, DB: empty };

    const health = await h.call("GET", "/health", undefined, { env: e });
    expect(health.status).toBe(503);
    expect(setupProblems().filter((l) => /^the D1 database lacks tables \(users, .*\): apply the migrations/.test(l))).toHaveLength(1);

    for (const res of [await register(e), await register(e)]) {
      expect(res.status).toBe(503);
      expect(res.json).toMatchObject({ code: "service_unavailable" });
    }
    expect(setupProblems().filter((l) => /^the D1 database has no table \w+: apply the migrations/.test(l))).toHaveLength(1);
    expect(unexpected()).toEqual([]);

    // Readiness too: a load balancer must not send traffic to a worker whose every API request fails.
    const ready = await h.call("GET", "/health/ready", undefined, { env: e });
    expect(ready.status).toBe(503);
    expect(ready.json.checks).toMatchObject({ d1: "failed" });
    expect(logLines().some((l) => /"event":"ready\.check".*the database lacks tables \(users, /.test(l))).toBe(true);
  });

  it("names a database behind on its migrations (a column missing) and answers 503, not 500", async () => {
    // What D1 and SQLite say of a write and of a read that need a column a later migration adds.
    const error = new Error("query failed", {
      cause: new Error("D1_ERROR: table admin_audit has no column named actor_email: SQLITE_ERROR"),
    });
    expect(setupError(error)).toMatchObject({ status: 503, code: "service_unavailable" });
    expect(setupError(new Error("D1_ERROR: no such column: admin_audit.actor_email: SQLITE_ERROR"))).toMatchObject({ status: 503 });
    expect(setupError(new Error("something else"))).toBeNull();
    expect(
      setupProblems().filter((l) => /^the D1 database has no column admin_audit\.actor_email: apply the migrations/.test(l)),
    ).toHaveLength(1);
  });

  it("keeps the website closed too, with a 503 page, rather than keying its codes and forms with a weak secret", async () => {
    const weak = { ...env, OTP_SECRET: "too-short-for-a-key" }; // a length no other test logs (one line per isolate)
    const pages = [
      await h.app.fetch(new Request(`${BASE}/login`), weak),
      await h.app.fetch(new Request(`${BASE}/registration`), weak),
      await h.app.fetch(
        new Request(`${BASE}/password/forgot`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin" },
          body: "email=someone%40example.com",
        }),
        weak,
      ),
    ];
    for (const res of pages) {
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toMatch(/^text\/html/);
      expect(res.headers.get("set-cookie")).toBeNull();
      expect(await res.text()).not.toMatch(/_csrf/);
    }
    expect(setupProblems().filter((l) => /^OTP_SECRET is malformed/.test(l))).toHaveLength(1);
    expect(unexpected()).toEqual([]);
  });

  it("answers /health 200 and registers normally when everything is in place", async () => {
    expect((await h.call("GET", "/health")).status).toBe(200);
    expect((await register(env)).status).toBe(201);
    expect(setupProblems()).toEqual([]);
  });
});
