/**
 * A browser sign-in is a Latchkey sign-in like any other: the same token pair the API hands out,
 * kept in two cookies instead of a client's memory. `__Host-` cookies (RFC 6265bis §4.1.3.2:
 * Secure, Path=/, no Domain, so no sibling host can set or read them), HttpOnly (no script
 * reads them), SameSite=Lax (a cross-site POST carries neither).
 *
 * - `__Host-lk_access`: the short-lived access JWT, Max-Age = its `expires_in`. Each page load
 *   checks it exactly as the API does (`requireUser`: signature, expiry, live sign-in, account
 *   enabled, `tokens_valid_after`), so logout, logout-all, password change, disabling and
 *   deletion end the browser session on its next page.
 * - `__Host-lk_refresh`: the refresh token. When the access cookie is missing or refused, the
 *   page rotates the refresh token (the API's `rotateRefreshToken`, with its reuse detection).
 *
 * Parallel loads: two tabs may present the same refresh token at once. The service lets one win;
 * the other gets `invalid_refresh_token` without the family being revoked (the 5 s race grace).
 * The loser (`RotationRaceLost`) must not clear the cookies (its Set-Cookie might arrive after the
 * winner's and erase them), so a GET is redirected to itself after a pause, counted by a short
 * `__Host-lk_retry` cookie: by then the browser holds the winner's cookies. Only once
 * RACE_RETRY_PAUSES_MS runs out, or another retry could not land inside the grace, does it count
 * as signed out, and then the sign-in ends on the server too: the winner was not this browser. A token refused for any other reason (revoked,
 * expired, unknown) signs out at once.
 *
 * CSRF: every form carries `_csrf`, an HMAC of the sign-in's id (its refresh-token family, which
 * survives rotation) or, before sign-in, of a random `__Host-lk_csrf` nonce; and a POST whose
 * `Origin` or `Sec-Fetch-Site` says it came from another site is refused before anything else.
 */
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";
import type { AppEnv } from "../env";
import { RefreshTokenSchema } from "../features/auth/auth.schemas";
import {
  endSignIn,
  logout,
  REFRESH_RACE_GRACE_MS,
  RotationRaceLost,
  rotateRefreshToken,
  type TokenResponse,
} from "../features/auth/tokens.service";
import { base64urlEncode, hmacSha256Hex, randomBytes, timingSafeEqual } from "../lib/crypto";
import { AppError, loggableError } from "../lib/errors";
import { log } from "../lib/log";
import { requireUser } from "../middleware/auth";
import type { WebEnv } from "./web.env";

export const COOKIE = {
  access: "__Host-lk_access",
  refresh: "__Host-lk_refresh",
  csrf: "__Host-lk_csrf",
  retry: "__Host-lk_retry",
  flash: "__Host-lk_flash",
  email: "__Host-lk_email",
  registrant: "__Host-lk_registrant",
} as const;

const BASE: CookieOptions = { path: "/", secure: true, httpOnly: true, sameSite: "Lax" };

/** How long a code flow's address is remembered: longer than a code lives, short enough to be gone soon after. */
const PENDING_EMAIL_MAX_AGE_S = 30 * 60;
/** The longest address RFC 5321 allows; anything longer in the cookie is not one we set. */
const EMAIL_MAX_LENGTH = 320;

/**
 * Remembers the address a code was just sent to (or is to be entered for), so the page that
 * takes the code can show it without the address riding in its URL, where browser history,
 * proxies and edge request logs would keep it.
 */
export function rememberEmail(c: Context, email: string): void {
  setCookie(c, COOKIE.email, email, { ...BASE, maxAge: PENDING_EMAIL_MAX_AGE_S });
}

/** The remembered address, or "" (shown back only as a field's value). */
export function rememberedEmail(c: Context): string {
  const email = getCookie(c, COOKIE.email) ?? "";
  return email.length <= EMAIL_MAX_LENGTH ? email : "";
}

/** Forgets the address once its flow is done. */
function forgetEmail(c: Context): void {
  if (getCookie(c, COOKIE.email) !== undefined) deleteCookie(c, COOKIE.email, BASE);
}

const REGISTRANT_LABEL = "latchkey web registrant v1";

/**
 * Marks this browser as the one that set the password of the (unverified) account at `email`: it
 * registered it, or signed in to it with that password. Such a browser confirms the address (and is
 * signed in) with the activation code alone (`/verify`). Whoever else enters the code proves the
 * mailbox, not the password someone chose at registration — maybe not its owner (pre-registration
 * hijacking) — so they must give that password too. `email` is the canonical address.
 */
export async function rememberRegistrant(c: Context<WebEnv>, email: string): Promise<void> {
  setCookie(c, COOKIE.registrant, await registrantTag(c, email), { ...BASE, maxAge: PENDING_EMAIL_MAX_AGE_S * 2 });
}

/** Whether this browser registered, or proved the password of, the account at canonical `email`. */
export async function isRegistrant(c: Context<WebEnv>, email: string): Promise<boolean> {
  const tag = getCookie(c, COOKIE.registrant);
  if (!tag || tag.length !== 64) return false;
  return timingSafeEqual(tag, await registrantTag(c, email));
}

function registrantTag(c: Context<WebEnv>, email: string): Promise<string> {
  return hmacSha256Hex(c.var.deps.secrets.otpSecret, `${REGISTRANT_LABEL}\n${email}`);
}

/** Stores a new token pair (after a sign-in or a rotation). */
export function setTokenCookies(c: Context<WebEnv>, pair: TokenResponse) {
  setCookie(c, COOKIE.access, pair.access_token, { ...BASE, maxAge: pair.expires_in });
  setCookie(c, COOKIE.refresh, pair.refresh_token, { ...BASE, maxAge: pair.refresh_expires_in });
}

/**
 * Ends the sign-in this browser holds, on the server: the family of its refresh cookie — also
 * when that token was already rotated, by a thief who copied it, say — and, when an access cookie
 * signed this request in, that sign-in. The cookies are left to the caller.
 */
async function endBrowserSignIn(c: Context<WebEnv>): Promise<void> {
  const refresh = refreshCookie(c);
  if (refresh && RefreshTokenSchema.safeParse(refresh).success) await logout(c.var.deps, refresh);
  if (c.var.signedIn) await endSignIn(c.var.deps, c.var.user.id, c.var.token.sessionId);
}

/**
 * The browser is now signed in with `pair`. A sign-in it held before (another account, or the
 * same one again) is ended, not just forgotten; the remembered address of a code flow and the
 * pre-sign-in CSRF nonce (forms made before this sign-in) go.
 */
export async function signInBrowser(c: Context<WebEnv>, pair: TokenResponse): Promise<void> {
  await endBrowserSignIn(c);
  setTokenCookies(c, pair);
  forgetBrowserState(c);
}

/** Signs the browser out: its sign-in ends on the server, and nothing of it stays in cookies. */
export async function signOutBrowser(c: Context<WebEnv>): Promise<void> {
  await endBrowserSignIn(c);
  clearTokenCookies(c);
  forgetBrowserState(c);
}

function forgetBrowserState(c: Context<WebEnv>): void {
  forgetEmail(c);
  if (getCookie(c, COOKIE.registrant) !== undefined) deleteCookie(c, COOKIE.registrant, BASE);
  if (getCookie(c, COOKIE.csrf) !== undefined) deleteCookie(c, COOKIE.csrf, BASE);
}

export function clearTokenCookies(c: Context<WebEnv>) {
  deleteCookie(c, COOKIE.access, BASE);
  deleteCookie(c, COOKIE.refresh, BASE);
}

export function refreshCookie(c: Context<WebEnv>): string | undefined {
  return getCookie(c, COOKIE.refresh);
}

/**
 * Runs the API's own `requireUser` against `token` as if it came in an Authorization header.
 * `requireUser` reads only `c.var.deps`, the header and `c.set`, so a view of the context with
 * that header is enough: the check is the API's, not a copy of it. False when it refuses.
 */
async function authenticate(c: Context<WebEnv>, token: string): Promise<boolean> {
  const view = {
    var: c.var,
    req: { header: (name: string) => (name.toLowerCase() === "authorization" ? `Bearer ${token}` : c.req.header(name)) },
    set: (key: never, value: never) => c.set(key, value),
  } as unknown as Context<AppEnv>;
  try {
    await requireUser({ withProfile: true })(view, async () => {});
    return true;
  } catch (error) {
    if (error instanceof AppError && error.code === "unauthorized") return false;
    throw error;
  }
}

/**
 * The pauses before the loser of a rotation race asks the browser to load the page again, one
 * per retry: the winner's answer, with the new cookies, may still be on its way. Together inside
 * REFRESH_RACE_GRACE_MS, past which the old token counts as stolen, and long enough that a slow
 * answer of this browser's own is not taken for a thief's (which ends the sign-in).
 */
export const RACE_RETRY_PAUSES_MS = [250, 500, 1000, 2000];
/**
 * What a retry may take besides its pause (the redirect, the browser's next request, the
 * rotation's round trips): a retry is made only if, with this, it lands before the grace ends.
 * Past it the old token counts as stolen, and the retry would report a theft that never was.
 */
export const RACE_RETRY_ROUND_TRIP_MS = 1_000;

/** The pause before retry number `retries` of a race the winner won at `rotatedAt`, or null: give up. */
function racePause(retries: number, rotatedAt: number, now: number): number | null {
  const pause = RACE_RETRY_PAUSES_MS[retries];
  if (pause === undefined) return null;
  return now + pause + RACE_RETRY_ROUND_TRIP_MS < rotatedAt + REFRESH_RACE_GRACE_MS ? pause : null;
}

export type SessionOutcome = "signed_in" | "anonymous" | "retry";

/**
 * Establishes who is signed in on this request: the access cookie, else one rotation of the
 * refresh cookie. Sets `c.var.user`, `profile`, `token` when signed in.
 */
export async function loadSession(c: Context<WebEnv>): Promise<SessionOutcome> {
  const access = getCookie(c, COOKIE.access);
  if (access && (await authenticate(c, access))) return "signed_in";
  const refresh = refreshCookie(c);
  if (!refresh) return "anonymous";
  if (!RefreshTokenSchema.safeParse(refresh).success) {
    clearTokenCookies(c);
    return "anonymous";
  }
  let pair: TokenResponse;
  try {
    pair = await rotateRefreshToken(c.var.deps, refresh);
  } catch (error) {
    // Too many rotations from this address (429): an error page, and the cookies stay as they are.
    if (!(error instanceof AppError) || error.code !== "invalid_refresh_token") throw error;
    // A concurrent page load rotated this token a moment ago: load the page again once the
    // winner's cookies are likely in place. A token that was revoked, expired or never existed
    // has no such race to wait for: signed out at once.
    const retries = Number(getCookie(c, COOKIE.retry) ?? 0);
    const pause = error instanceof RotationRaceLost ? racePause(retries, error.rotatedAt, c.var.deps.clock.now()) : null;
    if (pause !== null) {
      setCookie(c, COOKIE.retry, String(retries + 1), { ...BASE, maxAge: 10 });
      await new Promise((resolve) => setTimeout(resolve, pause));
      return "retry";
    }
    if (getCookie(c, COOKIE.retry)) deleteCookie(c, COOKIE.retry, BASE);
    // Still lost after every retry: this browser never got the token that won, so whoever holds
    // it is not this browser (a thief inside the grace window) or lost it (the winner's answer
    // never arrived). Either way the sign-in ends here, not only this browser's part of it.
    if (error instanceof RotationRaceLost) {
      await logout(c.var.deps, refresh).catch((failure: unknown) =>
        log("error", "web.race_logout_failed", { error: loggableError(failure) }),
      );
    }
    clearTokenCookies(c);
    return "anonymous";
  }
  setTokenCookies(c, pair);
  if (getCookie(c, COOKIE.retry)) deleteCookie(c, COOKIE.retry, BASE);
  return (await authenticate(c, pair.access_token)) ? "signed_in" : "anonymous";
}

const CSRF_LABEL = "latchkey web csrf v1";

/** The anonymous nonce cookie, created when missing (a browser's pre-sign-in CSRF binding). */
function anonymousNonce(c: Context<WebEnv>): string {
  let nonce = getCookie(c, COOKIE.csrf);
  if (!nonce || !/^[A-Za-z0-9_-]{43}$/.test(nonce)) {
    nonce = base64urlEncode(randomBytes(32));
    setCookie(c, COOKIE.csrf, nonce, BASE);
  }
  return nonce;
}

async function csrfFor(secret: string, binding: string): Promise<string> {
  return hmacSha256Hex(secret, `${CSRF_LABEL}\n${binding}`);
}

/** The token forms on this page carry (bound to the sign-in, or to the anonymous nonce). */
export async function csrfToken(c: Context<WebEnv>): Promise<string> {
  const secret = c.var.deps.secrets.otpSecret;
  const sessionId = c.var.signedIn ? c.var.token.sessionId : null;
  return csrfFor(secret, sessionId ? `session:${sessionId}` : `anonymous:${anonymousNonce(c)}`);
}

/** Whether a submitted `_csrf` matches this browser's sign-in or its anonymous nonce. */
export async function csrfValid(c: Context<WebEnv>, submitted: unknown): Promise<boolean> {
  if (typeof submitted !== "string" || submitted.length !== 64) return false;
  const secret = c.var.deps.secrets.otpSecret;
  const candidates: string[] = [];
  if (c.var.signedIn) candidates.push(await csrfFor(secret, `session:${c.var.token.sessionId}`));
  const nonce = getCookie(c, COOKIE.csrf);
  if (nonce) candidates.push(await csrfFor(secret, `anonymous:${nonce}`));
  let ok = false;
  for (const expected of candidates) ok = timingSafeEqual(expected, submitted) || ok;
  return ok;
}

/**
 * Fetch Metadata and Origin (the OWASP CSRF cheat sheet's defence in depth): a state-changing
 * request from another site is refused whatever it carries. `Sec-Fetch-Site` decides when the
 * browser sends it. `Origin` is "null" on our own forms, because the app's `Referrer-Policy:
 * no-referrer` makes browsers hide it (Fetch §3.2.5), so only a real origin is compared.
 * Browsers that send neither still need the token.
 */
export function sameOrigin(c: Context<WebEnv>): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined) return site === "same-origin";
  const origin = c.req.header("origin");
  if (origin !== undefined && origin !== "null" && origin !== new URL(c.req.url).origin) return false;
  return true;
}

/**
 * A return path that stays on this site: one leading slash, no scheme, no backslash tricks, and
 * no control characters (a NUL is no header injection, but the runtime refuses it in `Location`).
 * Other characters beyond ASCII go percent-encoded as UTF-8, as a browser sends them: `Location`
 * is written as Latin-1, and `c.redirect` encodes only what Latin-1 cannot hold, so `/é` would
 * leave as the single byte E9 instead of the UTF-8 a browser reads it as.
 */
export function safeNext(value: unknown, fallback: string): string {
  if (typeof value !== "string" || value.length > 512) return fallback;
  if (!/^\/(?![/\\])[^\s\\\u0000-\u001f\u007f-\u009f]*$/.test(value)) return fallback;
  try {
    return value.replace(/[^\u0000-\u007f]+/g, encodeURIComponent);
  } catch {
    return fallback; // a lone surrogate, which no UTF-8 can carry
  }
}
