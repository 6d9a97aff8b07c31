/**
 * Fixed-window rate limits: the policy (limits, keys, verdicts). The counters are kept in the
 * database by the counter store (src/store/counters.ts). SQLite runs one database's writes one at
 * a time, so a counter read right after its write is exact: unlike KV (eventually consistent, up to 60 s),
 * two edges cannot both see "9 of 10" and both let an attempt through.
 *
 * Limits that guard a guess (a password, a code) are *reserved*: the counter is incremented and
 * compared in the same statement before the guess is checked, so twenty parallel guesses get
 * twenty distinct counts and at most `limit` of them are ever checked (increment-then-compare;
 * a read-then-write would let them all see "0 of 10").
 */
import { AppError } from "./errors";

/** Every limit in one place: attempts allowed per window. */
export const RATE_LIMITS = {
  /**
   * Password checks per sign-in identifier, the address or the username, each counted apart (see
   * `identifierSubject`); re-entry by a signed-in user counts on the address. The 11th within 15
   * minutes is refused, right password or not.
   */
  loginFailuresPerIdentifier: { limit: 10, windowMs: 15 * 60_000 },
  /** Password checks per client IP, across accounts (credential stuffing from one address). */
  loginFailuresPerIp: { limit: 50, windowMs: 15 * 60_000 },
  registerPerIp: { limit: 20, windowMs: 60 * 60_000 },
  refreshPerIp: { limit: 600, windowMs: 60_000 },
  otpPerIp: { limit: 30, windowMs: 60 * 60_000 },
  /** Codes mailed to one address for one purpose (subject `purpose:address`, see `mailSubjects`). */
  otpPerEmailMinute: { limit: 1, windowMs: 60_000 },
  /** Codes mailed to one address, whatever their purpose (registration and email change included). */
  otpPerEmailHour: { limit: 5, windowMs: 60 * 60_000 },
  /**
   * Email changes asked per account, each mailing a code to the new address: one account cannot
   * have codes mailed to address after address (the per-address counters only bound each one).
   */
  emailChangesPerAccount: { limit: 5, windowMs: 60 * 60_000 },
  /**
   * Codes presented per client IP (sign-in, verification, reset, email change), right or wrong:
   * one client cannot spray guesses over many addresses, each under its own daily ceiling.
   */
  codeChecksPerIp: { limit: 50, windowMs: 15 * 60_000 },
  /**
   * Wrong codes per address over a day; the limit itself is KV `otp_max_failures_per_day`. Each
   * code presented is counted before it is compared, and a right one gives its count back.
   */
  otpFailuresPerDay: { limit: 20, windowMs: 24 * 60 * 60_000 },
  statusCreatePerUser: { limit: 30, windowMs: 60_000 },
  /**
   * Profile edits and avatar changes per account, one allowance for both: each writes an activity
   * entry (kept for the retention period) and an avatar also an R2 object, so one token in a loop
   * cannot fill the database or the bucket.
   */
  profileChangesPerUser: { limit: 30, windowMs: 60_000 },
  /**
   * Pages of the website that read the public directory (`/people`, `/people/{key}`), per client
   * IP: two a second, far above someone reading profiles (even many people behind one NAT), and
   * enough to slow a scraper walking the directory to a pace the database does not notice. One
   * allowance for both, since either costs the same kind of directory read; its own, so browsing
   * never uses up an allowance that guards a guess or a mail (signing in, codes, registration).
   * The API's searches (`GET /profiles?q=`) share it: a name prefix cannot use an index, so each
   * reads every public account. Its other reads (pages, one profile) walk an index and are not counted.
   */
  directoryReadsPerIp: { limit: 120, windowMs: 60_000 },
} as const;
export type RateLimitName = keyof typeof RATE_LIMITS;

export function rateLimitKey(name: RateLimitName, subject: string): string {
  return `${name}:${subject}`;
}

/**
 * The subjects of the two mail counters for a code to `address`: one code a minute per purpose
 * (a registration's activation code does not hold back a sign-in code asked for right after),
 * and a few an hour per address whatever the purpose, which bounds what one address receives.
 */
export function mailSubjects(address: string, purpose: string): { minute: string; hour: string } {
  return { minute: `${purpose}:${address}`, hour: address };
}

export interface RateLimitRow {
  count: number;
  resetAt: number;
}

/** True when a counter a reservation returned has gone over `limit` (by default the named limit's). */
export function isOverLimit(name: RateLimitName, row: RateLimitRow | undefined, limit: number = RATE_LIMITS[name].limit): boolean {
  return row !== undefined && row.count > limit;
}

/** The 429 for an exhausted counter, with Retry-After until its window ends. */
export function rateLimited(row: RateLimitRow, nowMs: number, detail = "Too many requests; try again later."): AppError {
  return new AppError("rate_limited", detail, { retryAfterSeconds: (row.resetAt - nowMs) / 1000 });
}

/** Throws 429 (with Retry-After) when the counter a hit returned has gone over the limit. */
export function assertWithinLimit(name: RateLimitName, row: RateLimitRow | undefined, nowMs: number): void {
  if (row && isOverLimit(name, row)) throw rateLimited(row, nowMs);
}
