/**
 * The four things a user does with emailed codes: ask for one, confirm their email, sign in
 * without a password, and reset a forgotten password. Enumeration-safe throughout: an unknown,
 * disabled or already-verified account gets the same answers as any other, and every failed use of
 * a code is the same `400 invalid_code`.
 */
import { eq } from "drizzle-orm";
import { runBatch } from "../../db/client";
import { type User, users } from "../../db/schema";
import type { Deps } from "../../env";
import { clearCounter, countHit, enforceRateLimit, RATE_LIMITS, type RateLimitName } from "../../lib/rate-limit";
import { activityInsert } from "../activity/activity.record";
import { assertPasswordPolicy } from "../auth/auth.service";
import { hasherFromEnv, hashPassword } from "../auth/password-hash";
import { invalidateAccessTokens, prepareTokenPair, revokeAllForUser, type TokenResponse } from "../auth/tokens.service";
import { checkCode, invalidCode, type OtpPurpose, prepareCode, spendCode } from "./otp.service";

/** A live account by canonical email, or null (unknown and disabled look the same to callers). */
async function activeUserByEmail(deps: Deps, email: string): Promise<User | null> {
  const user = await deps.db.query.users.findFirst({ where: eq(users.email, email) });
  return user?.isActive ? user : null;
}

/** Codes are often pasted with a space or dash in the middle ("123 456"). */
function normalizeCode(code: string): string {
  return code.replace(/[\s-]/g, "");
}

/** Counts one hit on a per-email limit; true when it is over. */
async function overLimit(deps: Deps, name: RateLimitName, userId: string, nowMs: number): Promise<boolean> {
  const [row] = await countHit(deps.db, name, userId, nowMs);
  return row !== undefined && row.count > RATE_LIMITS[name].limit;
}

/**
 * `POST /auth/otp`: issues a fresh code for `purpose` (superseding the previous one) and enqueues
 * its mail, when the account exists, is active, and has not had a code in the last minute nor too
 * many this hour. Otherwise nothing is mailed; the caller answers the same 202 either way. Only
 * the per-IP limit is visible (429), because it says nothing about the account.
 */
export async function requestCode(deps: Deps, input: { email: string; purpose: OtpPurpose }): Promise<void> {
  const { db, clock, meta } = deps;
  const now = clock.now();
  await enforceRateLimit(db, "otpPerIp", meta.ip ?? "unknown", now);
  const user = await activeUserByEmail(deps, input.email);
  if (!user) return;
  // Nothing to confirm; a mail would only confuse (and would tell nothing to the requester).
  if (input.purpose === "verify_email" && user.emailVerified) return;

  // The hour window counts only requests that got past the minute window, so rapid repeats
  // cannot use up the hour's allowance of a real user.
  if ((await overLimit(deps, "otpPerEmailMinute", user.id, now)) || (await overLimit(deps, "otpPerEmailHour", user.id, now))) {
    // The user id, not the address: logs should not collect who asked for codes.
    console.warn(`[otp] throttled: no ${input.purpose} code mailed for user ${user.id}`);
    return;
  }

  const code = await prepareCode(deps, user, input.purpose);
  await runBatch(db, [
    ...code.queries,
    activityInsert(db, { userId: user.id, type: "otp_requested", nowMs: now, meta, details: { purpose: input.purpose } }),
  ]);
  await code.send();
}

/**
 * Checks the code or throws `invalid_code`, after recording the failed guess (and, for a sign-in,
 * a `login_failed` entry for the account's history).
 */
async function expectValidCode(deps: Deps, user: User | null, purpose: OtpPurpose, code: string): Promise<{ user: User; codeId: string }> {
  const check = await checkCode(deps, user, purpose, normalizeCode(code));
  if (check.ok && user) return { user, codeId: check.codeId };
  if (user && !check.ok) {
    await runBatch(deps.db, [
      ...check.queries,
      purpose === "login" &&
        activityInsert(deps.db, {
          userId: user.id,
          type: "login_failed",
          nowMs: deps.clock.now(),
          meta: deps.meta,
          details: { method: "otp" },
        }),
    ]);
  }
  throw invalidCode();
}

/** `POST /auth/verify-email`: marks the email verified with a `verify_email` code. */
export async function verifyEmail(deps: Deps, input: { email: string; code: string }): Promise<User> {
  const found = await activeUserByEmail(deps, input.email);
  const { user, codeId } = await expectValidCode(deps, found, "verify_email", input.code);
  const now = deps.clock.now();
  await spendCode(deps, codeId, { userId: user.id, type: "email_verified" }, [
    deps.db.update(users).set({ emailVerified: true, updatedAt: now }).where(eq(users.id, user.id)),
  ]);
  return { ...user, emailVerified: true, updatedAt: now };
}

/**
 * `POST /auth/login/otp`: a token pair for a `login` code. The code proves the user reads that
 * mailbox, so an unverified email becomes verified here too.
 */
export async function loginWithCode(deps: Deps, input: { email: string; code: string }): Promise<TokenResponse> {
  const { db, clock, meta } = deps;
  const found = await activeUserByEmail(deps, input.email);
  const { user, codeId } = await expectValidCode(deps, found, "login", input.code);
  const now = clock.now();
  const pair = await prepareTokenPair(deps, user.id);
  await spendCode(deps, codeId, { userId: user.id, type: "login", details: { method: "otp", session_id: pair.row.familyId } }, [
    pair.insert,
    clearCounter(db, "loginFailuresPerAccount", user.id),
    !user.emailVerified && db.update(users).set({ emailVerified: true, updatedAt: now }).where(eq(users.id, user.id)),
    !user.emailVerified && activityInsert(db, { userId: user.id, type: "email_verified", nowMs: now, meta, details: { method: "otp" } }),
  ]);
  return pair.response;
}

/**
 * `POST /auth/password/reset`: sets a new password with a `reset_password` code, ends every
 * session (refresh tokens revoked, access tokens cut off) and marks the email verified (the code
 * proves the mailbox). The old password stops working in the same transaction.
 */
export async function resetPassword(deps: Deps, input: { email: string; code: string; new_password: string }): Promise<void> {
  const { db, clock, env } = deps;
  // Checked before the code against what the caller already knows (the email), so a weak
  // password is refused the same way for every address; the username check follows below.
  assertPasswordPolicy(input.new_password, { email: input.email }, "new_password");
  const found = await activeUserByEmail(deps, input.email);
  const { user, codeId } = await expectValidCode(deps, found, "reset_password", input.code);
  // A failure here leaves the code live (one attempt spent), so the user can retry with it.
  assertPasswordPolicy(input.new_password, { email: user.email, username: user.username }, "new_password");

  const passwordHash = await hashPassword(input.new_password, hasherFromEnv(env.PASSWORD_HASHER));
  const now = clock.now();
  await spendCode(deps, codeId, { userId: user.id, type: "password_reset" }, [
    db.update(users).set({ passwordHash, emailVerified: true, updatedAt: now }).where(eq(users.id, user.id)),
    revokeAllForUser(db, user.id, "password_reset", now),
    invalidateAccessTokens(db, user.id, now),
    clearCounter(db, "loginFailuresPerAccount", user.id),
  ]);
}
