/**
 * Fixed-window rate limits kept in D1. D1 runs one database's statements one at a time, so a
 * counter read right after its write is exact: unlike KV (eventually consistent, up to 60 s),
 * two edges cannot both see "9 of 10" and both let an attempt through.
 */
import { and, eq, type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { rateLimits } from "../db/schema";
import { AppError } from "./errors";

/** Every limit in one place: attempts allowed per window. */
export const RATE_LIMITS = {
  /** Failed logins per account; the 11th attempt within 15 minutes is refused, right password or not. */
  loginFailuresPerAccount: { limit: 10, windowMs: 15 * 60_000 },
  /** Failed logins per client IP, across accounts (credential stuffing from one address). */
  loginFailuresPerIp: { limit: 50, windowMs: 15 * 60_000 },
  registerPerIp: { limit: 20, windowMs: 60 * 60_000 },
  refreshPerIp: { limit: 600, windowMs: 60_000 },
  otpPerIp: { limit: 30, windowMs: 60 * 60_000 },
  otpPerEmailMinute: { limit: 1, windowMs: 60_000 },
  otpPerEmailHour: { limit: 5, windowMs: 60 * 60_000 },
  statusCreatePerUser: { limit: 30, windowMs: 60_000 },
} as const;
export type RateLimitName = keyof typeof RATE_LIMITS;

export function rateLimitKey(name: RateLimitName, subject: string): string {
  return `${name}:${subject}`;
}

/**
 * The upsert that counts one hit: a new window starts when the old one has passed. Returned as a
 * query so callers can put it in the same batch as the change it guards.
 */
export function countHit(db: Db, name: RateLimitName, subject: string, nowMs: number) {
  const { windowMs } = RATE_LIMITS[name];
  const reset = nowMs + windowMs;
  return db
    .insert(rateLimits)
    .values({ key: rateLimitKey(name, subject), count: 1, resetAt: reset })
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

/** Throws 429 (with Retry-After) when the counter `countHit` returned has gone over the limit. */
export function assertWithinLimit(name: RateLimitName, row: RateLimitRow | undefined, nowMs: number): void {
  if (row && row.count > RATE_LIMITS[name].limit) {
    throw new AppError("rate_limited", "Too many requests; try again later.", { retryAfterSeconds: (row.resetAt - nowMs) / 1000 });
  }
}

/** Counts a hit and throws 429 (with Retry-After) when it goes over the limit. */
export async function enforceRateLimit(db: Db, name: RateLimitName, subject: string, nowMs: number): Promise<void> {
  const [row] = await countHit(db, name, subject, nowMs);
  assertWithinLimit(name, row, nowMs);
}

/** Seconds until an exhausted counter resets, or null when `row` still allows an attempt. */
export function secondsUntilReset(name: RateLimitName, row: RateLimitRow | null | undefined, nowMs: number): number | null {
  if (!row || row.resetAt <= nowMs || row.count < RATE_LIMITS[name].limit) return null;
  return (row.resetAt - nowMs) / 1000;
}

/** Clears a counter (a successful login forgives that account's earlier failures). */
export function clearCounter(db: Db, name: RateLimitName, subject: string) {
  return db.delete(rateLimits).where(and(eq(rateLimits.key, rateLimitKey(name, subject))) as SQL);
}
