/**
 * Access tokens: JWTs (RFC 9068 profile, `typ: at+jwt`) signed with Ed25519 from the JWT_KEYS
 * secret, a JWK set. The last key in the set signs — from its `signs_from` (Unix seconds) on, when
 * it has one — and every key verifies, so rotation is "append a key, upload, wait one access-token
 * lifetime after it starts signing, remove the old one". Keys are imported once per isolate (keyed
 * by the secret's text), never per request. Verification makes no database call.
 *
 * Why `signs_from`: the JWKS may be cached for its max-age (`JWKS_MAX_AGE_SECONDS`), by a
 * verifier or a proxy in front of it, so a key that signed the moment it was uploaded would make
 * tokens that a still-fresh copy of the set cannot check. The rotation scripts stamp a new key
 * when they print it for upload (scripts/keys.mjs); until then the key before it signs, and the
 * JWKS publishes both.
 */
import { type CryptoKey, importJWK, type JWK, jwtVerify, SignJWT } from "jose";
import { randomId } from "../../lib/crypto";

/** Pinned: tokens with any other `alg` (none, HS256 with the public key, ES256, …) are refused. */
export const ACCESS_TOKEN_ALG = "EdDSA";
export const ACCESS_TOKEN_TYP = "at+jwt";

/**
 * How long a verifier or a proxy may keep the JWKS (its `Cache-Control`). A new key signs only
 * later than this after its upload (scripts/lib/keys.mjs, `SIGNING_DELAY_SECONDS`).
 */
export const JWKS_MAX_AGE_SECONDS = 300;

interface Signer {
  kid: string;
  key: CryptoKey;
  /** When it may start signing (ms since the epoch); 0 for a key without `signs_from`. */
  signsFromMs: number;
}

interface SigningKeys {
  /** In the set's order: the last one whose time has come signs. */
  signers: Signer[];
  verifiers: Map<string, CryptoKey>;
  publicJwks: { keys: JWK[] };
}

/**
 * The key that signs at `nowMs`: the last one whose `signs_from` has come. When none has, every key
 * is new to every verifier (a new set), and waiting buys nothing: the first signs.
 */
function signerAt(keys: SigningKeys, nowMs: number): Signer {
  const { signers } = keys;
  for (let i = signers.length - 1; i >= 0; i--) {
    const signer = signers[i] as Signer;
    if (signer.signsFromMs <= nowMs) return signer;
  }
  return signers[0] as Signer;
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
  const signers: Signer[] = [];
  for (const jwk of keys as (JWK & { signs_from?: unknown })[]) {
    if (!jwk.kid || jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || !jwk.x || !jwk.d) {
      throw new Error("JWT_KEYS must hold Ed25519 private JWKs with a kid");
    }
    const signsFrom = jwk.signs_from ?? 0;
    if (!Number.isSafeInteger(signsFrom)) throw new Error("JWT_KEYS has a signs_from that is not a whole number of seconds");
    const publicJwk: JWK = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid: jwk.kid, alg: ACCESS_TOKEN_ALG, use: "sig" };
    verifiers.set(jwk.kid, (await importJWK(publicJwk, ACCESS_TOKEN_ALG)) as CryptoKey);
    publicJwks.push(publicJwk);
    const { signs_from: _, ...privateJwk } = jwk;
    signers.push({
      kid: jwk.kid,
      key: (await importJWK({ ...privateJwk, alg: ACCESS_TOKEN_ALG }, ACCESS_TOKEN_ALG)) as CryptoKey,
      signsFromMs: (signsFrom as number) * 1000,
    });
  }
  return { signers, verifiers, publicJwks: { keys: publicJwks } };
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
  const signer = signerAt(await getSigningKeys(settings.keys), input.nowMs);
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
