/**
 * The things a user does with emailed codes by address: ask for one, confirm their email, sign in
 * without a password, and reset a forgotten password. Enumeration-safe throughout: an unknown,
 * disabled or already-verified account gets the same answers *and the same work* as any other
 * (the same statements, the same HMAC, the same queue message; rows simply do not match), and
 * every failed use of a code is the same `400 invalid_code`.
 */
import { and, eq, getTableColumns, type SQL, sql } from "drizzle-orm";
import { runBatch } from "../../db/client";
import { otpCodes, type User, users } from "../../db/schema";
import type { Deps } from "../../env";
import { clearCounter, countHit, currentCount, isOverLimit, RATE_LIMITS, type RateLimitRow, rateLimited } from "../../lib/rate-limit";
import { activityInsert, activityInsertSelect } from "../activity/activity.record";
import { assertPasswordPolicy } from "../auth/auth.service";
import { hasherFromEnv, hashPassword, UNUSABLE_PASSWORD_HASH } from "../auth/password-hash";
import { invalidateAccessTokens, prepareTokenPair, revokeAllForUser, type TokenResponse } from "../auth/tokens.service";
import type { RequestablePurpose } from "./otp.purposes";
import { checkCode, enqueueMail, invalidCode, mailSubjects, newCode, recordFailure, spendCode, supersedeCodes } from "./otp.service";

/**
 * `POST /auth/otp`: issues a fresh code for `purpose` (superseding the previous one) and enqueues
 * its mail. One batch decides everything inside the database: the per-IP counter, the address's
 * per-minute (per purpose) and per-hour counters (the hour counts only requests the minute let through, so
 * rapid repeats cannot use up a real user's hourly allowance), and the code row, inserted only
 * when the address belongs to a live account (not yet verified, for `verify_email`) and every
 * limit allows it. The mail is enqueued in every case; the consumer sends only a code that
 * exists and is live, so for an unknown address or a throttled request it sends nothing.
 * Only the per-IP limit is visible (429), because it says nothing about the account.
 */
export async function requestCode(deps: Deps, input: { email: string; purpose: RequestablePurpose }): Promise<void> {
  const { db, clock, meta } = deps;
  const now = clock.now();
  const ip = meta.ip ?? "unknown";
  const { email, purpose } = input;
  const { row, message } = await newCode(deps, email, purpose);

  const subjects = mailSubjects(email, purpose);
  const within = (name: "otpPerIp" | "otpPerEmailMinute" | "otpPerEmailHour", subject: string) =>
    sql`${currentCount(name, subject, now)} <= ${RATE_LIMITS[name].limit}`;
  const allowed = and(
    within("otpPerIp", ip),
    within("otpPerEmailMinute", subjects.minute),
    within("otpPerEmailHour", subjects.hour),
  ) as SQL;
  const owner = db
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.email, email), eq(users.isActive, true), purpose === "verify_email" ? eq(users.emailVerified, false) : undefined))
    .limit(1);
  const ownerId = sql`(${owner})`;
  const values: Record<string, unknown> = { ...row, userId: null };
  // drizzle lists every column in table order for INSERT … SELECT; select the values in that order.
  const columns = Object.keys(getTableColumns(otpCodes)).map((key) => (key === "userId" ? sql`${users.id}` : sql`${values[key] ?? null}`));

  const [ipRows, , hourRows] = (await runBatch(db, [
    countHit(db, "otpPerIp", ip, now),
    countHit(db, "otpPerEmailMinute", subjects.minute, now),
    // Counted only when the minute window let the request through.
    countHit(db, "otpPerEmailHour", subjects.hour, now, within("otpPerEmailMinute", subjects.minute)),
    supersedeCodes(db, ownerId, purpose, now, allowed),
    db.insert(otpCodes).select(sql`SELECT ${sql.join(columns, sql`, `)} FROM ${users} WHERE ${users.id} = ${ownerId} AND ${allowed}`),
    activityInsertSelect(
      db,
      { userId: "", type: "otp_requested", nowMs: now, meta, details: { purpose } },
      { userIdFrom: ownerId, where: and(sql`${ownerId} IS NOT NULL`, allowed) },
    ),
  ])) as [RateLimitRow[], RateLimitRow[], RateLimitRow[]];
  const ipRow = ipRows[0];
  if (ipRow && isOverLimit("otpPerIp", ipRow)) throw rateLimited(ipRow, now);
  if ((hourRows[0]?.count ?? Number.POSITIVE_INFINITY) > RATE_LIMITS.otpPerEmailHour.limit) {
    // Neither the address nor the account: logs should not collect who asked for codes.
    console.warn(`[otp] throttled: a ${purpose} code request over the per-address limit mailed nothing`);
  }
  await enqueueMail(deps, message);
}

/** The account a code proved, and the code to spend; or the failure recorded and `invalid_code` thrown. */
async function expectValidCode(deps: Deps, purpose: RequestablePurpose, input: { email: string; code: string }) {
  const check = await checkCode(deps, { address: input.email, purpose, code: input.code, account: { by: "address" } });
  if (!check.ok) return recordFailure(deps, check);
  // A code checked by address succeeds only for the live account that owns the address.
  if (!check.user) throw invalidCode();
  return { user: check.user, codeId: check.codeId };
}

/**
 * What proving the mailbox by a code sign-in or reset does to an account that was not verified:
 * whoever registered the address may not have owned it (pre-registration hijacking), so the
 * password set before verification stops working and every earlier sign-in ends.
 */
function claimUnverified(deps: Deps, user: User, now: number) {
  const { db } = deps;
  if (user.emailVerified) return [];
  return [
    db.update(users).set({ emailVerified: true, passwordHash: UNUSABLE_PASSWORD_HASH, updatedAt: now }).where(eq(users.id, user.id)),
    revokeAllForUser(db, user.id, "email_claimed", now),
    invalidateAccessTokens(db, user.id, now),
  ];
}

/** `POST /auth/verify-email`: marks the email verified with a `verify_email` code (the registrant's own proof). */
export async function verifyEmail(deps: Deps, input: { email: string; code: string }): Promise<User> {
  const { user, codeId } = await expectValidCode(deps, "verify_email", input);
  const now = deps.clock.now();
  await spendCode(deps, codeId, { userId: user.id, type: "email_verified" }, [
    deps.db.update(users).set({ emailVerified: true, updatedAt: now }).where(eq(users.id, user.id)),
  ]);
  return { ...user, emailVerified: true, updatedAt: now };
}

/**
 * The website's confirmation step: like `verifyEmail`, and the same code also starts a sign-in
 * (the registrant just proved the mailbox, as a `login` code would), in the same transaction as
 * the verification. The password set at registration stays: this is the registrant's own proof,
 * exactly as `verifyEmail` treats it.
 */
export async function verifyEmailAndSignIn(deps: Deps, input: { email: string; code: string }): Promise<TokenResponse> {
  const { db, clock, meta } = deps;
  const { user, codeId } = await expectValidCode(deps, "verify_email", input);
  const now = clock.now();
  const pair = await prepareTokenPair(deps, user.id);
  await spendCode(deps, codeId, { userId: user.id, type: "email_verified" }, [
    db.update(users).set({ emailVerified: true, updatedAt: now }).where(eq(users.id, user.id)),
    pair.insert,
    activityInsert(db, {
      userId: user.id,
      type: "login",
      nowMs: now,
      meta,
      details: { method: "verify_email", session_id: pair.row.familyId },
    }),
  ]);
  return pair.response;
}

/**
 * `POST /auth/login/otp`: a token pair for a `login` code. The code proves the user reads that
 * mailbox, so an unverified email becomes verified here too — and, since the password may have
 * been set by someone else, that password stops working (see `claimUnverified`).
 */
export async function loginWithCode(deps: Deps, input: { email: string; code: string }): Promise<TokenResponse> {
  const { db, clock, meta } = deps;
  const { user, codeId } = await expectValidCode(deps, "login", input);
  const now = clock.now();
  const pair = await prepareTokenPair(deps, user.id);
  await spendCode(deps, codeId, { userId: user.id, type: "login", details: { method: "otp", session_id: pair.row.familyId } }, [
    // Earlier sign-ins end before this one starts, in the same transaction.
    ...claimUnverified(deps, user, now),
    !user.emailVerified && activityInsert(db, { userId: user.id, type: "email_verified", nowMs: now, meta, details: { method: "otp" } }),
    pair.insert,
    clearCounter(db, "loginFailuresPerAccount", user.id),
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
  const { user, codeId } = await expectValidCode(deps, "reset_password", input);
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
