/**
 * Every password check — login, and each place a signed-in user re-enters their password — goes
 * through the same two failure counters: per account and per client IP. A check is *reserved*
 * before the password is verified (increment-then-compare in one statement), so twenty or thirty
 * parallel guesses verify at most the limit between them, and during a lockout even the right
 * password answers 429. A check that succeeds gives its reservation back.
 */
import type { SQL } from "drizzle-orm";
import { type Db, type Query, runBatch } from "../../db/client";
import type { User } from "../../db/schema";
import type { Deps } from "../../env";
import { AppError } from "../../lib/errors";
import { clearCounter, countHit, isOverLimit, type RateLimitRow, rateLimited, refundHit } from "../../lib/rate-limit";
import { activityInsert } from "../activity/activity.record";
import { checkPassword, hasherFromEnv } from "./password-hash";

/** The two reservations, for the caller's batch: [per IP, per account]. */
export function reservePasswordCheck(db: Db, account: string | SQL, ip: string, nowMs: number) {
  return [countHit(db, "loginFailuresPerIp", ip, nowMs), countHit(db, "loginFailuresPerAccount", account, nowMs)] as const;
}

/** Throws 429 (Retry-After: the later of the two windows) when either reservation went over its limit. */
export function assertReserved(ipRow: RateLimitRow | undefined, accountRow: RateLimitRow | undefined, nowMs: number): void {
  const over = [
    ipRow && isOverLimit("loginFailuresPerIp", ipRow) ? ipRow : null,
    accountRow && isOverLimit("loginFailuresPerAccount", accountRow) ? accountRow : null,
  ].filter((row): row is RateLimitRow => row !== null);
  if (over.length === 0) return;
  const latest = over.reduce((a, b) => (a.resetAt >= b.resetAt ? a : b));
  throw rateLimited(latest, nowMs, "Too many failed password attempts; try again later.");
}

/** After a successful check: the account's failures are forgiven and the IP's reservation returned. */
export function releasePasswordCheck(db: Db, userId: string, ip: string): Query[] {
  return [clearCounter(db, "loginFailuresPerAccount", userId), refundHit(db, "loginFailuresPerIp", ip)];
}

/**
 * Checks the signed-in user's current password (password change, deletion, email change) under
 * the same counters as login. Throws 429 when locked out, `invalid_current_password` when wrong
 * (recording `login_failed`); on success returns the queries that release the reservation, for
 * the caller's batch.
 */
export async function reauthenticate(deps: Deps, user: User, password: string | undefined): Promise<Query[]> {
  const { db, clock, meta, env } = deps;
  const now = clock.now();
  const ip = meta.ip ?? "unknown";
  if (password === undefined) throw new AppError("invalid_current_password", "Give your current password (current_password).");
  const [ipRows, accountRows] = (await runBatch(db, [...reservePasswordCheck(db, user.id, ip, now)])) as [RateLimitRow[], RateLimitRow[]];
  assertReserved(ipRows[0], accountRows[0], now);
  if (!(await checkPassword(password, user.passwordHash, hasherFromEnv(env.PASSWORD_HASHER)))) {
    await runBatch(db, [
      activityInsert(db, {
        userId: user.id,
        type: "login_failed",
        nowMs: now,
        meta,
        details: { method: "password", reauthentication: true },
      }),
    ]);
    throw new AppError("invalid_current_password");
  }
  return releasePasswordCheck(db, user.id, ip);
}
