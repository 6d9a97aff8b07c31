/**
 * Every password check — login, and each place a signed-in user re-enters their password — goes
 * through the same two failure counters: the sign-in identifier's (a signed-in user's counts on
 * the account's address) and the client IP's. A check is *reserved*
 * before the password is verified (increment-then-compare in one statement), so twenty or thirty
 * parallel guesses verify at most the limit between them, and during a lockout even the right
 * password answers 429. A check that succeeds gives its reservation back.
 */
import type { Deps } from "../../deps";
import { AppError, type ErrorCode } from "../../lib/errors";
import { clientKey } from "../../lib/ip";
import { isOverLimit, type RateLimitRow, rateLimited } from "../../lib/rate-limit";
import type { PasswordCheckRelease, User } from "../../store";
import { checkPassword } from "./password-hash";

/** Throws 429 (Retry-After: the later of the two windows) when either reservation went over its limit. */
export function assertReserved(ipRow: RateLimitRow | undefined, identifierRow: RateLimitRow | undefined, nowMs: number): void {
  const over = [
    ipRow && isOverLimit("loginFailuresPerIp", ipRow) ? ipRow : null,
    identifierRow && isOverLimit("loginFailuresPerIdentifier", identifierRow) ? identifierRow : null,
  ].filter((row): row is RateLimitRow => row !== null);
  if (over.length === 0) return;
  const latest = over.reduce((a, b) => (a.resetAt >= b.resetAt ? a : b));
  throw rateLimited(latest, nowMs, "Too many failed password attempts; try again later.");
}

/**
 * Checks the signed-in user's current password (password change, deletion, email change) under
 * the same counters as login. Throws 429 when locked out, `invalid_current_password` when wrong
 * (recording `login_failed`); on success returns the release, which the caller hands to the
 * store method of the change it authorised (so it lands in that change's batch).
 */
export function reauthenticate(deps: PasswordCheckDeps, user: User, password: string | undefined): Promise<PasswordCheckRelease> {
  if (password === undefined) throw new AppError("invalid_current_password", "Give your current password (current_password).");
  return provePassword(deps, user, password, { error: "invalid_current_password", details: { reauthentication: true } });
}

/**
 * Checks the password of an account that is not signed in but proved its mailbox with a code: the
 * registrant confirming their address (`verify_email`). Like `reauthenticate`, but a wrong
 * password is `invalid_credentials`, as at login.
 */
export function proveRegistrant(deps: PasswordCheckDeps, user: User, password: string): Promise<PasswordCheckRelease> {
  return provePassword(deps, user, password, {
    error: "invalid_credentials",
    detail: "That is not the password this account was registered with.",
    details: { verification: true },
  });
}

type PasswordCheckDeps = Pick<Deps, "counters" | "activity" | "clock" | "meta" | "passwordHasher">;

async function provePassword(
  deps: PasswordCheckDeps,
  user: User,
  password: string,
  failure: { error: ErrorCode; detail?: string; details: Record<string, boolean> },
): Promise<PasswordCheckRelease> {
  const { clock, meta } = deps;
  const now = clock.now();
  const ip = clientKey(meta.ip);
  // On the counter of the account's address, which login by address shares (`identifierSubject`).
  const identifier = { email: user.email };
  const reserved = await deps.counters.reservePasswordCheck(identifier, ip, now);
  assertReserved(reserved.ip, reserved.identifier, now);
  if (!(await checkPassword(password, user.passwordHash, deps.passwordHasher))) {
    await deps.activity.record({
      userId: user.id,
      type: "login_failed",
      nowMs: now,
      meta,
      details: { method: "password", ...failure.details },
    });
    throw new AppError(failure.error, failure.detail);
  }
  return { identifier, ip };
}
