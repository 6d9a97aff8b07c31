/**
 * Token pairs and refresh-token rotation (OAuth 2.0 Security BCP, RFC 9700 §4.14.2: refresh
 * token rotation with reuse detection). A refresh token is 256 random bits shown to the client
 * once; only its SHA-256 is stored. Each login starts a family; every refresh replaces the
 * presented token with a child in the same family. Presenting a token that was already rotated
 * means two parties hold it, so the whole family is revoked.
 */
import type { z } from "@hono/zod-openapi";
import type { Config } from "../../config/config.definitions";
import { isGuessed } from "../../config/config.service";
import type { Deps } from "../../deps";
import { base64urlEncode, randomBytes, randomId, sha256Hex } from "../../lib/crypto";
import { AppError } from "../../lib/errors";
import { clientKey } from "../../lib/ip";
import { log } from "../../lib/log";
import { assertWithinLimit } from "../../lib/rate-limit";
import type { NewRefreshToken, RefreshToken, SessionLifetimes, User } from "../../store";
import { signAccessToken } from "./access-tokens";
import type { TokenResponseSchema } from "./auth.schemas";

export type TokenResponse = z.infer<typeof TokenResponseSchema>;

/**
 * How long after a rotation a second use of the same token counts as a concurrent duplicate
 * rather than reuse (cf. Auth0's "reuse interval"). Short: a thief racing the real client inside
 * it gets a 401 but no family revocation; past it, reuse revokes the whole family.
 */
export const REFRESH_RACE_GRACE_MS = 5_000;

export const hashRefreshToken = (token: string) => sha256Hex(token);

/**
 * The answer to the loser of a rotation race: the token was rotated moments ago (within
 * REFRESH_RACE_GRACE_MS) or by a concurrent request. Callers see the same 401 as for any invalid
 * token; the website tells it apart, since only then may its browser hold a newer token by now.
 */
export class RotationRaceLost extends AppError {
  /** When the winner rotated the token: its reuse counts as theft from `rotatedAt + REFRESH_RACE_GRACE_MS` on. */
  constructor(readonly rotatedAt: number) {
    super("invalid_refresh_token");
  }
}

/**
 * Signs an access token and mints a refresh token for `userId`. Nothing is written: the caller
 * hands `row` to the store method that makes the sign-in real, and returns `response` only after
 * it succeeded.
 */
export async function prepareTokenPair(
  deps: Pick<Deps, "config" | "clock" | "meta" | "keys">,
  userId: string,
  family?: { familyId: string; parentId: string; familyCreatedAt: number; parentExpiresAt: number },
): Promise<{ response: TokenResponse; row: NewRefreshToken }> {
  const config = await deps.config();
  const now = deps.clock.now();
  const refreshToken = base64urlEncode(randomBytes(32));
  const familyCreatedAt = family?.familyCreatedAt ?? now;
  // The idle lifetime renews at every rotation; the sign-in's absolute end never moves. Without
  // the operator's values (KV down since this isolate began) a rotation renews nothing: the
  // parent's end was set under them, and the defaults may be longer than what they allow.
  const expiresAt = Math.min(
    now + config.refresh_token_ttl * 1000,
    sessionEndsAt(familyCreatedAt, config.session_max_age),
    family && isGuessed(config) ? family.parentExpiresAt : Number.POSITIVE_INFINITY,
  );
  const row: NewRefreshToken = {
    id: randomId(),
    userId,
    familyId: family?.familyId ?? randomId(),
    familyCreatedAt,
    parentId: family?.parentId ?? null,
    tokenHash: await hashRefreshToken(refreshToken),
    createdAt: now,
    expiresAt,
    userAgent: deps.meta.userAgent,
    ip: deps.meta.ip,
  };
  // Nor does an access token outlive its sign-in.
  const accessTtl = Math.max(1, Math.min(config.access_token_ttl, Math.floor((expiresAt - now) / 1000)));
  const { token } = await signAccessToken(deps.keys, {
    userId,
    nowMs: now,
    ttlSeconds: accessTtl,
    sessionId: row.familyId,
  });
  return {
    response: {
      access_token: token,
      token_type: "Bearer",
      expires_in: accessTtl,
      refresh_token: refreshToken,
      refresh_expires_in: Math.floor((expiresAt - now) / 1000),
    },
    row,
  };
}

/** When a sign-in that began at `familyCreatedAt` ends, whatever its rotations (KV `session_max_age`, OWASP ASVS 10.4.8). */
export function sessionEndsAt(familyCreatedAt: number, sessionMaxAgeSeconds: number): number {
  return familyCreatedAt + sessionMaxAgeSeconds * 1000;
}

/** The idle and absolute lifetimes configured now, as the store checks them. */
export function sessionLifetimes(config: Config): SessionLifetimes {
  return { idleSeconds: config.refresh_token_ttl, maxAgeSeconds: config.session_max_age };
}

/**
 * When a refresh token stops working under the lifetimes configured now: its own expiry, or
 * earlier if either lifetime was lowered since it was issued (or it was issued under defaults
 * while KV could not be read).
 */
export function tokenEndsAt(token: Pick<RefreshToken, "createdAt" | "expiresAt" | "familyCreatedAt">, config: Config): number {
  return Math.min(
    token.expiresAt,
    token.createdAt + config.refresh_token_ttl * 1000,
    sessionEndsAt(token.familyCreatedAt, config.session_max_age),
  );
}

/** `POST /auth/refresh`: rotates the presented token. Exactly one of two concurrent uses wins. */
export async function rotateRefreshToken(deps: Deps, presented: string): Promise<TokenResponse> {
  const { clock, meta } = deps;
  const now = clock.now();
  // The per-IP counter and the lookup share one round trip; the limit is judged right after.
  const tokenHash = await hashRefreshToken(presented);
  const { counter, found } = await deps.tokens.lookupForRefresh(tokenHash, clientKey(meta.ip), now);
  assertWithinLimit("refreshPerIp", counter, now);
  const invalid = new AppError("invalid_refresh_token");
  if (!found) throw invalid;
  const { token, userActive } = found;
  if (token.revokedAt !== null) {
    // A rotated token presented again is theft — unless it was rotated a moment ago, which is
    // what a client's own duplicate request looks like (two tabs, a retry after a timeout). Then
    // only this request fails, so the concurrent winner's new token stays valid.
    if (token.revokedReason === "rotated") {
      if (now - (token.revokedAt ?? 0) < REFRESH_RACE_GRACE_MS) throw new RotationRaceLost(token.revokedAt ?? now);
      // No raw user id in logs (lib/log.ts); the activity row names the user.
      log("warn", "auth.refresh_reuse", { action: "family_revoked" });
      await deps.tokens.revokeFamily(token.familyId, "reuse", now, {
        userId: token.userId,
        type: "token_reuse_detected",
        nowMs: now,
        meta,
        details: { session_id: token.familyId },
      });
    }
    throw invalid;
  }
  const config = await deps.config();
  if (tokenEndsAt(token, config) <= now || !userActive) throw invalid;

  const pair = await prepareTokenPair(deps, token.userId, {
    familyId: token.familyId,
    parentId: token.id,
    familyCreatedAt: token.familyCreatedAt,
    parentExpiresAt: token.expiresAt,
  });
  // One transaction: the successor is inserted only if the parent is still live, and the parent
  // is revoked only if it was live. Whichever concurrent request runs second changes nothing.
  if (!(await deps.tokens.rotate(token.id, pair.row, now))) throw new RotationRaceLost(now);
  return pair.response;
}

/**
 * `POST /auth/logout`: ends the sign-in the token belongs to. An unknown token is fine, and so is
 * one already rotated: its sign-in ends all the same. Whoever holds an old token of the family
 * asked for that, and if someone else rotated it (a copied token), ending it is the point.
 */
export async function logout(deps: Deps, presented: string): Promise<void> {
  const token = await deps.tokens.byHash(await hashRefreshToken(presented));
  if (token) await endSignIn(deps, token.userId, token.familyId);
}

/** Ends one sign-in of the user (its `logout` entry only if it was still live). */
export async function endSignIn(deps: Deps, userId: string, sessionId: string): Promise<void> {
  const now = deps.clock.now();
  await deps.tokens.revokeFamily(sessionId, "logout", now, {
    userId,
    type: "logout",
    nowMs: now,
    meta: deps.meta,
    details: { session_id: sessionId },
  });
}

/**
 * `POST /auth/logout-all`: every refresh token of the user, and every access token issued so far.
 * With `keepSessionId` (the website's "sign out every other session"), that sign-in's refresh
 * token stays live and gets it new access tokens; everything else logout-all ends, ends.
 */
export async function logoutAll(deps: Deps, user: User, keepSessionId?: string): Promise<void> {
  const { clock, meta } = deps;
  const now = clock.now();
  await deps.tokens.endAllSessions(user.id, {
    reason: "logout_all",
    nowMs: now,
    activity: {
      userId: user.id,
      type: "logout_all",
      nowMs: now,
      meta,
      ...(keepSessionId ? { details: { kept_session_id: keepSessionId } } : {}),
    },
    keepSessionId,
  });
}
