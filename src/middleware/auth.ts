import { eq, sql } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import { profiles, refreshTokens, type User, users } from "../db/schema";
import type { AppEnv } from "../env";
import { verifyAccessToken } from "../features/auth/access-tokens";
import { AppError } from "../lib/errors";

/**
 * `Bearer <JWS compact serialization>`: the scheme name is case-insensitive (RFC 7235 §2.1), the
 * token three base64url segments, which have no padding (RFC 7515 §2): a token with `=` is not
 * one we issued, and is refused before any parsing.
 */
const BEARER = /^bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/i;

/**
 * Requires `Authorization: Bearer <access token>`. The JWT is verified without I/O; then the user
 * row is read (one primary-key lookup, which the handler needs anyway) so that a disabled or
 * deleted account, a token issued before `tokens_valid_after`, or a token whose sign-in (`sid`,
 * its refresh-token family) has been revoked, is refused at once.
 * `withProfile` also loads the user's profile (or null) into `c.var.profile` in that same query.
 */
export function requireUser(options: { withProfile?: boolean } = {}): MiddlewareHandler<AppEnv> {
  return async function requireUser(c, next) {
    const { db, clock, env } = c.var.deps;
    const match = BEARER.exec(c.req.header("authorization") ?? "");
    if (!match?.[1]) throw new AppError("unauthorized", "Send a valid access token as 'Authorization: Bearer <token>'.");
    const claims = await verifyAccessToken(
      { keys: env.JWT_KEYS, issuer: env.JWT_ISSUER, audience: env.JWT_AUDIENCE },
      match[1],
      clock.now(),
    );
    if (!claims) throw new AppError("unauthorized", "The access token is invalid or has expired.");
    // The token's sign-in must still be live: logging out, revoking the session or reuse
    // detection then cut off its access tokens at once, not when they expire. Same statement.
    const sessionLive =
      sql<number>`EXISTS (SELECT 1 FROM ${refreshTokens} WHERE ${refreshTokens.familyId} = ${claims.sid} AND ${refreshTokens.userId} = ${claims.sub} AND ${refreshTokens.revokedAt} IS NULL)`.as(
        "session_live",
      );
    let row: { user: User; sessionLive: number } | undefined;
    if (options.withProfile) {
      // Routes that show the profile get it in the same query (no second round trip).
      const [found] = await db
        .select({ user: users, sessionLive, profile: profiles })
        .from(users)
        .leftJoin(profiles, eq(profiles.userId, users.id))
        .where(eq(users.id, claims.sub))
        .limit(1);
      row = found;
      c.set("profile", found?.profile ?? null);
    } else {
      [row] = await db.select({ user: users, sessionLive }).from(users).where(eq(users.id, claims.sub)).limit(1);
    }
    const user = row?.user;
    // tokens_valid_after has second precision on the token side (iat is in whole seconds).
    if (!user?.isActive || !row?.sessionLive || claims.iat * 1000 < user.tokensValidAfter) {
      throw new AppError("unauthorized", "The access token is no longer valid.");
    }
    c.set("user", user);
    c.set("token", { jti: claims.jti, iat: claims.iat, sessionId: claims.sid });
    await next();
  };
}

/** Requires a staff user; use after `requireUser`. */
export function requireStaff(): MiddlewareHandler<AppEnv> {
  return async function requireStaff(c, next) {
    if (!c.var.user.isStaff) throw new AppError("forbidden", "This needs a staff account.");
    await next();
  };
}
