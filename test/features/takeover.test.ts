/**
 * The account-takeover paths around email ownership, each written as the attack an outsider would
 * try. Every test here failed before the fix it names; each now shows the attack failing.
 */
import { env } from "cloudflare:test";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { OtpPurpose } from "../../src/features/otp/otp.purposes";
import { harness, setConfig, unique } from "../helpers";
import { capturingEnv, codeInMail, mailsFor } from "../mail-helpers";

const PASSWORD = "Tr0ub4dor&3-horse";
const ATTACKER_PASSWORD = "attacker-owns-this-9";

describe("account takeover through email ownership", () => {
  const h = harness();
  const cap = capturingEnv();

  // The tests move the clock past the one-code-a-minute limit; keep access tokens alive meanwhile.
  beforeAll(() => setConfig("access_token_ttl", "3600"));
  afterAll(() => setConfig("access_token_ttl", undefined));
  afterEach(() => setConfig("require_email_verification", undefined));

  /** Requests a code by mail and returns it as the mailbox's owner reads it. */
  async function mailedCode(email: string, purpose: OtpPurpose) {
    // One code a minute is mailed per address (the registration's included): let a minute pass.
    h.clock.advance(61_000);
    const from = cap.sent.length;
    const res = await h.call("POST", "/api/v1/auth/otp", { email, purpose }, { env: cap.env });
    expect(res.status).toBe(202);
    const mails = await mailsFor(cap.sent.slice(from), h.clock);
    expect(mails).toHaveLength(1);
    expect(mails[0]?.to).toBe(email);
    return codeInMail(mails[0] as { text: string });
  }

  /** Registers `email` with `password`; returns the account's id and the activation code mailed there. */
  async function registerWithActivation(email: string, password: string) {
    const from = cap.sent.length;
    const registered = await h.call("POST", "/api/v1/auth/register", { email, password }, { env: cap.env });
    expect(registered.status).toBe(201);
    const [activation] = await mailsFor(cap.sent.slice(from), h.clock);
    return { id: registered.json.user.id as string, code: codeInMail(activation as { text: string }) };
  }

  const userRow = (id: string) =>
    env.DB.prepare("SELECT email, email_verified FROM users WHERE id = ?").bind(id).first<{ email: string; email_verified: number }>();

  it("a code mailed to the old address does not sign in to, or verify, a new address", async () => {
    const attacker = await h.signedInUser({ password: ATTACKER_PASSWORD });
    const victim = `${unique("victim")}@example.com`;
    const code = await mailedCode(attacker.email, "login");

    const changed = await h.call(
      "PATCH",
      "/api/v1/me",
      { email: victim, current_password: ATTACKER_PASSWORD },
      { token: attacker.access_token, env: cap.env },
    );
    expect(changed.status).toBe(200);
    const signIn = await h.call("POST", "/api/v1/auth/login/otp", { email: victim, code });
    expect(signIn.status).toBe(400);
    expect(signIn.json.code).toBe("invalid_code");
    // The account still has its old, verified address; the victim's is only pending.
    expect(await userRow(attacker.id)).toEqual({ email: attacker.email, email_verified: 1 });
  });

  it("a reset code mailed to the old address does not reset through a new address", async () => {
    const attacker = await h.signedInUser({ password: ATTACKER_PASSWORD });
    const victim = `${unique("victim")}@example.com`;
    const code = await mailedCode(attacker.email, "reset_password");
    await h.call(
      "PATCH",
      "/api/v1/me",
      { email: victim, current_password: ATTACKER_PASSWORD },
      { token: attacker.access_token, env: cap.env },
    );
    const reset = await h.call("POST", "/api/v1/auth/password/reset", { email: victim, code, new_password: "brand-new-password-77" });
    expect(reset.status).toBe(400);
    expect(await userRow(attacker.id)).toEqual({ email: attacker.email, email_verified: 1 });
  });

  it("pre-registration hijacking: the owner's code sign-in ends the password set before verification", async () => {
    const victim = `${unique("victim")}@example.com`;
    // The attacker registers the victim's address and cannot sign in yet.
    const registered = await h.call("POST", "/api/v1/auth/register", { email: victim, password: ATTACKER_PASSWORD }, { env: cap.env });
    expect(registered.status).toBe(201);
    expect((await h.call("POST", "/api/v1/auth/login", { email: victim, password: ATTACKER_PASSWORD })).status).toBe(403);

    // Later the real owner signs in with an emailed code.
    const code = await mailedCode(victim, "login");
    const owner = await h.call("POST", "/api/v1/auth/login/otp", { email: victim, code });
    expect(owner.status).toBe(200);

    // The attacker's password no longer opens the account; the owner's session works.
    const attacker = await h.call("POST", "/api/v1/auth/login", { email: victim, password: ATTACKER_PASSWORD });
    expect(attacker.status).toBe(401);
    const me = await h.call("GET", "/api/v1/me", undefined, { token: owner.json.access_token });
    expect(me.status).toBe(200);
    expect(me.json.user).toMatchObject({ email: victim, email_verified: true, has_password: false });
  });

  it("pre-registration hijacking: the activation code alone, entered by the mailbox's owner, confirms nobody's password", async () => {
    const victim = `${unique("victim")}@example.com`;
    // The attacker registers the victim's address; the activation code goes to the victim.
    const { id, code } = await registerWithActivation(victim, ATTACKER_PASSWORD);

    // The victim, who did not register, enters the code they were mailed: without the password
    // chosen at registration it confirms nothing (before, it confirmed the attacker's password).
    const withoutPassword = await h.call("POST", "/api/v1/auth/verify-email", { email: victim, code });
    expect(withoutPassword.status).toBe(400);
    expect(withoutPassword.json.errors).toEqual([expect.objectContaining({ path: "password" })]);
    const guessed = await h.call("POST", "/api/v1/auth/verify-email", { email: victim, code, password: "a-guess-at-it-12" });
    expect(guessed.status).toBe(401);
    expect(guessed.json.code).toBe("invalid_credentials");
    expect(await userRow(id)).toEqual({ email: victim, email_verified: 0 });
    expect((await h.call("POST", "/api/v1/auth/login", { email: victim, password: ATTACKER_PASSWORD })).status).toBe(403);

    // The owner takes the address with a sign-in code instead, which ends the attacker's password.
    const login = await mailedCode(victim, "login");
    expect((await h.call("POST", "/api/v1/auth/login/otp", { email: victim, code: login })).status).toBe(200);
    expect((await h.call("POST", "/api/v1/auth/login", { email: victim, password: ATTACKER_PASSWORD })).status).toBe(401);
  });

  it("the registrant confirms their address with the activation code and their password; a wrong password spends nothing of the code", async () => {
    const email = `${unique("registrant")}@example.com`;
    const { id, code } = await registerWithActivation(email, PASSWORD);

    // More wrong passwords than the code has tries (5), fewer than the account's lockout (10):
    // the password is judged by the lockout, as at login; the right code stays usable and is not
    // counted against the address's daily ceiling of wrong codes.
    for (let i = 0; i < 6; i++) {
      const wrong = await h.call("POST", "/api/v1/auth/verify-email", { email, code, password: `not-my-password-${i}` });
      expect(wrong.status).toBe(401);
    }
    const counted = await env.DB.prepare("SELECT count FROM rate_limits WHERE key = ?").bind(`otpFailuresPerDay:${email}`).first();
    expect(counted ?? { count: 0 }).toEqual({ count: 0 });
    const confirmed = await h.call("POST", "/api/v1/auth/verify-email", { email, code, password: PASSWORD });
    expect(confirmed.status).toBe(200);
    expect(confirmed.json.user).toMatchObject({ id: id, email_verified: true });
    expect((await h.call("POST", "/api/v1/auth/login", { email, password: PASSWORD })).status).toBe(200);
    // Spent: the same code and password again are refused.
    expect((await h.call("POST", "/api/v1/auth/verify-email", { email, code, password: PASSWORD })).json.code).toBe("invalid_code");
    // The wrong password is in the account's history as a failed password check.
    const { results } = await env.DB.prepare("SELECT type, details FROM activity WHERE user_id = ? ORDER BY created_at, rowid")
      .bind(id)
      .all<{ type: string; details: string }>();
    expect(results.map((r) => r.type)).toEqual(["register", ...Array(6).fill("login_failed"), "email_verified", "login"]);
    expect(JSON.parse(results[1]?.details ?? "{}")).toEqual({ method: "password", verification: true });
  });

  it("a confirmation that lost the race for its code gives back its password check", async () => {
    const email = `${unique("registrant")}@example.com`;
    const { code } = await registerWithActivation(email, PASSWORD);
    // A double submission: both check the code and the password, one spends the code.
    const answers = await Promise.all(
      [1, 2].map(() =>
        h.call(
          "POST",
          "/api/v1/auth/verify-email",
          { email, code, password: PASSWORD },
          { headers: { "cf-connecting-ip": "198.51.100.41" } },
        ),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, 400]);
    // Neither right password is left counted as a failure, of the account or of the client.
    const counters = await env.DB.prepare("SELECT key, count FROM rate_limits WHERE key IN (?, ?) AND count > 0")
      .bind(`loginFailuresPerIdentifier:email:${email}`, "loginFailuresPerIp:198.51.100.41")
      .all();
    expect(counters.results).toEqual([]);
  });

  it("pre-registration hijacking: sessions the squatter held before verification end", async () => {
    // The squatter registers while verification is required, then the operator turns it off:
    // the unverified squatter can now sign in with the password and keep a session.
    const victim = `${unique("victim")}@example.com`;
    const registered = await h.call("POST", "/api/v1/auth/register", { email: victim, password: ATTACKER_PASSWORD }, { env: cap.env });
    expect(registered.status).toBe(201);
    expect(registered.json.user.email_verified).toBe(false);
    await setConfig("require_email_verification", "false");
    const squatter = await h.login(victim, ATTACKER_PASSWORD);

    const code = await mailedCode(victim, "login");
    expect((await h.call("POST", "/api/v1/auth/login/otp", { email: victim, code })).status).toBe(200);

    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: squatter.refresh_token })).status).toBe(401);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: squatter.access_token })).status).toBe(401);
    expect((await h.call("POST", "/api/v1/auth/login", { email: victim, password: ATTACKER_PASSWORD })).status).toBe(401);
  });

  it("a stolen access token of an account without a password cannot give it one: the first password takes a code from the mailbox", async () => {
    // The owner's account has no password: its address was claimed with a sign-in code.
    const owner = `${unique("owner")}@example.com`;
    await registerWithActivation(owner, PASSWORD);
    const signIn = await h.call("POST", "/api/v1/auth/login/otp", { email: owner, code: await mailedCode(owner, "login") });
    expect(signIn.status).toBe(200);
    const stolen = signIn.json.access_token as string;

    // Before, this answered 204: the thief then had a password of their own to move the address
    // with (PATCH /me takes it as the current password), and the owner's other sign-ins ended.
    const bare = await h.call("POST", "/api/v1/me/password", { new_password: ATTACKER_PASSWORD }, { token: stolen });
    expect(bare.status).toBe(400);
    expect(bare.json.errors).toEqual([expect.objectContaining({ path: "code" })]);
    const guessed = await h.call("POST", "/api/v1/me/password", { new_password: ATTACKER_PASSWORD, code: "123456" }, { token: stolen });
    expect(guessed.status).toBe(400);
    expect(guessed.json.code).toBe("invalid_code");
    expect((await h.call("POST", "/api/v1/auth/login", { email: owner, password: ATTACKER_PASSWORD })).status).toBe(401);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: stolen })).json.user.has_password).toBe(false);

    // The owner, who reads the mailbox, sets one with a reset code mailed there.
    const code = await mailedCode(owner, "reset_password");
    expect((await h.call("POST", "/api/v1/me/password", { new_password: "owners-own-passw0rd", code }, { token: stolen })).status).toBe(
      204,
    );
    expect((await h.call("POST", "/api/v1/auth/login", { email: owner, password: "owners-own-passw0rd" })).status).toBe(200);
  });

  it("claiming an address by email change: the pending address reserves nothing, and the owner gets their own account", async () => {
    const attacker = await h.signedInUser({ password: ATTACKER_PASSWORD });
    const victim = `${unique("victim")}@example.com`;
    const claim = await h.call(
      "PATCH",
      "/api/v1/me",
      { email: victim, current_password: ATTACKER_PASSWORD },
      { token: attacker.access_token, env: cap.env },
    );
    expect(claim.status).toBe(200);
    expect(claim.json.user).toMatchObject({ email: attacker.email, pending_email: victim });

    // The owner can still register the address, and signs in to their own account.
    const registered = await h.call("POST", "/api/v1/auth/register", { email: victim, password: PASSWORD }, { env: cap.env });
    expect(registered.status).toBe(201);
    expect(registered.json.user.id).not.toBe(attacker.id);
    const code = await mailedCode(victim, "login");
    const owner = await h.call("POST", "/api/v1/auth/login/otp", { email: victim, code });
    expect(owner.status).toBe(200);
    const me = await h.call("GET", "/api/v1/me", undefined, { token: owner.json.access_token });
    expect(me.json.user.id).toBe(registered.json.user.id);

    // The attacker's account never gets the address, even with its own pending change's code.
    const attackerMe = await h.call("GET", "/api/v1/me", undefined, { token: attacker.access_token });
    expect(attackerMe.json.user.email).toBe(attacker.email);
  });
});
