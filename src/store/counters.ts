/**
 * Fixed-window rate-limit counters. Every hit is an upsert that increments and returns the
 * counter in one statement, so concurrent hits get distinct counts (a read-then-write would let
 * twenty parallel guesses all see "0 of 10"). The limits themselves live in lib/rate-limit.ts.
 */
import { inArray, lte } from "drizzle-orm";
import type { RateLimitName } from "../lib/rate-limit";
import { affectedRows, type Db, runBatch, runOne } from "./driver";
import { rateLimits } from "./schema";
import { countHit, countIdentifierHit, countMailToAddress, hitWithin, refundHit, releasePasswordCheck } from "./statements";
import type { Counter, LoginIdentifier, PasswordCheckRelease } from "./types";

export interface CounterStore {
  /** Counts one hit on `name:subject` and returns the counter. */
  hit(name: RateLimitName, subject: string, nowMs: number): Promise<Counter | undefined>;
  /**
   * Reserves one password check on the IP's failure counter and the one of `identifier` (for a
   * signed-in user re-entering a password, the account's address: `identifierSubject`), in one
   * round trip; the identifier's only when the IP's is within its limit (else `identifier` is undefined).
   */
  reservePasswordCheck(identifier: LoginIdentifier, ip: string, nowMs: number): Promise<{ ip?: Counter; identifier?: Counter }>;
  /**
   * Reserves an email change's code mail, in one round trip: on the account's counter, then (only
   * when that is within its limit) on the new address's per-minute and per-hour counters.
   */
  reserveChangeMail(userId: string, address: string, nowMs: number): Promise<{ account?: Counter; minute?: Counter; hour?: Counter }>;
  /** Gives back a successful password check whose change failed for another reason (see `releasePasswordCheck`). */
  release(release: PasswordCheckRelease): Promise<void>;
  /** Gives back one hit on each counter (`name:subject`) for something that did not happen after all. One batch. */
  refund(hits: [RateLimitName, string][]): Promise<void>;
  /** Deletes up to `limit` counters whose window has ended; returns how many. */
  purgeEnded(nowMs: number, limit: number): Promise<number>;
}

export function DrizzleCounterStore(db: Db): CounterStore {
  return {
    async hit(name, subject, nowMs) {
      const [row] = await runOne(countHit(db, name, subject, nowMs));
      return row;
    },

    async reservePasswordCheck(identifier, ip, nowMs) {
      const [ipRows, identifierRows] = (await runBatch(db, [
        countHit(db, "loginFailuresPerIp", ip, nowMs),
        // Counted only when the IP's hit is within its limit (see `hitWithin`).
        countIdentifierHit(db, identifier, ip, nowMs),
      ])) as [Counter[], Counter[]];
      return { ip: ipRows[0], identifier: identifierRows[0] };
    },

    async reserveChangeMail(userId, address, nowMs) {
      const [account, minute, hour] = (await runBatch(db, [
        countHit(db, "emailChangesPerAccount", userId, nowMs),
        ...countMailToAddress(db, address, "change_email", nowMs, hitWithin("emailChangesPerAccount", userId, nowMs)),
      ])) as [Counter[], Counter[], Counter[]];
      return { account: account[0], minute: minute[0], hour: hour[0] };
    },

    async release(release) {
      await runBatch(db, releasePasswordCheck(db, release));
    },

    async refund(hits) {
      await runBatch(
        db,
        hits.map(([name, subject]) => refundHit(db, name, subject)),
      );
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
