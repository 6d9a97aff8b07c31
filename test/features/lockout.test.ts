/**
 * Lockout that cannot be outrun: every password check is reserved on the per-account and per-IP
 * counters before the password is verified, so parallel guesses verify at most the limit, and
 * unknown addresses are locked out exactly like real ones.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { RATE_LIMITS } from "../../src/lib/rate-limit";
import { harness, unique } from "../helpers";

const LOGIN = "/api/v1/auth/login";
const LIMIT = RATE_LIMITS.loginFailuresPerIdentifier.limit;

describe("password lockout", () => {
  const h = harness();

  async function parallelWrongLogins(email: string, n: number) {
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => h.call("POST", LOGIN, { email, password: `wrong-password-${i}-x` })),
    );
    return results.map((r) => r.status);
  }

  for (const n of [20, 30]) {
    it(`checks at most ${LIMIT} of ${n} parallel wrong guesses; the right password is then 429 too`, async () => {
      const u = await h.registerVerified();
      const statuses = await parallelWrongLogins(u.email, n);
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(LIMIT);
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(n - LIMIT);
      expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
      // Every verified guess left a login_failed entry: no more than the limit were checked.
      const failed = await env.DB.prepare("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'login_failed'")
        .bind(u.id)
        .first<{ n: number }>();
      expect(failed?.n).toBeLessThanOrEqual(LIMIT);
      const right = await h.call("POST", LOGIN, { email: u.email, password: u.password });
      expect(right.status).toBe(429);
      expect(Number(right.headers.get("retry-after"))).toBeGreaterThan(0);
    });
  }

  it("locks out an unknown address exactly like an existing one", async () => {
    const known = await h.registerVerified();
    const unknown = `${unique("nobody")}@example.com`;
    const forKnown: number[] = [];
    const forUnknown: number[] = [];
    for (let i = 0; i <= LIMIT; i++) {
      forKnown.push((await h.call("POST", LOGIN, { email: known.email, password: "wrong-password-1x" })).status);
      forUnknown.push((await h.call("POST", LOGIN, { email: unknown, password: "wrong-password-1x" })).status);
    }
    expect(forUnknown).toEqual(forKnown);
    expect(forKnown.at(-1)).toBe(429);
    // One request id for both, so the answers can be compared byte for byte (it is the only part meant to differ).
    const sameId = { headers: { "x-request-id": "lockout-probe" } };
    const a = await h.call("POST", LOGIN, { email: known.email, password: "wrong-password-1x" }, sameId);
    const b = await h.call("POST", LOGIN, { email: unknown, password: "wrong-password-1x" }, sameId);
    expect(b.text).toBe(a.text);
    expect(b.headers.get("retry-after")).toBe(a.headers.get("retry-after"));
  });

  it("keeps a lockout to the identifier it was earned on, so it cannot tell which address belongs to a public username", async () => {
    const u = await h.registerVerified();
    const stranger = await h.registerVerified();
    // The username is public (the directory); the address is not. Locking the username out...
    for (let i = 0; i < LIMIT; i++) {
      expect((await h.call("POST", LOGIN, { username: u.username, password: "wrong-password-1x" })).status).toBe(401);
    }
    expect((await h.call("POST", LOGIN, { username: u.username, password: u.password })).status).toBe(429);
    // ...says nothing of the account's address: a guess at it answers as a guess at anyone's.
    const sameId = { headers: { "x-request-id": "lockout-link" } };
    const guess = await h.call("POST", LOGIN, { email: u.email, password: "wrong-password-1x" }, sameId);
    const other = await h.call("POST", LOGIN, { email: stranger.email, password: "wrong-password-1x" }, sameId);
    expect(guess.status).toBe(401);
    expect(guess.text).toBe(other.text);
    // And the owner still signs in with the address.
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
  });

  it("a sign-in by address leaves the username's lockout as it was, so its end cannot be timed to link the two", async () => {
    const u = await h.registerVerified();
    for (let i = 0; i < LIMIT; i++) {
      expect((await h.call("POST", LOGIN, { username: u.username, password: "wrong-password-1x" })).status).toBe(401);
    }
    // The owner signs in by address (with the password, then with a code): the username stays
    // locked until its own window ends, as any locked username would.
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
    expect((await h.call("POST", LOGIN, { username: u.username, password: "wrong-password-1x" })).status).toBe(429);
    const counter = await env.DB.prepare("SELECT count FROM rate_limits WHERE key = ?")
      .bind(`loginFailuresPerIdentifier:username:${u.username}`)
      .first<{ count: number }>();
    expect(counter?.count).toBe(LIMIT + 1);
  });

  it("a successful login forgives the account's failures and does not count against its IP", async () => {
    const u = await h.registerVerified();
    const ip = { "cf-connecting-ip": "198.51.100.201" };
    for (let i = 0; i < LIMIT - 1; i++) {
      expect((await h.call("POST", LOGIN, { email: u.email, password: "wrong-password-1x" }, { headers: ip })).status).toBe(401);
    }
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password }, { headers: ip })).status).toBe(200);
    const counter = (key: string) => env.DB.prepare("SELECT count FROM rate_limits WHERE key = ?").bind(key).first<{ count: number }>();
    expect(await counter(`loginFailuresPerIdentifier:email:${u.email}`)).toBeNull();
    expect((await counter("loginFailuresPerIp:198.51.100.201"))?.count).toBe(LIMIT - 1);
  });

  it("re-entering a password (change, delete, email change) shares the counter of the account's address with login", async () => {
    const u = await h.signedInUser();
    const attempts = [
      () =>
        h.call(
          "POST",
          "/api/v1/me/password",
          { current_password: "wrong-password-1x", new_password: "new-pass-word-42" },
          { token: u.access_token },
        ),
      () => h.call("DELETE", "/api/v1/me", { current_password: "wrong-password-1x" }, { token: u.access_token }),
      () =>
        h.call(
          "PATCH",
          "/api/v1/me",
          { email: `${unique("x")}@example.com`, current_password: "wrong-password-1x" },
          { token: u.access_token },
        ),
    ];
    for (let i = 0; i < LIMIT; i++) expect((await attempts[i % 3]!()).status).toBe(401);
    for (const attempt of attempts) expect((await attempt()).status).toBe(429);
    // Locked for login by address too, the right password included; and the account is still there.
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(429);
    const deleteRight = await h.call("DELETE", "/api/v1/me", { current_password: u.password }, { token: u.access_token });
    expect(deleteRight.status).toBe(429);
    expect(await env.DB.prepare("SELECT id FROM users WHERE id = ?").bind(u.id).first()).not.toBeNull();
  });

  it("parallel wrong current passwords on POST /me/password check at most the limit", async () => {
    const u = await h.signedInUser();
    const statuses = (
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          h.call(
            "POST",
            "/api/v1/me/password",
            { current_password: `wrong-${i}-password`, new_password: "new-pass-word-42" },
            { token: u.access_token },
          ),
        ),
      )
    ).map((r) => r.status);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(LIMIT);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(20 - LIMIT);
  });

  it("does not count a sign-in refused for its client IP against the account it names", async () => {
    const victims = [await h.registerVerified(), await h.registerVerified()];
    const attacker = { "cf-connecting-ip": "198.51.100.44" };
    const ipLimit = RATE_LIMITS.loginFailuresPerIp.limit;
    for (let i = 0; i < ipLimit; i++) {
      const res = await h.call(
        "POST",
        LOGIN,
        { email: `${unique("x")}@example.org`, password: "wrong-password-1x" },
        { headers: attacker },
      );
      expect(res.status).toBe(401);
    }
    for (const v of victims) {
      for (let i = 0; i < LIMIT; i++) {
        const res = await h.call("POST", LOGIN, { email: v.email, password: "wrong-password-1x" }, { headers: attacker });
        expect(res.status).toBe(429); // never checked
      }
    }
    for (const v of victims) {
      const own = await h.call("POST", LOGIN, { email: v.email, password: v.password }, { headers: { "cf-connecting-ip": "192.0.2.77" } });
      expect(own.status).toBe(200);
    }
  });

  it("gives back a right password's reservation when the change it authorised fails for another reason", async () => {
    const u = await h.signedInUser();
    const other = await h.registerVerified();
    const changes = RATE_LIMITS.emailChangesPerAccount.limit;
    for (let i = 0; i < LIMIT + 2; i++) {
      // The right password, but the address is taken (409, then 429 past the account's email
      // changes: each answer about a taken address counts as one), or the new password is refused (400).
      const taken = await h.call("PATCH", "/api/v1/me", { email: other.email, current_password: u.password }, { token: u.access_token });
      expect(taken.status).toBe(i < changes ? 409 : 429);
      const weak = await h.call(
        "POST",
        "/api/v1/me/password",
        { current_password: u.password, new_password: "12345678" },
        { token: u.access_token },
      );
      expect(weak.status).toBe(400);
    }
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
  });

  it("does not count the right password of an unverified account as a failure: its owner may try again and again", async () => {
    const email = `${unique("unverified")}@example.com`;
    const password = "registrants-own-secret-7";
    expect((await h.call("POST", "/api/v1/auth/register", { email, password })).status).toBe(201);
    const ip = { headers: { "cf-connecting-ip": "198.51.100.140" } };
    for (let i = 0; i < LIMIT + 2; i++) {
      const res = await h.call("POST", LOGIN, { email, password }, ip);
      expect(res.status, `attempt ${i + 1}`).toBe(403);
      expect(res.json.code).toBe("email_not_verified");
    }
    // Wrong guesses are still counted, from where the right ones left the counter: at zero.
    for (let i = 0; i < LIMIT; i++) expect((await h.call("POST", LOGIN, { email, password: `wrong-password-${i}-x` })).status).toBe(401);
    expect((await h.call("POST", LOGIN, { email, password })).status).toBe(429);
  });

  it("unlocks when the window has passed", async () => {
    const u = await h.registerVerified();
    await parallelWrongLogins(u.email, LIMIT + 1);
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(429);
    h.clock.advance(RATE_LIMITS.loginFailuresPerIdentifier.windowMs);
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
  });
});
