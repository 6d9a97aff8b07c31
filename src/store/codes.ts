/**
 * One-time codes. Issuing, checking, failing and spending a code are each one batch, and each
 * issues the same statements whether or not the address has an account (the rows simply do not
 * match), so neither the answers nor the work tell which accounts exist.
 *
 * Spending a code is guarded: the batch's first statement writes the activity entry with the user
 * id read from the code row *only while the code is live*. When it is not (used, superseded,
 * voided or expired since it was checked, e.g. by a concurrent request), the sub-select yields
 * NULL, the NOT NULL constraint on activity.user_id fails, and the whole batch rolls back on
 * either driver. So the statements after it run only for the request that spends the code.
 */
import { and, desc, eq, getTableColumns, gt, gte, inArray, isNull, lte, type SQL, sql } from "drizzle-orm";
import { mailSubjects, rateLimitKey } from "../lib/rate-limit";
import { affectedRows, type Db, type Query, runBatch, runGuarded, runOne } from "./driver";
import { type PendingNotice, pendingNoticeInsert } from "./notices";
import { otpCodes, rateLimits, refreshTokens, users } from "./schema";
import {
  activityInsert,
  activityInsertSelect,
  claimAddress,
  clearLockout,
  countHit,
  endSignIns,
  hitWithin,
  identifierSubject,
  releasePasswordCheck,
  revokeAllForUser,
  statusesFollowAuthor,
  supersedeCodes,
  voidAllCodes,
  whileSignInsAsRead,
} from "./statements";
import type { ActivityRecord, Counter, NewCode, NewRefreshToken, OtpPurpose, PasswordCheckRelease, RequestMeta, User } from "./types";

/** Whose code it is: the live account owning the address, or (email change) the signed-in account. */
export type CodeOwner = { by: "address" } | { by: "user"; userId: string };

export interface CodeCheckInput {
  address: string;
  purpose: OtpPurpose;
  owner: CodeOwner;
  /** The client's rate-limit key (`clientKey`), for its counter of codes presented. */
  ip: string;
  /** Attempts a code allows; the reservation fails past it. */
  maxAttempts: number;
  /** The address's daily ceiling of wrong codes (KV `otp_max_failures_per_day`). */
  failureLimit: number;
  nowMs: number;
}

export interface CodeFailureInput {
  address: string;
  purpose: OtpPurpose;
  owner: CodeOwner;
  /** The code `check` reserved an attempt on, if any: it is killed when that was its last attempt. */
  reservedId: string | null;
  maxAttempts: number;
  /** The address's daily counter as `check` reserved it (null when it was not counted). */
  failureCount: number | null;
  /** The daily ceiling; the failure that reaches it exactly writes `otp_locked`, none past it writes history. */
  failureLimit: number;
  nowMs: number;
  meta: RequestMeta;
}

/** The entry a spent code records; its user id must be the code's owner. */
export type SpendEntry = ActivityRecord;

export interface CodeStore {
  /**
   * Stores a code for the live account that owns `code.sentTo` (not yet verified, for
   * `verify_email`) when every limit allows it: the per-IP counter, the address's per-minute (per
   * purpose) and per-hour counters (the hour counts only requests the minute let through), the superseding of
   * older codes, the code and its `otp_requested` entry. One batch; returns the IP's and the
   * hour's counters.
   */
  issueByAddress(input: { code: NewCode; ip: string; meta: RequestMeta }): Promise<{ ip?: Counter; hour?: Counter }>;
  /**
   * One batch: counts the code on the client's counter; reads the owner (by address); while the
   * client is within its limit, counts the code on the address's daily failure counter (a right
   * code gives it back when spent); and, while both are within
   * their limits, reserves one attempt on the newest live code bound to this address, purpose and
   * owner. So guesses sent together are each counted before any is compared.
   */
  check(
    input: CodeCheckInput,
  ): Promise<{ user: User | null; ip?: Counter; failures?: Counter; reserved?: { id: string; codeHash: string } }>;
  /** Kills the code at its last attempt and records the entries of a wrong code (see `CodeFailureInput`). One batch. */
  recordFailure(input: CodeFailureInput): Promise<void>;
  /**
   * Spends a `verify_email` code: the address is verified and the registrant's password check
   * (`release`, null when the website's registrant cookie stood in for it) given back; with
   * `signIn` (the website's confirmation step) the sign-in `token` starts with its `login` entry —
   * only while the account is active with the `tokens_valid_after` read (`signInsValidAfter`).
   * False when the code was no longer live (or, signing in, the account changed).
   */
  spendForVerification(
    codeId: string,
    entry: SpendEntry,
    input: {
      release: PasswordCheckRelease | null;
      signIn?: { token: NewRefreshToken; entry: ActivityRecord; signInsValidAfter: number };
    },
  ): Promise<boolean>;
  /**
   * Spends a `login` code and starts the sign-in `token`. An unverified account is claimed: its
   * password stops working and earlier sign-ins end, before this one starts. Nothing is written
   * (false) when the account was disabled or its sign-ins ended since `user` was read.
   */
  spendForLogin(
    codeId: string,
    entry: SpendEntry,
    input: { user: User; token: NewRefreshToken; unusablePasswordHash: string; verifiedEntry: ActivityRecord | null },
  ): Promise<boolean>;
  /**
   * Spends a `reset_password` code: the new hash, the address verified, every sign-in but
   * `keepSessionId` (when given: a signed-in user setting a password) ended, every other code
   * voided, and the failed password checks of `address` (the one the code proved) forgiven.
   */
  spendForReset(
    codeId: string,
    entry: SpendEntry,
    input: { passwordHash: string; address: string; keepSessionId?: string },
  ): Promise<boolean>;
  /**
   * Spends a `change_email` code: the pending address becomes the account's, verified; every other
   * code is voided and every sign-in but `keepSessionId` ends; `notice` (to the old address) is kept
   * to be sent. Throws `StoreError` email_taken when another account took the address meanwhile.
   */
  spendForEmailChange(
    codeId: string,
    entry: SpendEntry,
    input: { address: string; keepSessionId: string; notice: PendingNotice },
  ): Promise<boolean>;
  /**
   * Gives back what `check` took for a right code that was then not spent for another reason (the
   * registrant's password was wrong or locked out): the code's try and the address's daily count.
   */
  giveBack(codeId: string): Promise<void>;
  /**
   * Undoes issuing `code` whose mail could not be queued: while it is still live, the address's
   * per-minute and per-hour mail counters it used are given back, and it is voided. One batch;
   * for a code that was never stored (an unknown address, a throttled request) it changes nothing.
   */
  unissue(code: NewCode): Promise<void>;
  /** A code's state for the mail consumer, or null when it is gone. */
  state(codeId: string): Promise<{ createdAt: number; consumedAt: number | null; expiresAt: number } | null>;
  /** Deletes up to `limit` codes past their expiry, used or not; returns how many. */
  purgeExpired(nowMs: number, limit: number): Promise<number>;
}

/** SQL: the id of the live account that owns `address` (NULL when there is none). */
function accountOf(address: string): SQL<string | null> {
  return sql<string | null>`(SELECT ${users.id} FROM ${users} WHERE ${users.email} = ${address} AND ${users.isActive} = 1)`;
}

const ownerSql = (address: string, owner: CodeOwner): SQL => (owner.by === "user" ? sql`${owner.userId}` : accountOf(address));

export function DrizzleCodeStore(db: Db): CodeStore {
  /** Gives back the count a right code took on its address's daily failure counter (see `check`). */
  function refundFailureCount(codeId: string) {
    return db
      .update(rateLimits)
      .set({ count: sql`${rateLimits.count} - 1` })
      .where(
        and(
          eq(
            rateLimits.key,
            sql`${rateLimitKey("otpFailuresPerDay", "")} || (SELECT ${otpCodes.sentTo} FROM ${otpCodes} WHERE ${otpCodes.id} = ${codeId})`,
          ),
          gt(rateLimits.count, 0),
        ),
      );
  }

  /**
   * The guarded spend: [entry read from the live code, ...effects, consume]. `also` is what the
   * spend's effects further need to hold when the batch runs. A spend that starts a sign-in passes
   * `whileSignInsAsRead` with the `tokens_valid_after` `check` read: a logout-all or disabling
   * that commits meanwhile then leaves no session behind (nor one re-enabling would revive).
   */
  async function spend(codeId: string, entry: SpendEntry, effects: (Query | false | null)[], also?: SQL): Promise<boolean> {
    const liveCodeOwner = sql`(SELECT ${otpCodes.userId} FROM ${otpCodes} WHERE ${and(
      eq(otpCodes.id, codeId),
      eq(otpCodes.userId, entry.userId),
      isNull(otpCodes.consumedAt),
      gt(otpCodes.expiresAt, entry.nowMs),
      also,
    )})`;
    return runGuarded(db, [
      activityInsertSelect(db, entry, { userIdFrom: liveCodeOwner }),
      ...effects,
      // The right code gives back its count on the address's daily failure counter (see `check`).
      refundFailureCount(codeId),
      // Cannot miss: the guard just saw the code live, in the same transaction (an effect may
      // already have voided it with the account's other codes; then this changes nothing).
      db
        .update(otpCodes)
        .set({ consumedAt: entry.nowMs })
        .where(and(eq(otpCodes.id, codeId), isNull(otpCodes.consumedAt))),
    ]);
  }

  return {
    async issueByAddress({ code, ip, meta }) {
      const now = code.createdAt;
      const email = code.sentTo;
      const { purpose } = code;
      const within = (name: "otpPerIp" | "otpPerEmailMinute" | "otpPerEmailHour", subject: string) => hitWithin(name, subject, now);
      const subjects = mailSubjects(email, purpose);
      const allowed = and(
        within("otpPerIp", ip),
        within("otpPerEmailMinute", subjects.minute),
        within("otpPerEmailHour", subjects.hour),
      ) as SQL;
      const owner = db
        .select({ id: users.id })
        .from(users)
        .where(
          and(eq(users.email, email), eq(users.isActive, true), purpose === "verify_email" ? eq(users.emailVerified, false) : undefined),
        )
        .limit(1);
      const ownerId = sql`(${owner})`;
      const values: Record<string, unknown> = { ...code, attempts: 0, consumedAt: null, userId: null };
      // drizzle lists every column in table order for INSERT … SELECT; select the values in that order.
      const columns = Object.keys(getTableColumns(otpCodes)).map((key) =>
        key === "userId" ? sql`${users.id}` : sql`${values[key] ?? null}`,
      );

      const [ipRows, , hourRows] = (await runBatch(db, [
        countHit(db, "otpPerIp", ip, now),
        // The address's counters only for a request its client's limit let through, so a client
        // past its own limit cannot use up an address's allowance (and its owner's codes).
        countHit(db, "otpPerEmailMinute", subjects.minute, now, within("otpPerIp", ip)),
        // The hour's only when the minute window let the request through too.
        countHit(db, "otpPerEmailHour", subjects.hour, now, and(within("otpPerIp", ip), within("otpPerEmailMinute", subjects.minute))),
        supersedeCodes(db, ownerId, purpose, now, allowed),
        db.insert(otpCodes).select(sql`SELECT ${sql.join(columns, sql`, `)} FROM ${users} WHERE ${users.id} = ${ownerId} AND ${allowed}`),
        activityInsertSelect(
          db,
          { userId: "", type: "otp_requested", nowMs: now, meta, details: { purpose } },
          { userIdFrom: ownerId, where: and(sql`${ownerId} IS NOT NULL`, allowed) },
        ),
      ])) as [Counter[], Counter[], Counter[]];
      return { ip: ipRows[0], hour: hourRows[0] };
    },

    async check({ address, purpose, owner, ip, maxAttempts, failureLimit, nowMs }) {
      const ipWithin = hitWithin("codeChecksPerIp", ip, nowMs);
      const newestLive = db
        .select({ id: otpCodes.id })
        .from(otpCodes)
        .where(
          and(
            eq(otpCodes.sentTo, address),
            eq(otpCodes.purpose, purpose),
            eq(otpCodes.userId, owner.by === "user" ? owner.userId : accountOf(address)),
            isNull(otpCodes.consumedAt),
            gt(otpCodes.expiresAt, nowMs),
          ),
        )
        .orderBy(desc(otpCodes.createdAt))
        .limit(1);
      const reserve = db
        .update(otpCodes)
        .set({ attempts: sql`${otpCodes.attempts} + 1` })
        .where(
          and(
            eq(otpCodes.id, sql`(${newestLive})`),
            sql`${otpCodes.attempts} < ${maxAttempts}`,
            ipWithin,
            hitWithin("otpFailuresPerDay", address, nowMs, failureLimit),
          ),
        )
        .returning({ id: otpCodes.id, codeHash: otpCodes.codeHash });
      // For every address alike, with an account or not: the same write, so neither the work nor
      // its timing tells them apart (the client's limit bounds the rows made-up addresses get).
      const failures = countHit(db, "otpFailuresPerDay", address, nowMs, ipWithin);
      const clientHit = countHit(db, "codeChecksPerIp", ip, nowMs);
      type Reserved = { id: string; codeHash: string }[];
      if (owner.by === "address") {
        const [ips, owners, counters, reservations] = (await runBatch(db, [
          clientHit,
          db.select().from(users).where(eq(users.email, address)).limit(1),
          failures,
          reserve,
        ])) as [Counter[], User[], Counter[], Reserved];
        return { user: owners[0] ?? null, ip: ips[0], failures: counters[0], reserved: reservations[0] };
      }
      const [ips, counters, reservations] = (await runBatch(db, [clientHit, failures, reserve])) as [Counter[], Counter[], Reserved];
      return { user: null, ip: ips[0], failures: counters[0], reserved: reservations[0] };
    },

    async recordFailure(input) {
      const { address, purpose, nowMs, meta } = input;
      const owner = ownerSql(address, input.owner);
      const entry = (type: "login_failed" | "otp_locked", details: ActivityRecord["details"], when?: SQL) =>
        activityInsertSelect(
          db,
          { userId: "", type, nowMs, meta, details },
          { userIdFrom: owner, where: and(sql`${owner} IS NOT NULL`, when) },
        );
      // The count as `check` reserved it is a parameter, so these are the same statements for every address.
      const count = input.failureCount ?? 0;
      await runBatch(db, [
        db
          .update(otpCodes)
          .set({ consumedAt: nowMs })
          .where(and(eq(otpCodes.id, input.reservedId ?? ""), gte(otpCodes.attempts, input.maxAttempts), isNull(otpCodes.consumedAt))),
        // No history past the ceiling: the guesses are refused uncompared, and could otherwise fill it.
        purpose === "login" && entry("login_failed", { method: "otp" }, sql`${count} <= ${input.failureLimit}`),
        entry("otp_locked", { purpose }, sql`${count} = ${input.failureLimit}`),
      ]);
    },

    spendForVerification(codeId, entry, { release, signIn }) {
      return spend(
        codeId,
        entry,
        [
          db.update(users).set({ emailVerified: true, updatedAt: entry.nowMs }).where(eq(users.id, entry.userId)),
          statusesFollowAuthor(db, entry.userId),
          ...releasePasswordCheck(db, release),
          ...(signIn ? [db.insert(refreshTokens).values(signIn.token), activityInsert(db, signIn.entry)] : []),
        ],
        signIn && whileSignInsAsRead(entry.userId, signIn.signInsValidAfter),
      );
    },

    spendForLogin(codeId, entry, { user, token, unusablePasswordHash, verifiedEntry }) {
      const now = entry.nowMs;
      // Whoever registered an unverified address may not have owned it (pre-registration
      // hijacking): proving the mailbox ends the password set before and every earlier sign-in.
      const claim = user.emailVerified ? [] : claimAddress(db, user.id, unusablePasswordHash, now);
      return spend(
        codeId,
        entry,
        [
          ...claim,
          verifiedEntry && activityInsert(db, verifiedEntry),
          db.insert(refreshTokens).values(token),
          clearLockout(db, identifierSubject({ email: user.email })),
        ],
        whileSignInsAsRead(user.id, user.tokensValidAfter),
      );
    },

    spendForReset(codeId, entry, { passwordHash, address, keepSessionId }) {
      const now = entry.nowMs;
      const userId = entry.userId;
      return spend(codeId, entry, [
        // Also voids every other code, whatever its purpose (endSignIns): a verify_email code has
        // nothing left to prove once the reset verifies the address.
        ...endSignIns(db, userId, entry.type, now, { keepSessionId, set: { passwordHash, emailVerified: true } }),
        clearLockout(db, identifierSubject({ email: address })),
      ]);
    },

    spendForEmailChange(codeId, entry, { address, keepSessionId, notice }) {
      const now = entry.nowMs;
      const userId = entry.userId;
      // Only while the address is still the one pending: its entry, the sign-ins it ends and the
      // notice it sends all say the account moved, so none may be written when it does not.
      const stillPending = and(eq(users.id, userId), eq(users.pendingEmail, address));
      return spend(
        codeId,
        entry,
        [
          db.update(users).set({ email: address, pendingEmail: null, emailVerified: true, updatedAt: now }).where(stillPending),
          statusesFollowAuthor(db, userId),
          voidAllCodes(db, userId, now),
          revokeAllForUser(db, userId, "email_changed", now, keepSessionId),
          pendingNoticeInsert(db, notice),
        ],
        sql`EXISTS (SELECT 1 FROM ${users} WHERE ${stillPending})`,
      );
    },

    async unissue(code) {
      const live = sql`EXISTS (SELECT 1 FROM ${otpCodes} WHERE ${otpCodes.id} = ${code.id} AND ${otpCodes.consumedAt} IS NULL)`;
      const subjects = mailSubjects(code.sentTo, code.purpose);
      const giveBackHit = (key: string) =>
        db
          .update(rateLimits)
          .set({ count: sql`${rateLimits.count} - 1` })
          .where(and(eq(rateLimits.key, key), gt(rateLimits.count, 0), live));
      await runBatch(db, [
        giveBackHit(rateLimitKey("otpPerEmailMinute", subjects.minute)),
        giveBackHit(rateLimitKey("otpPerEmailHour", subjects.hour)),
        db
          .update(otpCodes)
          .set({ consumedAt: code.createdAt })
          .where(and(eq(otpCodes.id, code.id), isNull(otpCodes.consumedAt))),
      ]);
    },

    async giveBack(codeId) {
      await runBatch(db, [
        refundFailureCount(codeId),
        db
          .update(otpCodes)
          .set({ attempts: sql`${otpCodes.attempts} - 1` })
          .where(and(eq(otpCodes.id, codeId), isNull(otpCodes.consumedAt), gt(otpCodes.attempts, 0))),
      ]);
    },

    async state(codeId) {
      const [row] = await runOne(
        db
          .select({ createdAt: otpCodes.createdAt, consumedAt: otpCodes.consumedAt, expiresAt: otpCodes.expiresAt })
          .from(otpCodes)
          .where(eq(otpCodes.id, codeId))
          .limit(1),
      );
      return row ?? null;
    },

    async purgeExpired(nowMs, limit) {
      const result = await runOne(
        db
          .delete(otpCodes)
          .where(inArray(otpCodes.id, db.select({ id: otpCodes.id }).from(otpCodes).where(lte(otpCodes.expiresAt, nowMs)).limit(limit)))
          .run(),
      );
      return affectedRows(result);
    },
  };
}
