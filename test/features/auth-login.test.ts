import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { argon2id } from "../../src/features/auth/argon2id";
import { base64urlEncode } from "../../src/lib/crypto";
import { decodeJwt, harness, setConfig, unique } from "../helpers";

const LOGIN = "/api/v1/auth/login";
const FIFTEEN_MINUTES = 15 * 60_000;

async function storedHash(userId: string) {
  const row = await env.DB.prepare("SELECT password_hash FROM users WHERE id = ?").bind(userId).first<{ password_hash: string }>();
  return row?.password_hash ?? null;
}

/** A PBKDF2 PHC hash made outside the app, as a row migrated from another system would hold. */
async function pbkdf2Phc(password: string, iterations: number) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
  return `$pbkdf2-sha256$i=${iterations}$${base64urlEncode(salt)}$${base64urlEncode(new Uint8Array(bits))}`;
}

describe("POST /auth/login", () => {
  const h = harness();

  afterEach(async () => {
    await setConfig("require_email_verification", undefined);
  });

  it("signs in by email with an RFC 6749 token response that is never cached", async () => {
    const u = await h.registerVerified();
    const res = await h.call("POST", LOGIN, { email: u.email, password: u.password });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      access_token: expect.any(String),
      token_type: "Bearer",
      expires_in: 30,
      refresh_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      refresh_expires_in: 2_592_000,
    });
    expect(res.headers.get("cache-control")).toBe("no-store");
    const { header, payload } = decodeJwt(res.json.access_token);
    expect(header).toMatchObject({ alg: "EdDSA", typ: "at+jwt", kid: expect.any(String) });
    expect(payload).toMatchObject({ sub: u.id, iss: env.JWT_ISSUER, aud: env.JWT_AUDIENCE, jti: expect.any(String) });
    expect(payload.exp - payload.iat).toBe(30);
  });

  it("signs in by username, whatever its case", async () => {
    const u = await h.registerVerified();
    const res = await h.call("POST", LOGIN, { username: u.username.toUpperCase(), password: u.password });
    expect(res.status).toBe(200);
    expect(decodeJwt(res.json.access_token).payload.sub).toBe(u.id);
  });

  it("signs in with the email in another case and with surrounding spaces", async () => {
    const u = await h.registerVerified();
    const res = await h.call("POST", LOGIN, { email: ` ${u.email.toUpperCase()} `, password: u.password });
    expect(res.status).toBe(200);
  });

  it("stores only the SHA-256 of the refresh token, with the client's IP and user agent", async () => {
    const u = await h.registerVerified();
    const res = await h.call(
      "POST",
      LOGIN,
      { email: u.email, password: u.password },
      { headers: { "cf-connecting-ip": "192.0.2.44", "x-forwarded-for": "10.9.9.9", "user-agent": "latchkey-test/1.0" } },
    );
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(res.json.refresh_token)));
    const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    const rows = await env.DB.prepare("SELECT * FROM refresh_tokens WHERE user_id = ?").bind(u.id).all<Record<string, unknown>>();
    expect(rows.results).toHaveLength(1);
    const row = rows.results[0] as Record<string, unknown>;
    expect(row.token_hash).toBe(hex);
    expect(JSON.stringify(row)).not.toContain(res.json.refresh_token);
    expect(row.ip).toBe("192.0.2.44");
    expect(row.user_agent).toBe("latchkey-test/1.0");
    expect(row.parent_id).toBeNull();
  });

  it("answers the same 401 body for a wrong password, an unknown user and a disabled user", async () => {
    const u = await h.registerVerified();
    const disabled = await h.registerVerified();
    await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(disabled.id).run();

    // One request id for all, so the answers can be compared byte for byte (it is the only part meant to differ).
    const sameId = { headers: { "x-request-id": "login-probe" } };
    const wrongPassword = await h.call("POST", LOGIN, { email: u.email, password: "not-the-password-9" }, sameId);
    const unknownEmail = await h.call("POST", LOGIN, { email: `${unique("ghost")}@example.com`, password: u.password }, sameId);
    const unknownUsername = await h.call("POST", LOGIN, { username: unique("ghost"), password: u.password }, sameId);
    const disabledUser = await h.call("POST", LOGIN, { email: disabled.email, password: disabled.password }, sameId);

    for (const res of [wrongPassword, unknownEmail, unknownUsername, disabledUser]) {
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(res.text).toBe(wrongPassword.text);
    }
    expect(wrongPassword.json.code).toBe("invalid_credentials");
  });

  it("requires exactly one of email and username", async () => {
    const u = await h.registerVerified();
    const both = await h.call("POST", LOGIN, { email: u.email, username: u.username, password: u.password });
    const neither = await h.call("POST", LOGIN, { password: u.password });
    expect(both.status).toBe(400);
    expect(neither.status).toBe(400);
  });

  it("answers 403 email_not_verified for an unverified account only after the right password", async () => {
    await setConfig("require_email_verification", "true");
    const email = `${unique("unverified")}@example.com`;
    const password = "Tr0ub4dor&3-horse";
    const reg = await h.call("POST", "/api/v1/auth/register", { email, password });
    expect(reg.status).toBe(201);
    expect(reg.json.user.email_verified).toBe(false);

    const wrong = await h.call("POST", LOGIN, { email, password: "wrong-password-77" });
    expect(wrong.status).toBe(401);
    expect(wrong.json.code).toBe("invalid_credentials");

    const right = await h.call("POST", LOGIN, { email, password });
    expect(right.status).toBe(403);
    expect(right.json.code).toBe("email_not_verified");
  });

  it("lets an unverified account sign in when verification is not required", async () => {
    await setConfig("require_email_verification", "false");
    const email = `${unique("optional")}@example.com`;
    const password = "Tr0ub4dor&3-horse";
    const reg = await h.call("POST", "/api/v1/auth/register", { email, password });
    expect(reg.json.user.email_verified).toBe(true);
    await env.DB.prepare("UPDATE users SET email_verified = 0 WHERE email = ?").bind(email).run();
    const res = await h.call("POST", LOGIN, { email, password });
    expect(res.status).toBe(200);
  });

  it("throttles an identifier after 10 failures in 15 minutes, the right password included, until the window passes", async () => {
    const u = await h.registerVerified();
    for (let i = 0; i < 10; i++) {
      const res = await h.call("POST", LOGIN, { email: u.email, password: `wrong-password-${i}` });
      expect(res.status).toBe(401);
    }
    const blocked = await h.call("POST", LOGIN, { email: u.email, password: u.password });
    expect(blocked.status).toBe(429);
    expect(blocked.json.code).toBe("rate_limited");
    const retryAfter = Number(blocked.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);

    // The limit belongs to the identifier typed: the username has its own (see lockout.test.ts).
    expect((await h.call("POST", LOGIN, { username: u.username, password: "wrong-password-x" })).status).toBe(401);

    h.clock.advance(FIFTEEN_MINUTES - 60_000);
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(429);

    h.clock.advance(60_000);
    const after = await h.call("POST", LOGIN, { email: u.email, password: u.password });
    expect(after.status).toBe(200);
  });

  it("forgives earlier failures after a successful login", async () => {
    const u = await h.registerVerified();
    for (let i = 0; i < 9; i++) await h.call("POST", LOGIN, { email: u.email, password: `wrong-password-${i}` });
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
    for (let i = 0; i < 9; i++) await h.call("POST", LOGIN, { email: u.email, password: `wrong-password-${i}` });
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
  });

  it("limits failed logins per client IP across accounts, ignoring X-Forwarded-For", async () => {
    const ip = "198.51.100.23";
    const u = await h.registerVerified();
    for (let i = 0; i < 50; i++) {
      const res = await h.call(
        "POST",
        LOGIN,
        { email: `${unique("stuff")}@example.com`, password: "guess-password-1" },
        // PBKDF2 for the unknown-account dummy checks only keeps fifty failures quick.
        { headers: { "cf-connecting-ip": ip, "x-forwarded-for": `10.0.0.${i}` }, env: { ...env, PASSWORD_HASHER: "pbkdf2" } },
      );
      expect(res.status).toBe(401);
    }
    const blocked = await h.call("POST", LOGIN, { email: u.email, password: u.password }, { headers: { "cf-connecting-ip": ip } });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    // Another address is not affected.
    const elsewhere = await h.call(
      "POST",
      LOGIN,
      { email: u.email, password: u.password },
      { headers: { "cf-connecting-ip": "198.51.100.24" } },
    );
    expect(elsewhere.status).toBe(200);
  });

  it("re-hashes a PBKDF2 hash as argon2id on a successful login", async () => {
    const u = await h.registerVerified();
    await env.DB.prepare("UPDATE users SET password_hash = ? WHERE id = ?")
      .bind(await pbkdf2Phc(u.password, 1000), u.id)
      .run();
    expect(await storedHash(u.id)).toMatch(/^\$pbkdf2-sha256\$i=1000\$/);

    expect((await h.call("POST", LOGIN, { email: u.email, password: "wrong-password-1" })).status).toBe(401);
    expect(await storedHash(u.id)).toMatch(/^\$pbkdf2-sha256\$/);

    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
    expect(await storedHash(u.id)).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
  });

  it("re-hashes an argon2id hash with other parameters", async () => {
    const u = await h.registerVerified();
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const tag = argon2id({
      password: new TextEncoder().encode(u.password),
      salt,
      memorySize: 1024,
      iterations: 1,
      parallelism: 1,
      hashLength: 32,
    });
    // PHC strings carry standard base64 without padding.
    const phc = (bytes: Uint8Array) => base64urlEncode(bytes).replace(/-/g, "+").replace(/_/g, "/");
    const weak = `$argon2id$v=19$m=1024,t=1,p=1$${phc(salt)}$${phc(tag)}`;
    await env.DB.prepare("UPDATE users SET password_hash = ? WHERE id = ?").bind(weak, u.id).run();
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
    expect(await storedHash(u.id)).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  });

  it("re-hashes to PBKDF2 when PASSWORD_HASHER=pbkdf2", async () => {
    const u = await h.registerVerified();
    const pbkdf2Env = { ...env, PASSWORD_HASHER: "pbkdf2" };
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password }, { env: pbkdf2Env })).status).toBe(200);
    expect(await storedHash(u.id)).toMatch(/^\$pbkdf2-sha256\$i=100000\$/);
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
    expect(await storedHash(u.id)).toMatch(/^\$argon2id\$/);
  });
});
