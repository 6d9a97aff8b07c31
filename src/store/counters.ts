/**
 * Fixed-window rate-limit counters. Every hit is an upsert that increments and returns the
 * counter in one statement, so concurrent hits get distinct counts (a read-then-write would let
 * twenty parallel guesses all see "0 of 10"). The limits themselves live in lib/rate-limit.ts.
 */
import { inArray, lte } from "drizzle-orm";
import type { RateLimitName } from "../lib/rate-limit";
import { affectedRows, type Db, runBatch, runOne } from "./driver";
import { rateLimits } from "./schema";
import { countHit, countMailToAddress } from "./statements";
import type { Counter, OtpPurpose } from "./types";

export interface CounterStore {
  /** Counts one hit on `name:subject` and returns the counter. */
  hit(name: RateLimitName, subject: string, nowMs: number): Promise<Counter | undefined>;
  /** Reserves one password check on the IP's and the account's failure counters, in one round trip. */
  reservePasswordCheck(userId: string, ip: string, nowMs: number): Promise<{ ip?: Counter; account?: Counter }>;
  /** Reserves one `purpose` mail to `address` on its per-minute and per-hour counters, in one round trip. */
  reserveMailTo(address: string, purpose: OtpPurpose, nowMs: number): Promise<{ minute?: Counter; hour?: Counter }>;
  /** Deletes up to `limit` counters whose window has ended; returns how many. */
  purgeEnded(nowMs: number, limit: number): Promise<number>;
}

export function DrizzleCounterStore(db: Db): CounterStore {
  return {
    async hit(name, subject, nowMs) {
      const [row] = await runOne(countHit(db, name, subject, nowMs));
      return row;
    },

    async reservePasswordCheck(userId, ip, nowMs) {
      const [ipRows, accountRows] = (await runBatch(db, [
        countHit(db, "loginFailuresPerIp", ip, nowMs),
        countHit(db, "loginFailuresPerAccount", userId, nowMs),
      ])) as [Counter[], Counter[]];
      return { ip: ipRows[0], account: accountRows[0] };
    },

    async reserveMailTo(address, purpose, nowMs) {
      const [minute, hour] = (await runBatch(db, countMailToAddress(db, address, purpose, nowMs))) as [Counter[], Counter[]];
      return { minute: minute[0], hour: hour[0] };
    },

    async purgeEnded(nowMs, limit) {
      const result = await runOne(
        db
          .delete(rateLimits)
          .where(
            inArray(rateLimits.key, db.select({ key: rateLimits.key }).from(rateLimits).where(lte(rateLimits.resetAt, nowMs)).limit(limit)),
          )
          .run(),
      );
      return affectedRows(result);
    },
  };
}
