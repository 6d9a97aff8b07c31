/**
 * Access tokens: JWTs (RFC 9068 profile, `typ: at+jwt`) signed with Ed25519 from the JWT_KEYS
 * secret, a JWK set. The last key in the set signs; every key verifies, so rotation is "append a
 * key, deploy, wait one access-token lifetime, remove the old one". Keys are imported once per
 * isolate (keyed by the secret's text), never per request. Verification makes no database call.
 */
import { type CryptoKey, importJWK, type JWK, jwtVerify, SignJWT } from "jose";
import { randomId } from "../../lib/crypto";

/** Pinned: tokens with any other `alg` (none, HS256 with the public key, ES256, …) are refused. */
export const ACCESS_TOKEN_ALG = "EdDSA";
export const ACCESS_TOKEN_TYP = "at+jwt";

interface SigningKeys {
  signer: { kid: string; key: CryptoKey };
  verifiers: Map<string, CryptoKey>;
  publicJwks: { keys: JWK[] };
}

const keyCache = new Map<string, Promise<SigningKeys>>();

async function loadKeys(secret: string): Promise<SigningKeys> {
  let parsed: { keys?: JWK[] };
  try {
    parsed = JSON.parse(secret);
  } catch {
    throw new Error("JWT_KEYS is not valid JSON");
  }
  const keys = parsed.keys ?? [];
  if (keys.length === 0) throw new Error("JWT_KEYS holds no keys");
  const verifiers = new Map<string, CryptoKey>();
  const publicJwks: JWK[] = [];
  let signer: SigningKeys["signer"] | undefined;
  for (const jwk of keys) {
    if (!jwk.kid || jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || !jwk.x || !jwk.d) {
      throw new Error("JWT_KEYS must hold Ed25519 private JWKs with a kid");
    }
    const publicJwk: JWK = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid: jwk.kid, alg: ACCESS_TOKEN_ALG, use: "sig" };
    verifiers.set(jwk.kid, (await importJWK(publicJwk, ACCESS_TOKEN_ALG)) as CryptoKey);
    publicJwks.push(publicJwk);
    signer = { kid: jwk.kid, key: (await importJWK({ ...jwk, alg: ACCESS_TOKEN_ALG }, ACCESS_TOKEN_ALG)) as CryptoKey };
  }
  return { signer: signer as SigningKeys["signer"], verifiers, publicJwks: { keys: publicJwks } };
}

export function getSigningKeys(secret: string): Promise<SigningKeys> {
  let keys = keyCache.get(secret);
  if (!keys) {
    keys = loadKeys(secret);
    // A broken secret must not be cached forever: the next request retries after a fix.
    keys.catch(() => keyCache.delete(secret));
    keyCache.set(secret, keys);
  }
  return keys;
}

export interface AccessTokenSettings {
  keys: string;
  issuer: string;
  audience: string;
}

export interface AccessClaims {
  sub: string;
  iat: number;
  exp: number;
  jti: string;
  /** The sign-in (refresh-token family) this token belongs to. */
  sid: string;
}

export async function signAccessToken(
  settings: AccessTokenSettings,
  input: { userId: string; nowMs: number; ttlSeconds: number; sessionId: string },
): Promise<{ token: string; claims: AccessClaims }> {
  const { signer } = await getSigningKeys(settings.keys);
  const iat = Math.floor(input.nowMs / 1000);
  const claims: AccessClaims = { sub: input.userId, iat, exp: iat + input.ttlSeconds, jti: randomId(), sid: input.sessionId };
  const token = await new SignJWT({ jti: claims.jti, sid: claims.sid })
    .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, typ: ACCESS_TOKEN_TYP, kid: signer.kid })
    .setIssuer(settings.issuer)
    .setAudience(settings.audience)
    .setSubject(claims.sub)
    .setIssuedAt(claims.iat)
    .setExpirationTime(claims.exp)
    .sign(signer.key);
  return { token, claims };
}

/** Verifies signature, alg, typ, iss, aud, exp and nbf; returns null for any invalid token. */
export async function verifyAccessToken(settings: AccessTokenSettings, token: string, nowMs: number): Promise<AccessClaims | null> {
  const { verifiers } = await getSigningKeys(settings.keys);
  try {
    const { payload } = await jwtVerify(
      token,
      (header) => {
        const key = header.kid ? verifiers.get(header.kid) : undefined;
        if (!key) throw new Error("unknown kid");
        return key;
      },
      {
        algorithms: [ACCESS_TOKEN_ALG],
        typ: ACCESS_TOKEN_TYP,
        issuer: settings.issuer,
        audience: settings.audience,
        currentDate: new Date(nowMs),
        requiredClaims: ["sub", "iat", "exp", "jti", "sid"],
        clockTolerance: 0,
      },
    );
    if (
      typeof payload.sub !== "string" ||
      typeof payload.iat !== "number" ||
      typeof payload.exp !== "number" ||
      typeof payload.sid !== "string"
    ) {
      return null;
    }
    // jose accepts an iat in the future; a token "issued" later than now is not valid yet.
    if (payload.iat * 1000 > nowMs + 1000) return null;
    return { sub: payload.sub, iat: payload.iat, exp: payload.exp, jti: String(payload.jti), sid: payload.sid };
  } catch {
    return null;
  }
}
