/**
 * Fixed-window rate limits kept in D1. D1 runs one database's statements one at a time, so a
 * counter read right after its write is exact: unlike KV (eventually consistent, up to 60 s),
 * two edges cannot both see "9 of 10" and both let an attempt through.
 *
 * Limits that guard a guess (a password, a code) are *reserved*: the counter is incremented and
 * compared in the same statement before the guess is checked, so twenty parallel guesses get
 * twenty distinct counts and at most `limit` of them are ever checked (increment-then-compare;
 * a read-then-write would let them all see "0 of 10").
 */
import { and, eq, gt, type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { rateLimits } from "../db/schema";
import { AppError } from "./errors";

/** Every limit in one place: attempts allowed per window. */
export const RATE_LIMITS = {
  /** Password checks per account (login and re-entry); the 11th within 15 minutes is refused, right password or not. */
  loginFailuresPerAccount: { limit: 10, windowMs: 15 * 60_000 },
  /** Password checks per client IP, across accounts (credential stuffing from one address). */
  loginFailuresPerIp: { limit: 50, windowMs: 15 * 60_000 },
  registerPerIp: { limit: 20, windowMs: 60 * 60_000 },
  refreshPerIp: { limit: 600, windowMs: 60_000 },
  otpPerIp: { limit: 30, windowMs: 60 * 60_000 },
  /** Codes mailed to one address for one purpose (subject `purpose:address`, see `mailSubjects`). */
  otpPerEmailMinute: { limit: 1, windowMs: 60_000 },
  /** Codes mailed to one address, whatever their purpose (registration and email change included). */
  otpPerEmailHour: { limit: 5, windowMs: 60 * 60_000 },
  /** Wrong codes per address over a day; the limit itself is KV `otp_max_failures_per_day`. */
  otpFailuresPerDay: { limit: 20, windowMs: 24 * 60 * 60_000 },
  statusCreatePerUser: { limit: 30, windowMs: 60_000 },
} as const;
export type RateLimitName = keyof typeof RATE_LIMITS;

export function rateLimitKey(name: RateLimitName, subject: string): string {
  return `${name}:${subject}`;
}

/** The key as SQL: `subject` may itself be SQL (e.g. a user id looked up in the same statement). */
function keySql(name: RateLimitName, subject: string | SQL): SQL {
  return typeof subject === "string" ? sql`${rateLimitKey(name, subject)}` : sql`${rateLimitKey(name, "")} || ${subject}`;
}

/**
 * The upsert that counts one hit: a new window starts when the old one has passed. Returned as a
 * query so callers can put it in the same batch as the change it guards. `subject` may be SQL,
 * evaluated inside the statement; with `when`, the hit is counted only if that SQL holds.
 */
export function countHit(db: Db, name: RateLimitName, subject: string | SQL, nowMs: number, when?: SQL) {
  const { windowMs } = RATE_LIMITS[name];
  const reset = nowMs + windowMs;
  const key = keySql(name, subject);
  // INSERT … SELECT needs its WHERE so SQLite does not read ON CONFLICT as a join's ON.
  const insert = when
    ? db.insert(rateLimits).select(sql`SELECT ${key}, 1, ${reset} WHERE ${when}`)
    : db.insert(rateLimits).values({ key, count: 1, resetAt: reset });
  return insert
    .onConflictDoUpdate({
      target: rateLimits.key,
      set: {
        count: sql`CASE WHEN ${rateLimits.resetAt} <= ${nowMs} THEN 1 ELSE ${rateLimits.count} + 1 END`,
        resetAt: sql`CASE WHEN ${rateLimits.resetAt} <= ${nowMs} THEN ${reset} ELSE ${rateLimits.resetAt} END`,
      },
    })
    .returning({ count: rateLimits.count, resetAt: rateLimits.resetAt });
}

export interface RateLimitRow {
  count: number;
  resetAt: number;
}

/** True when a counter `countHit` returned has gone over `limit` (by default the named limit's). */
export function isOverLimit(name: RateLimitName, row: RateLimitRow | undefined, limit: number = RATE_LIMITS[name].limit): boolean {
  return row !== undefined && row.count > limit;
}

/** The 429 for an exhausted counter, with Retry-After until its window ends. */
export function rateLimited(row: RateLimitRow, nowMs: number, detail = "Too many requests; try again later."): AppError {
  return new AppError("rate_limited", detail, { retryAfterSeconds: (row.resetAt - nowMs) / 1000 });
}

/** Throws 429 (with Retry-After) when the counter `countHit` returned has gone over the limit. */
export function assertWithinLimit(name: RateLimitName, row: RateLimitRow | undefined, nowMs: number): void {
  if (row && isOverLimit(name, row)) throw rateLimited(row, nowMs);
}

/** Counts a hit and throws 429 (with Retry-After) when it goes over the limit. */
export async function enforceRateLimit(db: Db, name: RateLimitName, subject: string, nowMs: number): Promise<void> {
  const [row] = await countHit(db, name, subject, nowMs);
  assertWithinLimit(name, row, nowMs);
}

/** SQL: the current window's count of a counter (0 when it has none or its window has passed). */
export function currentCount(name: RateLimitName, subject: string | SQL, nowMs: number): SQL<number> {
  return sql<number>`COALESCE((SELECT ${rateLimits.count} FROM ${rateLimits} WHERE ${and(
    eq(rateLimits.key, keySql(name, subject)),
    gt(rateLimits.resetAt, nowMs),
  )}), 0)`;
}

/** Clears a counter (a successful login forgives that account's earlier failures). */
export function clearCounter(db: Db, name: RateLimitName, subject: string) {
  return db.delete(rateLimits).where(eq(rateLimits.key, rateLimitKey(name, subject)));
}

/** Gives back one reserved hit (a password check that succeeded is not a failure of its IP). */
export function refundHit(db: Db, name: RateLimitName, subject: string) {
  return db
    .update(rateLimits)
    .set({ count: sql`${rateLimits.count} - 1` })
    .where(and(eq(rateLimits.key, rateLimitKey(name, subject)), gt(rateLimits.count, 0)));
}
