/**
 * One-time codes sent by email: account activation, passwordless login, password reset.
 * A code is 6 uniform digits; the database keeps only HMAC-SHA256(OTP_SECRET, user:purpose:code),
 * so a database leak does not reveal live codes and a hash is useless for another user or purpose.
 * Issuing a code supersedes the previous one of the same purpose.
 *
 * Using a code has three steps: `checkCode` spends one attempt and compares in constant time;
 * `spendCode` then runs the caller's change in one D1 batch that also consumes the code, so the
 * change happens exactly once or not at all, whatever runs concurrently.
 */
import { and, desc, eq, gt, isNull, lt, sql } from "drizzle-orm";
import { type Db, type Query, runBatch } from "../../db/client";
import { otpCodes, type User } from "../../db/schema";
import type { Deps } from "../../env";
import { hmacSha256Hex, randomDigits, randomId, timingSafeEqual } from "../../lib/crypto";
import { AppError } from "../../lib/errors";
import { type ActivityEntry, type ActivityType, activityInsertSelect } from "../activity/activity.record";

export const OTP_PURPOSES = ["verify_email", "login", "reset_password"] as const;
export type OtpPurpose = (typeof OTP_PURPOSES)[number];
export const OTP_LENGTH = 6;

/** What the mail queue carries: everything the mail needs, and the id to check the code is still live. */
export interface MailMessage {
  kind: "otp";
  to: string;
  purpose: OtpPurpose;
  code: string;
  code_id: string;
  expires_at: string;
}

export function hashCode(secret: string, userId: string, purpose: OtpPurpose, code: string): Promise<string> {
  return hmacSha256Hex(secret, `${userId}:${purpose}:${code}`);
}

/** Marks every live code of this user and purpose as used up (a newer code replaces them). */
export function supersedeCodes(db: Db, userId: string, purpose: OtpPurpose, nowMs: number) {
  return db
    .update(otpCodes)
    .set({ consumedAt: nowMs })
    .where(and(eq(otpCodes.userId, userId), eq(otpCodes.purpose, purpose), isNull(otpCodes.consumedAt)));
}

/**
 * Makes a fresh code for `user`. Nothing is written or sent yet: `queries` go into the caller's
 * batch (so the code exists only if the change it belongs to happened), then `send()` enqueues
 * the mail. A failed enqueue is logged, not thrown: the stored state is consistent and the user
 * can ask for a new code.
 */
export async function prepareCode(
  deps: Deps,
  user: Pick<User, "id" | "email">,
  purpose: OtpPurpose,
): Promise<{ queries: Query[]; send: () => Promise<void> }> {
  const { db, clock, env } = deps;
  const config = await deps.config();
  const now = clock.now();
  const code = randomDigits(OTP_LENGTH);
  const row = {
    id: randomId(),
    userId: user.id,
    purpose,
    codeHash: await hashCode(env.OTP_SECRET, user.id, purpose, code),
    createdAt: now,
    expiresAt: now + config.otp_ttl * 1000,
    attempts: 0,
  };
  const message: MailMessage = {
    kind: "otp",
    to: user.email,
    purpose,
    code,
    code_id: row.id,
    expires_at: new Date(row.expiresAt).toISOString(),
  };
  return {
    queries: [supersedeCodes(db, user.id, purpose, now), db.insert(otpCodes).values(row)],
    send: async () => {
      try {
        await env.MAIL_QUEUE.send(message, { contentType: "json" });
      } catch (error) {
        console.error(`[otp] could not enqueue ${purpose} mail for user ${user.id}`, error);
      }
    },
  };
}

/** The one answer for every failed use of a code: nothing tells which part was wrong. */
export function invalidCode(): AppError {
  return new AppError("invalid_code", "The code is not valid for this email address. Request a new one if it has expired.");
}

export const CODE_PATTERN = /^\d{6}$/;

/** The result of `checkCode`: the code to spend, or the writes that record the failed guess. */
export type CodeCheck = { ok: true; codeId: string } | { ok: false; queries: Query[] };

/**
 * Checks `code` against `user`'s live code for `purpose`. An attempt is reserved with a
 * conditional increment *before* comparing, so concurrent guesses cannot exceed
 * `otp_max_attempts` between them; the guess that uses up the last attempt also kills the code
 * (its `queries`, for the caller's batch), which then fails even for the right digits.
 * `user` may be null (unknown email): the HMAC is computed anyway so both cases cost the same.
 */
export async function checkCode(deps: Deps, user: Pick<User, "id"> | null, purpose: OtpPurpose, code: string): Promise<CodeCheck> {
  const { db, clock, env } = deps;
  const now = clock.now();
  const presented = await hashCode(env.OTP_SECRET, user?.id ?? "", purpose, code);
  if (!user || !CODE_PATTERN.test(code)) return { ok: false, queries: [] };

  const maxAttempts = (await deps.config()).otp_max_attempts;
  const [live] = await db
    .select({ id: otpCodes.id, codeHash: otpCodes.codeHash })
    .from(otpCodes)
    .where(and(eq(otpCodes.userId, user.id), eq(otpCodes.purpose, purpose), isNull(otpCodes.consumedAt), gt(otpCodes.expiresAt, now)))
    .orderBy(desc(otpCodes.createdAt))
    .limit(1);
  if (!live) return { ok: false, queries: [] };

  const [reserved] = await db
    .update(otpCodes)
    .set({ attempts: sql`${otpCodes.attempts} + 1` })
    .where(and(eq(otpCodes.id, live.id), isNull(otpCodes.consumedAt), gt(otpCodes.expiresAt, now), lt(otpCodes.attempts, maxAttempts)))
    .returning({ attempts: otpCodes.attempts });
  if (!reserved) return { ok: false, queries: [] };

  if (timingSafeEqual(presented, live.codeHash)) return { ok: true, codeId: live.id };
  const exhausted = reserved.attempts >= maxAttempts;
  return { ok: false, queries: exhausted ? [killCode(db, live.id, now)] : [] };
}

/** Ends a code early (attempts used up); a code already consumed keeps its first reason. */
function killCode(db: Db, codeId: string, nowMs: number) {
  return db
    .update(otpCodes)
    .set({ consumedAt: nowMs })
    .where(and(eq(otpCodes.id, codeId), isNull(otpCodes.consumedAt)));
}

/**
 * The batch's first statement: records the activity entry with the user id read from the code
 * row *only while the code is live*. When it is not (used, superseded, killed or expired since
 * `checkCode`, e.g. by a concurrent request), the sub-select yields NULL, the NOT NULL constraint
 * on activity.user_id fails, and D1 rolls back the whole batch. So the statements after it need
 * no conditions of their own: they run only if this request is the one that spends the code.
 */
function guardedActivityInsert(db: Db, codeId: string, entry: ActivityEntry) {
  const liveCodeOwner = sql`(SELECT ${otpCodes.userId} FROM ${otpCodes} WHERE ${and(
    eq(otpCodes.id, codeId),
    eq(otpCodes.userId, entry.userId),
    isNull(otpCodes.consumedAt),
    gt(otpCodes.expiresAt, entry.nowMs),
  )})`;
  return activityInsertSelect(db, entry, { userIdFrom: liveCodeOwner });
}

function isGuardFailure(error: unknown): boolean {
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
    const message = e instanceof Error ? e.message : String(e);
    if (message.includes("NOT NULL constraint failed") && message.includes("activity.user_id")) return true;
  }
  return false;
}

/**
 * Spends the code `codeId` and applies `effects` in one D1 batch (one transaction):
 * [guarded activity entry, ...effects, consume]. Either the code is consumed, the activity is
 * recorded and every effect applied, or nothing is written and this throws `invalid_code`.
 */
export async function spendCode(
  deps: Deps,
  codeId: string,
  entry: { userId: string; type: ActivityType; details?: Record<string, string | number | boolean> },
  effects: (Query | false | null | undefined)[],
): Promise<void> {
  const { db, clock, meta } = deps;
  const now = clock.now();
  try {
    await runBatch(db, [
      guardedActivityInsert(db, codeId, { ...entry, nowMs: now, meta }),
      ...effects,
      // Cannot miss: the guard just saw the code live, in the same transaction.
      db
        .update(otpCodes)
        .set({ consumedAt: now })
        .where(and(eq(otpCodes.id, codeId), isNull(otpCodes.consumedAt))),
    ]);
  } catch (error) {
    if (isGuardFailure(error)) throw invalidCode();
    throw error;
  }
}
