/**
 * One-time codes sent by email: account activation, passwordless login, password reset, and
 * proof of a new address on an email change. A code is 6 uniform digits; the database keeps only
 * HMAC-SHA256(OTP_SECRET, purpose:address:code), so a database leak does not reveal live codes.
 *
 * A code is bound to the address it was mailed to (`sent_to`, and the HMAC input): it verifies or
 * signs in that address and no other, and any change of the account's email voids every code the
 * account has outstanding. Issuing a code supersedes the previous one of the same purpose.
 *
 * Using a code has two round trips. `checkCode` reads the account and the address's daily
 * failure counter and reserves one attempt on the newest live code (a conditional increment, so
 * concurrent guesses cannot exceed `otp_max_attempts` between them), all in one batch, and
 * compares in constant time. Then either `spendCode` runs the caller's change in one batch that
 * also consumes the code — exactly once, whatever runs concurrently — or `recordFailure` counts
 * the wrong guess. For an address without an account the same statements run (they match no
 * rows), so neither the answer nor the work tells whether an account exists.
 */
import { and, desc, eq, gt, gte, isNull, type SQL, sql } from "drizzle-orm";
import { type Db, type Query, runBatch } from "../../db/client";
import { otpCodes, rateLimits, type User, users } from "../../db/schema";
import type { Deps } from "../../env";
import { hmacSha256Hex, randomDigits, randomId, timingSafeEqual } from "../../lib/crypto";
import { AppError } from "../../lib/errors";
import { countHit, currentCount, type RateLimitRow, rateLimitKey } from "../../lib/rate-limit";
import { type ActivityEntry, type ActivityType, activityInsertSelect } from "../activity/activity.record";
import type { MailMessage } from "../mail/mail.messages";
import { CODE_PATTERN, OTP_LENGTH, type OtpPurpose } from "./otp.purposes";

export function hashCode(secret: string, address: string, purpose: OtpPurpose, code: string): Promise<string> {
  return hmacSha256Hex(secret, `${purpose}:${address}:${code}`);
}

/** Codes are often pasted with a space or dash in the middle ("123 456"). */
export function normalizeCode(code: string): string {
  return code.replace(/[\s-]/g, "");
}

/** SQL: the id of the live account that owns `address` (NULL when there is none). */
export function accountOf(address: string): SQL<string | null> {
  return sql<string | null>`(SELECT ${users.id} FROM ${users} WHERE ${users.email} = ${address} AND ${users.isActive} = 1)`;
}

/** Marks every live code of this user and purpose as used up (a newer code replaces them). */
export function supersedeCodes(db: Db, userId: string | SQL, purpose: OtpPurpose, nowMs: number, when?: SQL) {
  return db
    .update(otpCodes)
    .set({ consumedAt: nowMs })
    .where(and(eq(otpCodes.userId, userId), eq(otpCodes.purpose, purpose), isNull(otpCodes.consumedAt), when));
}

/** Voids every outstanding code of the account: its address changed, so none of them proves anything now. */
export function voidAllCodes(db: Db, userId: string, nowMs: number) {
  return db
    .update(otpCodes)
    .set({ consumedAt: nowMs })
    .where(and(eq(otpCodes.userId, userId), isNull(otpCodes.consumedAt)));
}

/**
 * Puts a mail on the queue. A failed enqueue is logged, not thrown: the stored state is
 * consistent, and the user can ask for a new code.
 */
export async function enqueueMail(deps: Pick<Deps, "env">, message: MailMessage): Promise<void> {
  try {
    await deps.env.MAIL_QUEUE.send(message, { contentType: "json" });
  } catch (error) {
    const what = message.kind === "otp" ? `${message.purpose} code` : message.notice;
    console.error(`[mail] could not enqueue a ${what} mail`, error);
  }
}

/** A fresh code and its stored row, for `sentTo`; nothing written yet. */
export async function newCode(deps: Deps, sentTo: string, purpose: OtpPurpose) {
  const config = await deps.config();
  const now = deps.clock.now();
  const code = randomDigits(OTP_LENGTH);
  const row = {
    id: randomId(),
    purpose,
    sentTo,
    codeHash: await hashCode(deps.env.OTP_SECRET, sentTo, purpose, code),
    createdAt: now,
    expiresAt: now + config.otp_ttl * 1000,
    attempts: 0,
    consumedAt: null,
  };
  const message: MailMessage = {
    kind: "otp",
    to: sentTo,
    purpose,
    code,
    code_id: row.id,
    expires_at: new Date(row.expiresAt).toISOString(),
  };
  return { row, message };
}

/**
 * The subjects of the two mail counters for a code to `address`: one code a minute per purpose
 * (a registration's activation code does not hold back a sign-in code asked for right after),
 * and a few an hour per address whatever the purpose, which bounds what one address receives.
 */
export function mailSubjects(address: string, purpose: OtpPurpose) {
  return { minute: `${purpose}:${address}`, hour: address };
}

/** The per-address mail counters, counted for a code mailed in any case (the registration's own). */
export function countMailToAddress(db: Db, address: string, purpose: OtpPurpose, nowMs: number): Query[] {
  const subjects = mailSubjects(address, purpose);
  return [countHit(db, "otpPerEmailMinute", subjects.minute, nowMs), countHit(db, "otpPerEmailHour", subjects.hour, nowMs)];
}

/**
 * Makes a fresh code for a known account, mailed to `sentTo` (its address, or the new address of
 * an email change). Nothing is written or sent yet: `queries` go into the caller's batch (so the
 * code exists only if the change it belongs to happened), then `send()` enqueues the mail.
 */
export async function prepareCode(
  deps: Deps,
  account: { userId: string; sentTo: string },
  purpose: OtpPurpose,
): Promise<{ queries: Query[]; send: () => Promise<void> }> {
  const { db, clock } = deps;
  const now = clock.now();
  const { row, message } = await newCode(deps, account.sentTo, purpose);
  return {
    queries: [supersedeCodes(db, account.userId, purpose, now), db.insert(otpCodes).values({ ...row, userId: account.userId })],
    send: () => enqueueMail(deps, message),
  };
}

/** The one answer for every failed use of a code: nothing tells which part was wrong. */
export function invalidCode(): AppError {
  return new AppError("invalid_code", "The code is not valid for this email address. Request a new one if it has expired.");
}

/** Whose code it is: the account owning the address, or (email change) the signed-in account. */
export type CodeAccount = { by: "address" } | { by: "user"; userId: string };

export interface CodeUse {
  address: string;
  purpose: OtpPurpose;
  code: string;
  account: CodeAccount;
}

/** The result of `checkCode`. On failure, `recordFailure` must be called with it. */
export type CodeCheck =
  | { ok: true; codeId: string; user: User | null }
  | { ok: false; use: CodeUse; reservedId: string | null; maxAttempts: number; failureLimit: number };

const ownerOf = (use: CodeUse): SQL<string | null> | string => (use.account.by === "user" ? use.account.userId : accountOf(use.address));

/**
 * Checks a presented code. One batch, the same statements whether or not the address has an
 * account: the account by address (skipped for an email change, whose account is the caller),
 * the address's daily failure counter, and the reservation of one attempt on the newest live
 * code bound to this address, purpose and account.
 */
export async function checkCode(deps: Deps, use: CodeUse): Promise<CodeCheck> {
  const { db, clock, env } = deps;
  const now = clock.now();
  const config = await deps.config();
  const code = normalizeCode(use.code);
  const presented = await hashCode(env.OTP_SECRET, use.address, use.purpose, code);
  const failure = {
    ok: false as const,
    use,
    reservedId: null,
    maxAttempts: config.otp_max_attempts,
    failureLimit: config.otp_max_failures_per_day,
  };
  // A code of the wrong shape is refused before any I/O, for every address alike.
  if (!CODE_PATTERN.test(code)) return failure;

  const newestLive = db
    .select({ id: otpCodes.id })
    .from(otpCodes)
    .where(
      and(
        eq(otpCodes.sentTo, use.address),
        eq(otpCodes.purpose, use.purpose),
        eq(otpCodes.userId, ownerOf(use)),
        isNull(otpCodes.consumedAt),
        gt(otpCodes.expiresAt, now),
      ),
    )
    .orderBy(desc(otpCodes.createdAt))
    .limit(1);
  const reserve = db
    .update(otpCodes)
    .set({ attempts: sql`${otpCodes.attempts} + 1` })
    .where(and(eq(otpCodes.id, sql`(${newestLive})`), sql`${otpCodes.attempts} < ${config.otp_max_attempts}`))
    .returning({ id: otpCodes.id, codeHash: otpCodes.codeHash });
  const failures = db
    .select({ count: rateLimits.count, resetAt: rateLimits.resetAt })
    .from(rateLimits)
    .where(and(eq(rateLimits.key, rateLimitKey("otpFailuresPerDay", use.address)), gt(rateLimits.resetAt, now)));
  const owner = db.select().from(users).where(eq(users.email, use.address)).limit(1);

  let user: User | null = null;
  let counter: RateLimitRow | undefined;
  let reserved: { id: string; codeHash: string } | undefined;
  if (use.account.by === "address") {
    const [owners, counters, reservations] = (await runBatch(db, [owner, failures, reserve])) as [
      User[],
      RateLimitRow[],
      { id: string; codeHash: string }[],
    ];
    user = owners[0] ?? null;
    counter = counters[0];
    reserved = reservations[0];
  } else {
    const [counters, reservations] = (await runBatch(db, [failures, reserve])) as [RateLimitRow[], { id: string; codeHash: string }[]];
    counter = counters[0];
    reserved = reservations[0];
  }

  // Past the daily ceiling every code of the address is refused, the right one too.
  const lockedOut = counter !== undefined && counter.count >= config.otp_max_failures_per_day;
  const matches = reserved !== undefined && timingSafeEqual(presented, reserved.codeHash);
  const accountOk = use.account.by === "user" || user?.isActive === true;
  if (matches && !lockedOut && accountOk && reserved) return { ok: true, codeId: reserved.id, user };
  return { ...failure, reservedId: reserved?.id ?? null };
}

/**
 * Records a failed use, in one batch and with the same statements for every address: counts it
 * against the address's daily ceiling, kills the code when that was its last attempt, writes
 * `login_failed` for a sign-in and `otp_locked` when the ceiling is reached — the entries only
 * when the address has an account. Then throws `invalid_code`.
 */
export async function recordFailure(deps: Deps, check: Extract<CodeCheck, { ok: false }>): Promise<never> {
  const { db, clock, meta } = deps;
  const { use } = check;
  const now = clock.now();
  const owner = ownerOf(use);
  const ownerSql = typeof owner === "string" ? sql`${owner}` : owner;
  const entry = (type: ActivityType, details: ActivityEntry["details"], when?: SQL) =>
    activityInsertSelect(
      db,
      { userId: "", type, nowMs: now, meta, details },
      { userIdFrom: ownerSql, where: and(sql`${ownerSql} IS NOT NULL`, when) },
    );
  // A malformed code reserved nothing and counts nothing: it was never compared with a code.
  if (CODE_PATTERN.test(normalizeCode(use.code))) {
    await runBatch(db, [
      countHit(db, "otpFailuresPerDay", use.address, now),
      db
        .update(otpCodes)
        .set({ consumedAt: now })
        .where(and(eq(otpCodes.id, check.reservedId ?? ""), gte(otpCodes.attempts, check.maxAttempts), isNull(otpCodes.consumedAt))),
      use.purpose === "login" && entry("login_failed", { method: "otp" }),
      entry("otp_locked", { purpose: use.purpose }, sql`${currentCount("otpFailuresPerDay", use.address, now)} = ${check.failureLimit}`),
    ]);
  }
  throw invalidCode();
}

/**
 * The batch's first statement: records the activity entry with the user id read from the code
 * row *only while the code is live*. When it is not (used, superseded, voided or expired since
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
 * Other errors (a UNIQUE violation in an effect) are rethrown as they are, nothing written.
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
      // Cannot miss: the guard just saw the code live, in the same transaction (an effect may
      // already have voided it with the account's other codes; then this changes nothing).
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
