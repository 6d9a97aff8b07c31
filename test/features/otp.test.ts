import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { OtpPurpose } from "../../src/features/otp/otp.purposes";
import { probeD1 } from "../d1-wrap";
import { harness, setConfig, unique } from "../helpers";
import { capturingEnv, codeInMail, mailsFor } from "../mail-helpers";

const PASSWORD = "Tr0ub4dor&3-horse";
const NEW_PASSWORD = "correct-horse-battery-staple-42";

describe("email one-time codes", () => {
  const h = harness();
  const cap = capturingEnv();

  afterEach(async () => {
    vi.restoreAllMocks();
    await setConfig("require_email_verification", undefined);
    await setConfig("otp_ttl", undefined);
    await setConfig("otp_max_attempts", undefined);
  });

  async function registerUnverified() {
    const email = `${unique("otp")}@example.com`;
    const from = cap.sent.length;
    const res = await h.call("POST", "/api/v1/auth/register", { email, password: PASSWORD }, { env: cap.env });
    expect(res.status).toBe(201);
    return { id: res.json.user.id as string, email, password: PASSWORD, queued: cap.sent.slice(from) };
  }

  /**
   * Requests a code: `queued` is what went on the mail queue (a message for every request, known
   * address or not: the same work), `mails` what the real consumer then actually sent.
   */
  async function requestCode(email: string, purpose: OtpPurpose, headers: Record<string, string> = {}) {
    const from = cap.sent.length;
    const res = await h.call("POST", "/api/v1/auth/otp", { email, purpose }, { env: cap.env, headers });
    const queued = cap.sent.slice(from);
    return { res, queued, mails: await mailsFor(queued, h.clock) };
  }

  /**
   * Requests a code and returns it as read from the delivered mail. First a minute passes: the
   * address got its registration code moments ago, and one code a minute is mailed per address.
   */
  async function mailedCode(email: string, purpose: OtpPurpose) {
    h.clock.advance(61_000);
    const { res, mails } = await requestCode(email, purpose);
    expect(res.status).toBe(202);
    expect(mails).toHaveLength(1);
    return codeInMail(mails[0]!);
  }

  // One request id throughout, so problem documents compare equal when only the request differs.
  const verify = (email: string, code: string, password = PASSWORD) =>
    h.call("POST", "/api/v1/auth/verify-email", { email, code, password }, { headers: { "x-request-id": "otp-verify" } });
  const loginWithCode = (email: string, code: string, opts = {}) => h.call("POST", "/api/v1/auth/login/otp", { email, code }, opts);
  const reset = (email: string, code: string, newPassword = NEW_PASSWORD) =>
    h.call("POST", "/api/v1/auth/password/reset", { email, code, new_password: newPassword });
  const passwordLogin = (email: string, password: string) => h.call("POST", "/api/v1/auth/login", { email, password });

  async function activityOf(userId: string) {
    const { results } = await env.DB.prepare("SELECT type, details FROM activity WHERE user_id = ? ORDER BY created_at, rowid")
      .bind(userId)
      .all<{ type: string; details: string }>();
    return results.map((r) => ({ type: r.type, details: JSON.parse(r.details) as Record<string, unknown> }));
  }

  it("activates a new account with the mailed code, once and only once", async () => {
    const user = await registerUnverified();
    expect(user.queued).toHaveLength(1);
    const message = user.queued[0]!;
    expect(message).toMatchObject({ kind: "otp", to: user.email, purpose: "verify_email" });
    expect(message.code).toMatch(/^\d{6}$/);
    expect(Date.parse(message.expires_at) - h.clock.now()).toBe(600_000);

    const [mail] = await mailsFor(user.queued, h.clock);
    const code = codeInMail(mail!);
    expect(code).toBe(message.code);
    expect(mail!.html).toContain(code);
    expect(mail!.text).toContain("10 minutes");

    const before = await passwordLogin(user.email, user.password);
    expect(before.status).toBe(403);
    expect(before.json.code).toBe("email_not_verified");

    const first = await verify(user.email, code);
    expect(first.status).toBe(200);
    expect(first.json.user).toMatchObject({ id: user.id, email: user.email, email_verified: true });

    const again = await verify(user.email, code);
    expect(again.status).toBe(400);
    expect(again.json.code).toBe("invalid_code");

    expect((await passwordLogin(user.email, user.password)).status).toBe(200);
    const history = await activityOf(user.id);
    expect(history.map((a) => a.type)).toEqual(["register", "email_verified", "login"]);
    expect(JSON.stringify(history)).not.toContain(code);
  });

  it("stores only a keyed hash of the code", async () => {
    const user = await registerUnverified();
    const code = user.queued[0]!.code;
    const row = await env.DB.prepare("SELECT * FROM otp_codes WHERE id = ?").bind(user.queued[0]!.code_id).first<Record<string, unknown>>();
    expect(row).not.toBeNull();
    expect(row!.code_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(code);
  });

  it("answers every wrong combination with the same invalid_code problem", async () => {
    const user = await registerUnverified();
    const code = user.queued[0]!.code;
    const wrongDigits = String((Number(code) + 1) % 1_000_000).padStart(6, "0");
    const answers = [
      await verify(user.email, wrongDigits),
      await verify(`${unique("nobody")}@example.com`, code),
      await verify(user.email, "abc"),
      await verify(user.email, ""),
    ];
    for (const res of answers) {
      expect(res.status).toBe(400);
      expect(res.json).toEqual(answers[0]!.json);
    }
    expect(answers[0]!.json.code).toBe("invalid_code");
    // Three wrong guesses (the malformed ones cost nothing) leave the code alive under the default limit of 5.
    expect((await verify(user.email, ` ${code.slice(0, 3)} ${code.slice(3)} `)).status).toBe(200);
  });

  it("invalidates the previous code when a new one is requested", async () => {
    const user = await registerUnverified();
    const oldCode = user.queued[0]!.code;
    h.clock.advance(61_000);
    const newCode = await mailedCode(user.email, "verify_email");
    expect(newCode).not.toBe(oldCode);
    expect((await verify(user.email, oldCode)).status).toBe(400);
    expect((await verify(user.email, newCode)).status).toBe(200);
  });

  it("never accepts a code for another purpose than the one it was issued for", async () => {
    const user = await registerUnverified();
    const verifyCode = user.queued[0]!.code;
    expect((await loginWithCode(user.email, verifyCode)).status).toBe(400);
    expect((await reset(user.email, verifyCode)).status).toBe(400);

    const loginCode = await mailedCode(user.email, "login");
    expect((await verify(user.email, loginCode)).status).toBe(400);
    expect((await reset(user.email, loginCode)).status).toBe(400);

    // The misdirected attempts spent nothing of the right codes.
    expect((await loginWithCode(user.email, loginCode)).status).toBe(200);
  });

  it("resets a forgotten password: the new one works, the old one and every session are dead", async () => {
    const user = await h.signedInUser();
    const code = await mailedCode(user.email, "reset_password");
    // Access tokens issued in the same second as the cut-off survive (whole-second iat); move past it.
    h.clock.advance(2_000);

    const res = await reset(user.email, code);
    expect(res.status).toBe(204);

    expect((await passwordLogin(user.email, user.password)).status).toBe(401);
    expect((await passwordLogin(user.email, NEW_PASSWORD)).status).toBe(200);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: user.refresh_token })).status).toBe(401);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: user.access_token })).status).toBe(401);
    expect((await reset(user.email, code, "another-fine-password-77")).status).toBe(400);

    const history = await activityOf(user.id);
    expect(history.filter((a) => a.type === "password_reset")).toHaveLength(1);
    const revoked = await env.DB.prepare("SELECT revoked_reason FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NOT NULL")
      .bind(user.id)
      .all<{ revoked_reason: string }>();
    expect(revoked.results.map((r) => r.revoked_reason)).toContain("password_reset");
  });

  it("voids every other code of the account with a reset: a login code mailed before no longer signs in", async () => {
    const user = await registerUnverified();
    const verifyCode = user.queued[0]!.code;
    const loginCode = await mailedCode(user.email, "login");
    const resetCode = await mailedCode(user.email, "reset_password");

    expect((await reset(user.email, resetCode)).status).toBe(204);
    expect((await loginWithCode(user.email, loginCode)).json).toMatchObject({ code: "invalid_code" });
    expect((await verify(user.email, verifyCode)).json).toMatchObject({ code: "invalid_code" });
    const live = await env.DB.prepare("SELECT COUNT(*) AS n FROM otp_codes WHERE user_id = ? AND consumed_at IS NULL")
      .bind(user.id)
      .first<{ n: number }>();
    expect(live?.n).toBe(0);

    // A code asked for after the reset works as ever.
    expect((await loginWithCode(user.email, await mailedCode(user.email, "login"))).status).toBe(200);
  });

  it.each([
    ["a password change", "POST", "/api/v1/me/password"],
    ["logout-all", "POST", "/api/v1/auth/logout-all"],
  ] as const)("voids every outstanding code with %s, which ends every other sign-in too", async (_, method, path) => {
    const user = await h.registerVerified();
    const loginCode = await mailedCode(user.email, "login");
    const resetCode = await mailedCode(user.email, "reset_password");
    const body = path.endsWith("/password") ? { current_password: user.password, new_password: "a-fresh-secret-value-62" } : undefined;
    const { access_token } = await h.login(user.email, user.password);
    expect((await h.call(method, path, body, { token: access_token })).status).toBe(204);
    expect((await loginWithCode(user.email, loginCode)).json).toMatchObject({ code: "invalid_code" });
    expect((await reset(user.email, resetCode)).json).toMatchObject({ code: "invalid_code" });
    // A code asked for afterwards works as ever.
    expect((await loginWithCode(user.email, await mailedCode(user.email, "login"))).status).toBe(200);
  });

  it("refuses a weak new password and keeps the code usable", async () => {
    const user = await h.registerVerified();
    const code = await mailedCode(user.email, "reset_password");
    const weak = await reset(user.email, code, "password");
    expect(weak.status).toBe(400);
    expect(weak.json.code).toBe("validation_failed");
    expect(weak.json.errors[0].path).toBe("new_password");
    const likeUsername = await reset(user.email, code, `${user.username}1`);
    expect(likeUsername.status).toBe(400);
    expect(likeUsername.json.code).toBe("validation_failed");
    expect((await reset(user.email, code)).status).toBe(204);
  });

  it("gives back what a right code took when the new password is refused after it (too like the username)", async () => {
    await setConfig("otp_max_attempts", "2");
    const user = await h.registerVerified();
    const code = await mailedCode(user.email, "reset_password");
    // More refusals than the code has tries: each came with the right code, none was a guess.
    for (let i = 0; i < 3; i++) expect((await reset(user.email, code, `${user.username}${i}`)).status).toBe(400);
    const row = await env.DB.prepare("SELECT attempts FROM otp_codes WHERE user_id = ? AND purpose = 'reset_password'")
      .bind(user.id)
      .first<{ attempts: number }>();
    expect(row?.attempts).toBe(0);
    expect((await reset(user.email, code)).status).toBe(204);
  });

  it("expires a code after otp_ttl seconds", async () => {
    await setConfig("otp_ttl", "120");
    const user = await registerUnverified();
    expect(Date.parse(user.queued[0]!.expires_at) - h.clock.now()).toBe(120_000);
    h.clock.advance(120_000);
    const res = await verify(user.email, user.queued[0]!.code);
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("invalid_code");
  });

  it("accepts a code until just before it expires", async () => {
    const user = await registerUnverified();
    h.clock.advance(599_000);
    expect((await verify(user.email, user.queued[0]!.code)).status).toBe(200);
  });

  it("kills a code after otp_max_attempts wrong guesses, even for the right digits", async () => {
    await setConfig("otp_max_attempts", "3");
    const user = await registerUnverified();
    const code = user.queued[0]!.code;
    const wrong = code === "000000" ? "111111" : "000000";
    for (let i = 0; i < 3; i++) expect((await verify(user.email, wrong)).status).toBe(400);
    expect((await verify(user.email, code)).status).toBe(400);
    const row = await env.DB.prepare("SELECT attempts, consumed_at FROM otp_codes WHERE id = ?")
      .bind(user.queued[0]!.code_id)
      .first<{ attempts: number; consumed_at: number | null }>();
    expect(row).toEqual({ attempts: 3, consumed_at: expect.any(Number) });
  });

  it("accepts the right digits after fewer wrong guesses than the limit", async () => {
    await setConfig("otp_max_attempts", "3");
    const user = await registerUnverified();
    const code = user.queued[0]!.code;
    const wrong = code === "000000" ? "111111" : "000000";
    for (let i = 0; i < 2; i++) expect((await verify(user.email, wrong)).status).toBe(400);
    expect((await verify(user.email, code)).status).toBe(200);
  });

  it("signs in with a mailed code, verifies the email, and answers like password login", async () => {
    const user = await registerUnverified();
    const code = await mailedCode(user.email, "login");
    const res = await loginWithCode(user.email, code);
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(Object.keys(res.json).sort()).toEqual(["access_token", "expires_in", "refresh_expires_in", "refresh_token", "token_type"]);
    expect(res.json.token_type).toBe("Bearer");

    const me = await h.call("GET", "/api/v1/me", undefined, { token: res.json.access_token });
    expect(me.status).toBe(200);
    expect(me.json.user).toMatchObject({ email_verified: true, has_password: false });
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: res.json.refresh_token })).status).toBe(200);
    // The password set before the address was proven may be a squatter's: it no longer works.
    expect((await passwordLogin(user.email, PASSWORD)).status).toBe(401);
    expect((await loginWithCode(user.email, code)).status).toBe(400);

    const history = await activityOf(user.id);
    const login = history.find((a) => a.type === "login");
    expect(login?.details.method).toBe("otp");
    expect(history.some((a) => a.type === "email_verified")).toBe(true);
    expect(history.some((a) => a.type === "otp_requested" && a.details.purpose === "login")).toBe(true);
  });

  it("records a failed code sign-in without the code", async () => {
    const user = await h.registerVerified();
    const code = await mailedCode(user.email, "login");
    const wrong = code === "000000" ? "111111" : "000000";
    expect((await loginWithCode(user.email, wrong)).status).toBe(400);
    const failed = (await activityOf(user.id)).filter((a) => a.type === "login_failed");
    expect(failed).toEqual([{ type: "login_failed", details: { method: "otp" } }]);
    expect(JSON.stringify(failed)).not.toContain(wrong);
  });

  it("lets exactly one of several concurrent uses of a code through", async () => {
    const user = await h.registerVerified();
    const code = await mailedCode(user.email, "login");
    const results = await Promise.all([loginWithCode(user.email, code), loginWithCode(user.email, code), loginWithCode(user.email, code)]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 400, 400]);
    const sessions = await env.DB.prepare("SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ?")
      .bind(user.id)
      .first<{ n: number }>();
    expect(sessions?.n).toBe(1);
  });

  it("writes nothing when the sign-in batch fails, so the code still works afterwards", async () => {
    const user = await h.registerVerified();
    const code = await mailedCode(user.email, "login");
    const probe = probeD1(env.DB);
    probe.failWhen(/insert into "refresh_tokens"/i);
    const failed = await loginWithCode(user.email, code, { env: { ...env, DB: probe.db } });
    expect(failed.status).toBe(500);
    expect((await activityOf(user.id)).some((a) => a.type === "login")).toBe(false);
    expect((await loginWithCode(user.email, code)).status).toBe(200);
  });

  it("does not let a disabled account sign in with a code, nor mail it one", async () => {
    const user = await h.registerVerified();
    const code = await mailedCode(user.email, "login");
    await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(user.id).run();
    const res = await loginWithCode(user.email, code);
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("invalid_code");
    h.clock.advance(61_000);
    const again = await requestCode(user.email, "login");
    expect(again.res.status).toBe(202);
    expect(again.mails).toHaveLength(0);
  });

  it("answers an unknown email with the identical 202 and the same queued work, and mails nothing", async () => {
    const known = await h.registerVerified();
    h.clock.advance(61_000);
    const forKnown = await requestCode(known.email, "reset_password");
    const forUnknown = await requestCode(`${unique("nobody")}@example.com`, "reset_password");
    expect(forKnown.res.status).toBe(202);
    expect(forUnknown.res.status).toBe(202);
    expect(forUnknown.res.text).toBe(forKnown.res.text);
    expect(forKnown.queued).toHaveLength(1);
    expect(forUnknown.queued).toHaveLength(1);
    expect(forKnown.mails).toHaveLength(1);
    expect(forUnknown.mails).toHaveLength(0);
  });

  it("mails no activation code to an account that is already verified", async () => {
    const user = await h.registerVerified();
    h.clock.advance(61_000);
    const { res, mails } = await requestCode(user.email, "verify_email");
    expect(res.status).toBe(202);
    expect(mails).toHaveLength(0);
  });

  it("throttles codes silently: one a minute per address and purpose, five an hour per address whatever the purpose", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const user = await registerUnverified();
    // A sign-in code right after the registration's activation code is mailed: another purpose.
    expect((await requestCode(user.email, "login")).mails).toHaveLength(1);
    // A second activation code in the same minute is not.
    const tooSoon = await requestCode(user.email, "verify_email");
    expect(tooSoon.res.status).toBe(202);
    expect(tooSoon.mails).toHaveLength(0);
    const line = warn.mock.calls.map((c) => String(c[0])).find((l) => l.includes('"event":"otp.throttled"'));
    expect(line).toBeDefined();
    expect(line).not.toContain(user.email);
    expect(line).not.toContain(user.id);

    // Three more, a minute apart, fill the hour's five (with the registration's and the sign-in's).
    for (let i = 0; i < 3; i++) {
      h.clock.advance(61_000);
      expect((await requestCode(user.email, i % 2 ? "login" : "reset_password")).mails).toHaveLength(1);
    }
    h.clock.advance(61_000);
    const overHour = await requestCode(user.email, "verify_email");
    expect(overHour.res.status).toBe(202);
    expect(overHour.mails).toHaveLength(0);

    h.clock.advance(60 * 60_000);
    expect((await requestCode(user.email, "login")).mails).toHaveLength(1);
  });

  it("limits code requests per client IP with 429 and Retry-After", async () => {
    const headers = { "cf-connecting-ip": "198.51.100.77" };
    for (let i = 0; i < 30; i++) {
      expect((await requestCode(`${unique("ip")}@example.com`, "login", headers)).res.status).toBe(202);
    }
    const { res } = await requestCode(`${unique("ip")}@example.com`, "login", headers);
    expect(res.status).toBe(429);
    expect(res.json.code).toBe("rate_limited");
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  it("does not spend an address's mail allowance on requests refused for their client IP", async () => {
    const victim = await h.registerVerified();
    h.clock.advance(61_000);
    const attacker = { "cf-connecting-ip": "198.51.100.23" };
    for (let i = 0; i < 30; i++) expect((await requestCode(`${unique("x")}@example.org`, "login", attacker)).res.status).toBe(202);
    // Past its own limit, the client asks for the victim's codes: every request refused.
    for (let minute = 0; minute < 3; minute++) {
      for (const purpose of ["login", "reset_password", "verify_email"] as const) {
        expect((await requestCode(victim.email, purpose, attacker)).res.status).toBe(429);
      }
      h.clock.advance(61_000);
    }
    // The owner, from elsewhere, still gets their code.
    const own = await requestCode(victim.email, "reset_password", { "cf-connecting-ip": "192.0.2.50" });
    expect(own.res.status).toBe(202);
    expect(own.mails).toHaveLength(1);
  });

  it("verifies new accounts at once and mails nothing when require_email_verification is false", async () => {
    await setConfig("require_email_verification", "false");
    const user = await registerUnverified();
    expect(user.queued).toHaveLength(0);
    const row = await env.DB.prepare("SELECT email_verified FROM users WHERE id = ?").bind(user.id).first<{ email_verified: number }>();
    expect(row?.email_verified).toBe(1);
    expect((await passwordLogin(user.email, PASSWORD)).status).toBe(200);
  });

  it("documents the code endpoints and their invalid_code answer in the OpenAPI document", async () => {
    const doc = (await h.call("GET", "/openapi.json")).json;
    for (const path of ["/api/v1/auth/otp", "/api/v1/auth/verify-email", "/api/v1/auth/login/otp", "/api/v1/auth/password/reset"]) {
      expect(doc.paths[path]?.post?.responses?.["400"]).toBeDefined();
    }
    expect(Object.keys(doc.paths["/api/v1/auth/otp"].post.responses)).toContain("202");
    expect(Object.keys(doc.paths["/api/v1/auth/otp"].post.responses)).toContain("429");
  });

  it("refuses unknown fields and a bad purpose with a validation problem", async () => {
    const extra = await h.call("POST", "/api/v1/auth/otp", { email: "a@example.com", purpose: "login", admin: true });
    expect(extra.status).toBe(400);
    expect(extra.json.code).toBe("validation_failed");
    const purpose = await h.call("POST", "/api/v1/auth/otp", { email: "a@example.com", purpose: "everything" });
    expect(purpose.status).toBe(400);
    expect(purpose.json.errors[0].path).toBe("purpose");
  });
});
