/**
 * Code guessing has an account-wide ceiling beyond the tries per code, and the code endpoints do
 * the same work for unknown and existing addresses (the same statements, in the same round
 * trips), so neither their answers nor their work tell which accounts exist.
 */
import { env } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RATE_LIMITS } from "../../src/lib/rate-limit";
import { type D1Probe, probeD1 } from "../d1-wrap";
import { harness, setConfig, unique } from "../helpers";
import { capturingEnv, codeInMail, mailsFor } from "../mail-helpers";

const OTP = "/api/v1/auth/otp";
const LOGIN_OTP = "/api/v1/auth/login/otp";

describe("code guessing", () => {
  const h = harness();
  const cap = capturingEnv();

  afterEach(() => setConfig("otp_max_failures_per_day", undefined));

  async function mailedCode(email: string, purpose: "login" | "reset_password" | "verify_email") {
    h.clock.advance(61_000);
    const from = cap.sent.length;
    expect((await h.call("POST", OTP, { email, purpose }, { env: cap.env })).status).toBe(202);
    const [mail] = await mailsFor(cap.sent.slice(from), h.clock);
    return codeInMail(mail as { text: string });
  }
  const wrongFor = (code: string) => (code === "000000" ? "111111" : "000000");

  it("refuses every code of an address past the daily ceiling, the right one too, and logs the lockout", async () => {
    await setConfig("otp_max_failures_per_day", "6");
    const u = await h.registerVerified();
    // Two codes, each killed after its five tries, plus one more wrong guess: six failures.
    for (let round = 0; round < 2; round++) {
      const code = await mailedCode(u.email, "login");
      const guesses = round === 0 ? 5 : 1;
      for (let i = 0; i < guesses; i++)
        expect((await h.call("POST", LOGIN_OTP, { email: u.email, code: wrongFor(code) })).status).toBe(400);
    }
    const fresh = await mailedCode(u.email, "login");
    const refused = await h.call("POST", LOGIN_OTP, { email: u.email, code: fresh });
    expect(refused.status).toBe(400);
    expect(refused.json.code).toBe("invalid_code");
    // Reset and verification by code are refused too.
    const reset = await mailedCode(u.email, "reset_password");
    expect(
      (await h.call("POST", "/api/v1/auth/password/reset", { email: u.email, code: reset, new_password: "brand-new-pass-99" })).status,
    ).toBe(400);
    const locked = await env.DB.prepare("SELECT details FROM activity WHERE user_id = ? AND type = 'otp_locked'")
      .bind(u.id)
      .all<{ details: string }>();
    expect(locked.results.map((r) => JSON.parse(r.details))).toEqual([{ purpose: "login" }]);

    // A day later the window has passed.
    h.clock.advance(24 * 3600_000);
    const later = await mailedCode(u.email, "login");
    expect((await h.call("POST", LOGIN_OTP, { email: u.email, code: later })).status).toBe(200);
  });

  const rows = async (query: string, ...params: unknown[]) =>
    (
      await env.DB.prepare(query)
        .bind(...params)
        .first<{ n: number }>()
    )?.n ?? 0;

  it("limits code checks per client IP, and a refused check spends nothing of the address", async () => {
    const u = await h.registerVerified();
    const code = await mailedCode(u.email, "login");
    const client = { "cf-connecting-ip": "198.51.100.66" };
    const limit = RATE_LIMITS.codeChecksPerIp.limit;
    for (let i = 0; i < limit; i++) {
      const res = await h.call(
        "POST",
        "/api/v1/auth/verify-email",
        { email: `${unique("spray")}@example.org`, code: "000000", password: "any-password-at-all" },
        { headers: client },
      );
      expect(res.status).toBe(400);
    }
    const over = await h.call("POST", LOGIN_OTP, { email: u.email, code: wrongFor(code) }, { headers: client });
    expect(over.status).toBe(429);
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0);
    // The refused guess used none of the code's tries, and counted nothing against the address.
    expect(await rows("SELECT attempts AS n FROM otp_codes WHERE user_id = ? AND consumed_at IS NULL", u.id)).toBe(0);
    expect(await rows("SELECT COUNT(*) AS n FROM rate_limits WHERE key = ?", `otpFailuresPerDay:${u.email}`)).toBe(0);
    expect((await h.call("POST", LOGIN_OTP, { email: u.email, code })).status).toBe(200);
  });

  it("writes no history past the ceiling", async () => {
    const u = await h.registerVerified();
    for (let i = 0; i < 30; i++) expect((await h.call("POST", LOGIN_OTP, { email: u.email, code: "000000" })).status).toBe(400);
    expect(await rows("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'login_failed'", u.id)).toBe(20);
  });

  it("holds the daily ceiling against guesses sent at once: each is counted before it is compared", async () => {
    const u = await h.registerVerified();
    for (let i = 0; i < 19; i++) expect((await h.call("POST", LOGIN_OTP, { email: u.email, code: "000000" })).status).toBe(400);
    const login = await mailedCode(u.email, "login");
    const reset = await mailedCode(u.email, "reset_password");
    // Nine guesses arrive together: each batch is held until all nine have sent theirs.
    const probe = probeD1(env.DB);
    let arrived = 0;
    let release!: () => void;
    const together = new Promise<void>((resolve) => {
      release = resolve;
    });
    probe.beforeBatch(async (statements) => {
      if (!statements.some((sql) => /update "otp_codes" set "attempts"/i.test(sql))) return;
      if (++arrived === 9) release();
      await together;
    });
    const racing = { ...env, DB: probe.db };
    const guesses: [string, Record<string, string>][] = [
      ...Array.from({ length: 3 }, () => [LOGIN_OTP, { email: u.email, code: wrongFor(login) }] as [string, Record<string, string>]),
      ...Array.from(
        { length: 5 },
        () =>
          ["/api/v1/auth/password/reset", { email: u.email, code: wrongFor(reset), new_password: "brand-new-pass-99" }] as [
            string,
            Record<string, string>,
          ],
      ),
      [LOGIN_OTP, { email: u.email, code: login }],
    ];
    const results = await Promise.all(guesses.map(([path, body]) => h.call("POST", path, body, { env: racing })));
    // One more try fits under the ceiling of 20: at most one of the nine is compared, so at most one wrong code counts.
    expect(results.filter((r) => r.status === 200).length).toBeLessThanOrEqual(1);
    // The tries the two codes had compared (they were mailed after the 19 wrong guesses).
    const compared = await rows(
      "SELECT COALESCE(SUM(attempts), 0) AS n FROM otp_codes WHERE user_id = ? AND purpose IN ('login', 'reset_password')",
      u.id,
    );
    expect(compared).toBeLessThanOrEqual(1);
  });

  it("a right code forgives its own try: it does not count towards the ceiling", async () => {
    const u = await h.registerVerified();
    for (let i = 0; i < 19; i++) expect((await h.call("POST", LOGIN_OTP, { email: u.email, code: "000000" })).status).toBe(400);
    for (let i = 0; i < 3; i++) {
      const code = await mailedCode(u.email, "login");
      expect((await h.call("POST", LOGIN_OTP, { email: u.email, code })).status).toBe(200);
    }
    expect(await rows("SELECT count AS n FROM rate_limits WHERE key = ?", `otpFailuresPerDay:${u.email}`)).toBe(19);
  });

  it("the ceiling defaults to 20 a day and is a validated config key, at most 100 (NIST SP 800-63B's bound on failed attempts)", async () => {
    const { access_token } = await staffToken();
    const res = await h.call("GET", "/api/v1/admin/config", undefined, { token: access_token });
    const entry = res.json.config.find((e: { key: string }) => e.key === "otp_max_failures_per_day");
    expect(entry).toMatchObject({ value: 20, default: 20, min: 1, max: 100 });
    const over = await h.call("PATCH", "/api/v1/admin/config", { otp_max_failures_per_day: 101 }, { token: access_token });
    expect(over.status).toBe(400);
  });

  async function staffToken() {
    const u = await h.registerVerified();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(u.id).run();
    return h.login(u.email, u.password);
  }
});

describe("code endpoints do the same work for unknown and existing addresses", () => {
  const h = harness();
  let probe: D1Probe;
  let probed: Env;

  beforeEach(() => {
    probe = probeD1(env.DB);
    probed = { ...env, DB: probe.db };
  });

  /** The statements (SQL text) and round trips of one request. */
  async function work(method: string, path: string, body: unknown) {
    probe.reset();
    // One request id for both, so the answers can be compared byte for byte (it is the only part meant to differ).
    const res = await h.call(method, path, body, { env: probed, headers: { "x-request-id": "enumeration-probe" } });
    return { status: res.status, text: res.text, statements: [...probe.statements], roundTrips: probe.roundTrips };
  }

  const cases: [string, string, (email: string) => unknown][] = [
    ["POST /auth/otp (login)", OTP, (email) => ({ email, purpose: "login" })],
    ["POST /auth/otp (verify_email)", OTP, (email) => ({ email, purpose: "verify_email" })],
    ["POST /auth/login/otp", LOGIN_OTP, (email) => ({ email, code: "123456" })],
    ["POST /auth/verify-email", "/api/v1/auth/verify-email", (email) => ({ email, code: "123456", password: "any-password-at-all" })],
    ["POST /auth/password/reset", "/api/v1/auth/password/reset", (email) => ({ email, code: "123456", new_password: "brand-new-pass-99" })],
    ["POST /auth/login", "/api/v1/auth/login", (email) => ({ email, password: "wrong-password-123" })],
  ];

  /** An existing address in each state an account can be in: the answers and the work must not tell any of them from none. */
  const accounts: Record<string, () => Promise<string>> = {
    verified: async () => (await h.registerVerified()).email,
    unverified: async () => {
      const email = `${unique("unverified")}@example.com`;
      expect((await h.call("POST", "/api/v1/auth/register", { email, password: "Tr0ub4dor&3-horse" })).status).toBe(201);
      return email;
    },
    disabled: async () => {
      const u = await h.registerVerified();
      await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(u.id).run();
      return u.email;
    },
  };

  for (const [name, path, body] of cases) {
    for (const [state, existing] of Object.entries(accounts)) {
      it(`${name}, ${state} account: same answer, same statements, same round trips`, async () => {
        const known = await existing();
        const unknown = `${unique("nobody")}@example.com`;
        // Past the registration code's minute, so both may be mailed a code.
        h.clock.advance(61_000);
        const a = await work("POST", path, body(known));
        const b = await work("POST", path, body(unknown));
        expect(b.status).toBe(a.status);
        expect(b.text).toBe(a.text);
        expect(b.statements).toEqual(a.statements);
        expect(b.roundTrips).toBe(a.roundTrips);
        expect(a.roundTrips).toBeGreaterThan(0);
      });
    }
  }
});
