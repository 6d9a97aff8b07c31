import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env";
import { verifyAccessToken } from "../features/auth/access-tokens";
import { AppError, signInEnded, staffOnly, tokenRefused } from "../lib/errors";

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
    const { users, clock, keys } = c.var.deps;
    const authorization = c.req.header("authorization") ?? "";
    const match = BEARER.exec(authorization);
    if (!match?.[1]) {
      // A bearer token that is not one of ours was still a token sent and refused (RFC 6750 §3.1).
      if (/^bearer /i.test(authorization)) throw tokenRefused("The access token is invalid or has expired.");
      throw new AppError("unauthorized", "Send a valid access token as 'Authorization: Bearer <token>'.");
    }
    const claims = await verifyAccessToken(keys, match[1], clock.now());
    if (!claims) throw tokenRefused("The access token is invalid or has expired.");
    // One statement: the user, whether the token's sign-in is still live (logging out, revoking
    // the session or reuse detection cut off its access tokens at once), and on request the profile.
    const found = await users.authenticate(claims.sub, claims.sid, { withProfile: options.withProfile === true });
    if (options.withProfile) c.set("profile", found?.profile ?? null);
    const user = found?.user;
    // tokens_valid_after has second precision on the token side (iat is in whole seconds).
    if (!user?.isActive || !found?.sessionLive || claims.iat * 1000 < user.tokensValidAfter) {
      throw signInEnded();
    }
    c.set("user", user);
    c.set("token", { jti: claims.jti, iat: claims.iat, sessionId: claims.sid });
    await next();
  };
}

/** Requires a staff user; use after `requireUser`. */
export function requireStaff(): MiddlewareHandler<AppEnv> {
  return async function requireStaff(c, next) {
    if (!c.var.user.isStaff) throw staffOnly();
    await next();
  };
}
