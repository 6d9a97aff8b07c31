import { env } from "cloudflare:test";
import { base64url, importJWK, type JWK, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { probeD1 } from "../d1-wrap";
import { decodeJwt, harness } from "../helpers";

const ME = "/api/v1/me";

/** A fresh Ed25519 private JWK, as scripts/lib/keys.mjs makes for JWT_KEYS. */
async function newSigningJwk(kid: string): Promise<JWK> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
  return { kty: "OKP", crv: "Ed25519", x: jwk.x, d: jwk.d, kid, alg: "EdDSA", use: "sig" };
}

const encodePart = (value: unknown) => base64url.encode(JSON.stringify(value));

describe("access-token verification", () => {
  const h = harness();
  let user: Awaited<ReturnType<typeof h.signedInUser>>;
  let signingJwk: JWK;

  beforeAll(async () => {
    user = await h.signedInUser();
    const keys = (JSON.parse(env.JWT_KEYS) as { keys: JWK[] }).keys;
    signingJwk = keys.at(-1) as JWK;
  });

  /** Claims a valid token for `user` would carry at the harness clock's current time. */
  function validClaims() {
    const iat = Math.floor(h.clock.now() / 1000);
    return {
      iss: env.JWT_ISSUER,
      aud: env.JWT_AUDIENCE,
      sub: user.id,
      iat,
      exp: iat + 30,
      jti: crypto.randomUUID(),
      sid: decodeJwt(user.access_token).payload.sid,
    };
  }

  /** Signs `payload` with the deployment's real signing key (or `jwk`), with header overrides. */
  async function sign(payload: Record<string, unknown>, header: Record<string, unknown> = {}, jwk: JWK = signingJwk) {
    const key = await importJWK(jwk, "EdDSA");
    return new SignJWT(payload).setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: jwk.kid, ...header }).sign(key);
  }

  async function expectRejected(token: string) {
    const res = await h.call("GET", ME, undefined, { token });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe("unauthorized");
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  }

  it("accepts a token it issued, and one forged here with the real key and correct claims (control)", async () => {
    expect((await h.call("GET", ME, undefined, { token: user.access_token })).status).toBe(200);
    expect((await h.call("GET", ME, undefined, { token: await sign(validClaims()) })).status).toBe(200);
  });

  it("refuses alg: none", async () => {
    const header = { alg: "none", typ: "at+jwt", kid: signingJwk.kid };
    await expectRejected(`${encodePart(header)}.${encodePart(validClaims())}.`);
    // Keeping the real token's signature does not help either.
    const realSignature = user.access_token.split(".")[2];
    await expectRejected(`${encodePart(header)}.${encodePart(validClaims())}.${realSignature}`);
  });

  it("refuses HS256 signed with the public key's bytes (algorithm confusion)", async () => {
    const publicJwk = { kty: "OKP", crv: "Ed25519", x: signingJwk.x, kid: signingJwk.kid };
    const secrets = [
      base64url.decode(signingJwk.x as string),
      new TextEncoder().encode(JSON.stringify(publicJwk)),
      new TextEncoder().encode(signingJwk.x as string),
    ];
    for (const secret of secrets) {
      const token = await new SignJWT(validClaims()).setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: signingJwk.kid }).sign(secret);
      await expectRejected(token);
    }
  });

  it("refuses an expired token", async () => {
    const token = await sign(validClaims());
    h.clock.advance(31_000);
    await expectRejected(token);
    // And the app's own tokens expire too.
    await expectRejected(user.access_token);
    user = await h.signedInUser();
  });

  it("refuses a token whose nbf is in the future", async () => {
    await expectRejected(await sign({ ...validClaims(), nbf: Math.floor(h.clock.now() / 1000) + 60 }));
  });

  it("refuses a token issued in the future", async () => {
    const claims = validClaims();
    await expectRejected(await sign({ ...claims, iat: claims.iat + 120, exp: claims.exp + 120 }));
  });

  it("refuses a tampered payload", async () => {
    const other = await h.registerVerified();
    const [header, payload, signature] = user.access_token.split(".") as [string, string, string];
    const claims = decodeJwt(user.access_token).payload;
    await expectRejected(`${header}.${encodePart({ ...claims, sub: other.id })}.${signature}`);
    await expectRejected(`${header}.${encodePart({ ...claims, exp: claims.exp + 3600 })}.${signature}`);
    // Flipping one signature character is caught as well.
    const flipped = signature.startsWith("A") ? `B${signature.slice(1)}` : `A${signature.slice(1)}`;
    await expectRejected(`${header}.${payload}.${flipped}`);
  });

  it("refuses a wrong audience", async () => {
    await expectRejected(await sign({ ...validClaims(), aud: "someone-else" }));
  });

  it("refuses a wrong issuer", async () => {
    await expectRejected(await sign({ ...validClaims(), iss: "https://evil.example" }));
  });

  it("refuses a wrong or missing typ (an ID token or generic JWT is not an access token)", async () => {
    await expectRejected(await sign(validClaims(), { typ: "JWT" }));
    await expectRejected(await sign(validClaims(), { typ: undefined }));
  });

  it("refuses an unknown or missing kid", async () => {
    await expectRejected(await sign(validClaims(), { kid: "no-such-key" }));
    await expectRejected(await sign(validClaims(), { kid: undefined }));
  });

  it("refuses a token signed by a key outside the set that claims a known kid", async () => {
    const stranger = await newSigningJwk(signingJwk.kid as string);
    await expectRejected(await sign(validClaims(), {}, stranger));
  });

  it("refuses tokens missing a required claim", async () => {
    for (const claim of ["sub", "exp", "iat", "jti", "sid"]) {
      const claims: Record<string, unknown> = validClaims();
      delete claims[claim];
      await expectRejected(await sign(claims));
    }
  });

  it("refuses a valid signature for a user that does not exist", async () => {
    await expectRejected(await sign({ ...validClaims(), sub: "no-such-user" }));
  });

  it.each([
    ["no header", undefined],
    ["Basic scheme", "Basic dXNlcjpwYXNz"],
    ["garbage", "Bearer not.a.jwt"],
    ["empty", "Bearer "],
  ])("refuses a request with %s", async (_name, authorization) => {
    const res = await h.call("GET", ME, undefined, { headers: authorization ? { authorization } : {} });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe("unauthorized");
  });

  it("verifies an access token with no database call beyond the one user-row read", async () => {
    const probe = probeD1(env.DB);
    const res = await h.call("GET", ME, undefined, { token: user.access_token, env: { ...env, DB: probe.db } });
    expect(res.status).toBe(200);
    // One statement: the user row, with the session-still-live check as a sub-select of the same
    // query (no separate token lookup, denylist or session round trip).
    expect(probe.roundTrips).toBe(1);
    expect(probe.statements[0]).toMatch(/^select .* from "users" .*where "users"\."id" = \?/i);
    expect(probe.statements.filter((sql) => /rate_limits|otp_codes|activity/i.test(sql))).toEqual([]);

    // An invalid token is refused before any database work at all.
    probe.reset();
    const bad = await h.call("GET", ME, undefined, { token: await sign({ ...validClaims(), aud: "x" }), env: { ...env, DB: probe.db } });
    expect(bad.status).toBe(401);
    expect(probe.statements).toHaveLength(0);
  });
});

describe("signing-key rotation", () => {
  const h = harness();
  let oldKey: JWK;
  let newKey: JWK;
  let rotatedEnv: Env;

  beforeAll(async () => {
    oldKey = await newSigningJwk("rotation-old");
    newKey = await newSigningJwk("rotation-new");
    rotatedEnv = { ...env, JWT_KEYS: JSON.stringify({ keys: [oldKey, newKey] }) };
  });

  it("signs with the last key of JWT_KEYS", async () => {
    const u = await h.registerVerified();
    const tokens = await h.login(u.email, u.password, { env: rotatedEnv });
    expect(decodeJwt(tokens.access_token).header.kid).toBe("rotation-new");
    expect((await h.call("GET", ME, undefined, { token: tokens.access_token, env: rotatedEnv })).status).toBe(200);
  });

  /**
   * The JWKS may be cached for its max-age (RFC 9111 §4.2): a key that signed the moment it was
   * uploaded would make tokens a verifier's still-fresh copy cannot check. A key uploaded by the
   * rotation scripts carries `signs_from` (scripts/keys.mjs `print`); until then the key before it
   * signs, and the JWKS publishes both.
   */
  it("signs with a new key only from its signs_from, later than a cached JWKS can be stale, and publishes it at once", async () => {
    const from = Math.floor(h.clock.now() / 1000) + 600;
    const staged = { ...env, JWT_KEYS: JSON.stringify({ keys: [oldKey, { ...newKey, signs_from: from }] }) };
    const jwks = await h.call("GET", "/.well-known/jwks.json", undefined, { env: staged });
    expect(jwks.json.keys.map((k: JWK) => k.kid)).toEqual(["rotation-old", "rotation-new"]);
    // The published key is public only: no private member, and none of the set's own.
    for (const key of jwks.json.keys) expect(Object.keys(key).sort()).toEqual(["alg", "crv", "kid", "kty", "use", "x"]);
    const maxAge = Number(/max-age=(\d+)/.exec(jwks.headers.get("cache-control") ?? "")?.[1]);
    expect(from * 1000 - h.clock.now()).toBeGreaterThan(maxAge * 1000);

    const u = await h.registerVerified();
    const before = await h.login(u.email, u.password, { env: staged });
    expect(decodeJwt(before.access_token).header.kid).toBe("rotation-old");
    h.clock.set(from * 1000);
    const after = await h.login(u.email, u.password, { env: staged });
    expect(decodeJwt(after.access_token).header.kid).toBe("rotation-new");
    expect((await h.call("GET", ME, undefined, { token: after.access_token, env: staged })).status).toBe(200);
  });

  it("signs with the first key when no key's signs_from has come (a new set: no verifier holds any of it)", async () => {
    const from = Math.floor(h.clock.now() / 1000) + 600;
    const fresh = {
      ...env,
      JWT_KEYS: JSON.stringify({
        keys: [
          { ...oldKey, signs_from: from },
          { ...newKey, signs_from: from },
        ],
      }),
    };
    const u = await h.registerVerified();
    expect(decodeJwt((await h.login(u.email, u.password, { env: fresh })).access_token).header.kid).toBe("rotation-old");
  });

  it("refuses a set whose signs_from is not a whole number of seconds", async () => {
    const broken = { ...env, JWT_KEYS: JSON.stringify({ keys: [{ ...oldKey, signs_from: "soon" }] }) };
    const res = await h.call("GET", "/.well-known/jwks.json", undefined, { env: broken });
    expect(res.status).toBe(503);
  });

  it("still verifies a token signed by an older key in the set, until that key is removed", async () => {
    const onlyOld = { ...env, JWT_KEYS: JSON.stringify({ keys: [oldKey] }) };
    const u = await h.registerVerified();
    const issuedBeforeRotation = await h.login(u.email, u.password, { env: onlyOld });
    expect(decodeJwt(issuedBeforeRotation.access_token).header.kid).toBe("rotation-old");

    expect((await h.call("GET", ME, undefined, { token: issuedBeforeRotation.access_token, env: rotatedEnv })).status).toBe(200);

    const afterRemoval = { ...env, JWT_KEYS: JSON.stringify({ keys: [newKey] }) };
    expect((await h.call("GET", ME, undefined, { token: issuedBeforeRotation.access_token, env: afterRemoval })).status).toBe(401);
  });

  it("publishes every key of the set in the JWKS, without private parts", async () => {
    const res = await h.call("GET", "/.well-known/jwks.json", undefined, { env: rotatedEnv });
    expect(res.status).toBe(200);
    expect(res.json.keys.map((k: JWK) => k.kid)).toEqual(["rotation-old", "rotation-new"]);
    for (const key of res.json.keys) {
      expect(key).toEqual({ kty: "OKP", crv: "Ed25519", x: expect.any(String), kid: expect.any(String), alg: "EdDSA", use: "sig" });
      expect(key).not.toHaveProperty("d");
    }
    expect(res.text).not.toContain(oldKey.d as string);
    expect(res.text).not.toContain(newKey.d as string);
  });
});

/**
 * RFC 9110 §15.5.2: a 401 carries a `WWW-Authenticate` challenge; RFC 6750 §3: for a bearer-protected
 * resource, `error="invalid_token"` when a token was sent and refused (a client then refreshes),
 * and no error code when none was sent. A 401 for a wrong password in the body is not the token's
 * fault, so it names no error: a client keyed on `invalid_token` must not refresh and retry it.
 */
describe("WWW-Authenticate on 401", () => {
  const h = harness();
  const BARE = 'Bearer realm="latchkey"';

  it("names no error when no token was sent, and invalid_token for a malformed, forged or expired one", async () => {
    const none = await h.call("GET", ME);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe(BARE);

    const basic = await h.call("GET", ME, undefined, { headers: { authorization: "Basic YTpi" } });
    expect(basic.headers.get("www-authenticate")).toBe(BARE);

    const garbage = await h.call("GET", ME, undefined, { headers: { authorization: "Bearer not-a-jwt=" } });
    expect(garbage.headers.get("www-authenticate")).toContain('error="invalid_token"');

    const user = await h.signedInUser();
    const [head, body] = user.access_token.split(".");
    const forged = await h.call("GET", ME, undefined, { token: `${head}.${body}.${"A".repeat(86)}` });
    expect(forged.status).toBe(401);
    expect(forged.headers.get("www-authenticate")).toMatch(/^Bearer realm="latchkey", error="invalid_token", error_description="[^"\\]+"$/);

    h.clock.advance(24 * 3600_000);
    const expired = await h.call("GET", ME, undefined, { token: user.access_token });
    expect(expired.status).toBe(401);
    expect(expired.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("says invalid_token for a token whose sign-in ended", async () => {
    const user = await h.signedInUser();
    expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: user.access_token })).status).toBe(204);
    const read = await h.call("GET", ME, undefined, { token: user.access_token });
    expect(read.status).toBe(401);
    expect(read.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("names no error for a wrong password, refresh token or current password (the token, if any, is fine)", async () => {
    const user = await h.signedInUser();
    const login = await h.call("POST", "/api/v1/auth/login", { email: user.email, password: "not the password at all" });
    expect(login.status).toBe(401);
    expect(login.headers.get("www-authenticate")).toBe(BARE);

    const refresh = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: "x".repeat(43) });
    expect(refresh.status).toBe(401);
    expect(refresh.headers.get("www-authenticate")).toBe(BARE);

    const wrong = await h.call("DELETE", ME, { current_password: "not the password at all" }, { token: user.access_token });
    expect(wrong.status).toBe(401);
    expect(wrong.json.code).toBe("invalid_current_password");
    expect(wrong.headers.get("www-authenticate")).toBe(BARE);
  });

  it("is absent from answers other than 401", async () => {
    const user = await h.signedInUser();
    expect((await h.call("GET", ME, undefined, { token: user.access_token })).headers.get("www-authenticate")).toBeNull();
    expect(
      (await h.call("GET", "/api/v1/admin/config", undefined, { token: user.access_token })).headers.get("www-authenticate"),
    ).toBeNull();
  });
});
