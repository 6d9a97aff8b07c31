/**
 * Token pairs and refresh-token rotation (OAuth 2.0 Security BCP, RFC 9700 §4.14.2: refresh
 * token rotation with reuse detection). A refresh token is 256 random bits shown to the client
 * once; only its SHA-256 is stored. Each login starts a family; every refresh replaces the
 * presented token with a child in the same family. Presenting a token that was already rotated
 * means two parties hold it, so the whole family is revoked.
 */
import { and, eq, getTableColumns, isNull, sql } from "drizzle-orm";
import type { Db, Query } from "../../db/client";
import { runBatch } from "../../db/client";
import { refreshTokens, type User, users } from "../../db/schema";
import type { Deps } from "../../env";
import { base64urlEncode, randomBytes, randomId, sha256Hex } from "../../lib/crypto";
import { AppError } from "../../lib/errors";
import { log } from "../../lib/log";
import { assertWithinLimit, countHit, type RateLimitRow } from "../../lib/rate-limit";
import { activityInsert } from "../activity/activity.record";
import { signAccessToken } from "./access-tokens";

export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

export function accessTokenSettings(env: Env) {
  return { keys: env.JWT_KEYS, issuer: env.JWT_ISSUER, audience: env.JWT_AUDIENCE };
}

/**
 * How long after a rotation a second use of the same token counts as a concurrent duplicate
 * rather than reuse (cf. Auth0's "reuse interval"). Short: a thief racing the real client inside
 * it gets a 401 but no family revocation; past it, reuse revokes the whole family.
 */
export const REFRESH_RACE_GRACE_MS = 5_000;

export const hashRefreshToken = (token: string) => sha256Hex(token);

/**
 * Signs an access token and mints a refresh token for `userId`. Nothing is written: the caller
 * puts `insert` into the batch that makes the sign-in real, and returns `response` only after
 * that batch succeeded.
 */
export async function prepareTokenPair(
  deps: Deps,
  userId: string,
  family?: { familyId: string; parentId: string; familyCreatedAt: number },
): Promise<{ response: TokenResponse; insert: Query; row: typeof refreshTokens.$inferInsert }> {
  const config = await deps.config();
  const now = deps.clock.now();
  const refreshToken = base64urlEncode(randomBytes(32));
  const familyCreatedAt = family?.familyCreatedAt ?? now;
  // The idle lifetime renews at every rotation; the sign-in's absolute end never moves.
  const expiresAt = Math.min(now + config.refresh_token_ttl * 1000, sessionEndsAt(familyCreatedAt, config.session_max_age));
  const row = {
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
  const { token } = await signAccessToken(accessTokenSettings(deps.env), {
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
    insert: deps.db.insert(refreshTokens).values(row),
    row,
  };
}

/** When a sign-in that began at `familyCreatedAt` ends, whatever its rotations (KV `session_max_age`, OWASP ASVS 10.4.8). */
export function sessionEndsAt(familyCreatedAt: number, sessionMaxAgeSeconds: number): number {
  return familyCreatedAt + sessionMaxAgeSeconds * 1000;
}

/** Revokes every live token of one family (a sign-in), e.g. on logout or detected reuse. */
export function revokeFamily(db: Db, familyId: string, reason: string, nowMs: number) {
  return db
    .update(refreshTokens)
    .set({ revokedAt: nowMs, revokedReason: reason })
    .where(and(eq(refreshTokens.familyId, familyId), isNull(refreshTokens.revokedAt)));
}

/** Revokes every live token of a user, optionally sparing one family (the caller's own session). */
export function revokeAllForUser(db: Db, userId: string, reason: string, nowMs: number, exceptFamilyId?: string) {
  return db
    .update(refreshTokens)
    .set({ revokedAt: nowMs, revokedReason: reason })
    .where(
      and(
        eq(refreshTokens.userId, userId),
        isNull(refreshTokens.revokedAt),
        exceptFamilyId ? sql`${refreshTokens.familyId} <> ${exceptFamilyId}` : undefined,
      ),
    );
}

/** Cuts off access tokens already issued to the user (checked by `requireUser`). */
export function invalidateAccessTokens(db: Db, userId: string, nowMs: number) {
  // iat has whole-second precision: round down so tokens issued later in this second stay valid.
  return db
    .update(users)
    .set({ tokensValidAfter: Math.floor(nowMs / 1000) * 1000, updatedAt: nowMs })
    .where(eq(users.id, userId));
}

/**
 * A query, not a promise (drizzle builders run when awaited), so it can join a batch. Only
 * `is_active` is taken from users: inside a D1 batch drizzle maps rows by column name, and
 * columns both tables have (`id`, `created_at`) would overwrite each other.
 */
function selectByTokenHash(db: Db, tokenHash: string) {
  return db
    .select({ token: refreshTokens, userActive: users.isActive })
    .from(refreshTokens)
    .innerJoin(users, eq(users.id, refreshTokens.userId))
    .where(eq(refreshTokens.tokenHash, tokenHash))
    .limit(1);
}

async function findByToken(db: Db, token: string) {
  const [row] = await selectByTokenHash(db, await hashRefreshToken(token));
  return row ?? null;
}

/**
 * `INSERT … SELECT` of the successor row that inserts nothing unless the parent is still live.
 * A query builder (not `db.run`, which executes at once) so it can go into the rotation's batch.
 */
function insertWhileParentLive(db: Db, row: typeof refreshTokens.$inferInsert, parentId: string) {
  const values: Record<string, unknown> = { revokedAt: null, revokedReason: null, ...row };
  // drizzle lists every column in table order for INSERT … SELECT; select the values in that order.
  const columns = Object.keys(getTableColumns(refreshTokens)).map((key) => sql`${values[key] ?? null}`);
  return db
    .insert(refreshTokens)
    .select(
      sql`SELECT ${sql.join(columns, sql`, `)} WHERE EXISTS (SELECT 1 FROM ${refreshTokens} WHERE ${and(eq(refreshTokens.id, parentId), isNull(refreshTokens.revokedAt))})`,
    );
}

/** `POST /auth/refresh`: rotates the presented token. Exactly one of two concurrent uses wins. */
export async function rotateRefreshToken(deps: Deps, presented: string): Promise<TokenResponse> {
  const { db, clock, meta } = deps;
  const now = clock.now();
  // The per-IP counter and the lookup share one round trip; the limit is judged right after.
  const tokenHash = await hashRefreshToken(presented);
  const [limit, rows] = (await runBatch(db, [
    countHit(db, "refreshPerIp", meta.ip ?? "unknown", now),
    selectByTokenHash(db, tokenHash),
  ])) as [RateLimitRow[], Awaited<ReturnType<typeof findByToken>>[]];
  assertWithinLimit("refreshPerIp", limit[0], now);
  const found = rows[0] ?? null;
  const invalid = new AppError("invalid_refresh_token");
  if (!found) throw invalid;
  const { token, userActive } = found;
  if (token.revokedAt !== null) {
    // A rotated token presented again is theft — unless it was rotated a moment ago, which is
    // what a client's own duplicate request looks like (two tabs, a retry after a timeout). Then
    // only this request fails, so the concurrent winner's new token stays valid.
    if (token.revokedReason === "rotated" && now - (token.revokedAt ?? 0) >= REFRESH_RACE_GRACE_MS) {
      // No raw user id in logs (lib/log.ts); the activity row below names the user.
      log("warn", "auth.refresh_reuse", { action: "family_revoked" });
      await runBatch(db, [
        revokeFamily(db, token.familyId, "reuse", now),
        activityInsert(db, {
          userId: token.userId,
          type: "token_reuse_detected",
          nowMs: now,
          meta,
          details: { session_id: token.familyId },
        }),
      ]);
    }
    throw invalid;
  }
  const config = await deps.config();
  // Past its absolute lifetime (session_max_age may have been lowered since the token was issued).
  if (token.expiresAt <= now || sessionEndsAt(token.familyCreatedAt, config.session_max_age) <= now || !userActive) throw invalid;

  const pair = await prepareTokenPair(deps, token.userId, {
    familyId: token.familyId,
    parentId: token.id,
    familyCreatedAt: token.familyCreatedAt,
  });
  // One transaction: the successor is inserted only if the parent is still live, and the parent
  // is revoked only if it was live. Whichever concurrent request runs second changes nothing.
  const [, revoked] = await runBatch(db, [
    insertWhileParentLive(db, pair.row, token.id),
    db
      .update(refreshTokens)
      .set({ revokedAt: now, revokedReason: "rotated" })
      .where(and(eq(refreshTokens.id, token.id), isNull(refreshTokens.revokedAt)))
      .returning({ id: refreshTokens.id }),
  ]);
  if (!Array.isArray(revoked) || revoked.length !== 1) throw invalid;
  return pair.response;
}

/** `POST /auth/logout`: revokes the token's family. Unknown or already revoked tokens are fine. */
export async function logout(deps: Deps, presented: string): Promise<void> {
  const { db, clock, meta } = deps;
  const found = await findByToken(db, presented);
  if (!found || found.token.revokedAt !== null) return;
  const now = clock.now();
  await runBatch(db, [
    revokeFamily(db, found.token.familyId, "logout", now),
    activityInsert(db, { userId: found.token.userId, type: "logout", nowMs: now, meta, details: { session_id: found.token.familyId } }),
  ]);
}

/** `POST /auth/logout-all`: every refresh token of the user, and every access token issued so far. */
export async function logoutAll(deps: Deps, user: User): Promise<void> {
  const { db, clock, meta } = deps;
  const now = clock.now();
  await runBatch(db, [
    revokeAllForUser(db, user.id, "logout_all", now),
    invalidateAccessTokens(db, user.id, now),
    activityInsert(db, { userId: user.id, type: "logout_all", nowMs: now, meta }),
  ]);
}
