/**
 * Refresh tokens and the sign-ins (families) they form. Only hashes are stored. Rotation inserts
 * the successor only while the parent is live and revokes the parent only if it was live, in one
 * transaction, so of any number of concurrent rotations of one token exactly one succeeds.
 */

import { and, count, desc, eq, getTableColumns, gt, inArray, isNull, lt, lte, max, min, notExists, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/sqlite-core";
import { affectedRows, type Db, type Placeholders, prepared, runBatch, runGuarded, runOne } from "./driver";
import { refreshTokens, users } from "./schema";
import {
  activityInsertSelect,
  auditEntryWhile,
  countHit,
  endSignIns,
  releasePasswordCheck,
  revokeFamily,
  stillActiveStaff,
  tokenWritten,
} from "./statements";
import type { ActivityRecord, AuditRecord, Counter, NewRefreshToken, PasswordCheckRelease, RefreshToken } from "./types";

/** A family as the sessions list shows it: its newest token, and its first and last use. */
export interface SessionRow {
  familyId: string;
  familyCreatedAt: number;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
  revokedReason: string | null;
  ip: string | null;
  userAgent: string | null;
  firstAt: number;
  lastAt: number;
}

export interface TokenStore {
  /** The token by hash with its owner's `is_active`, and a hit on the IP's refresh counter, in one round trip. */
  lookupForRefresh(
    tokenHash: string,
    ip: string,
    nowMs: number,
  ): Promise<{ counter?: Counter; found: { token: RefreshToken; userActive: boolean } | null }>;
  byHash(tokenHash: string): Promise<RefreshToken | null>;
  /**
   * Makes a password sign-in real: the token, the password check's release (failures forgiven,
   * the IP's reservation returned), the `login` entry and an optional upgraded password hash.
   * `verified` is the account as the password was checked against; false (no token, no entry,
   * no upgrade) when it changed since: another password, disabled, or every sign-in ended.
   */
  signIn(input: {
    token: NewRefreshToken;
    verified: { passwordHash: string; tokensValidAfter: number };
    release: PasswordCheckRelease;
    activity: ActivityRecord;
    rehash: string | null;
    nowMs: number;
  }): Promise<boolean>;
  /** Replaces `parentId` by `successor`; false (nothing written) when the parent was no longer live. */
  rotate(parentId: string, successor: NewRefreshToken, nowMs: number): Promise<boolean>;
  /**
   * Revokes every live token of one family (logout, reuse detected), with its activity entry when
   * the family still had a live token: ending an ended sign-in again records nothing.
   */
  revokeFamily(familyId: string, reason: string, nowMs: number, activity: ActivityRecord): Promise<void>;
  /**
   * Ends every sign-in of the user (`endSignIns`: refresh tokens revoked, access tokens issued so
   * far cut off, a pending address change and outstanding codes void) but `keepSessionId`'s, whose
   * refresh token stays live, with the user's entry and (staff action) the audit entry. False, and
   * nothing written, when the account is gone or a staff action's actor is no longer active staff.
   */
  endAllSessions(
    userId: string,
    input: { reason: string; nowMs: number; activity: ActivityRecord; audit?: AuditRecord; keepSessionId?: string },
  ): Promise<boolean>;
  /** Whether `sessionId` is a live sign-in of `userId`. */
  isLiveSession(userId: string, sessionId: string, nowMs: number, lifetimes: SessionLifetimes): Promise<boolean>;
  /** Ends one sign-in; the entry is written only if it was still live when the batch ran. */
  revokeSession(userId: string, sessionId: string, nowMs: number, lifetimes: SessionLifetimes, activity: ActivityRecord): Promise<void>;
  /** Live sign-ins, most recently used first; one row per family (its newest live token). */
  liveSessions(userId: string, nowMs: number, lifetimes: SessionLifetimes): Promise<SessionRow[]>;
  /** Every stored sign-in, ended ones included, newest use first; one row per family. */
  allSessions(userId: string): Promise<SessionRow[]>;
  /** How many sign-ins are live (as `liveSessions` lists them). */
  countLiveSessions(userId: string, nowMs: number, lifetimes: SessionLifetimes): Promise<number>;
  /** Deletes up to `limit` tokens of families entirely expired; returns how many. */
  purgeDead(nowMs: number, limit: number): Promise<number>;
  /** Revokes every live token of sign-ins that began before `startedBefore` (a lowered `session_max_age`). */
  endSignInsStartedBefore(startedBefore: number, nowMs: number): Promise<void>;
}

/**
 * The lifetimes configured now (KV `refresh_token_ttl`, `session_max_age`): either may have been
 * lowered since a token was issued, and a token past them can no longer refresh.
 */
export interface SessionLifetimes {
  idleSeconds: number;
  maxAgeSeconds: number;
}

/** The token is neither revoked nor expired, nor past the idle or absolute lifetime as configured now. */
const isLive = (nowMs: number, lifetimes: SessionLifetimes) =>
  and(
    isNull(refreshTokens.revokedAt),
    gt(refreshTokens.expiresAt, nowMs),
    gt(refreshTokens.createdAt, nowMs - lifetimes.idleSeconds * 1000),
    gt(refreshTokens.familyCreatedAt, nowMs - lifetimes.maxAgeSeconds * 1000),
  );

/** Columns shown for a session; never the token hash. */
const tokenColumns = {
  familyId: refreshTokens.familyId,
  familyCreatedAt: refreshTokens.familyCreatedAt,
  createdAt: refreshTokens.createdAt,
  expiresAt: refreshTokens.expiresAt,
  revokedAt: refreshTokens.revokedAt,
  revokedReason: refreshTokens.revokedReason,
  ip: refreshTokens.ip,
  userAgent: refreshTokens.userAgent,
};

/** Keeps the first row per family (rows come newest first, so that is the newest token). */
function onePerFamily<R extends { familyId: string }>(rows: R[]): R[] {
  const seen = new Set<string>();
  return rows.filter((row) => !seen.has(row.familyId) && seen.add(row.familyId));
}

// The refresh and sign-in hot paths' statements, prepared once per isolate (see `prepared`).

/**
 * Only `is_active` is taken from users: inside a batch drizzle maps rows by column name, and
 * columns both tables have (`id`, `created_at`) would overwrite each other.
 */
const selectByTokenHash = prepared((db, p: Placeholders<{ tokenHash: string }>) =>
  db
    .select({ token: refreshTokens, userActive: users.isActive })
    .from(refreshTokens)
    .innerJoin(users, eq(users.id, refreshTokens.userId))
    .where(eq(refreshTokens.tokenHash, p.tokenHash))
    .limit(1),
);

/** Every column a new token sets, in table order (drizzle lists them so for INSERT … SELECT). */
const newTokenColumns = Object.keys(getTableColumns(refreshTokens)) as (keyof RefreshToken)[];
type TokenValues = { [K in keyof RefreshToken]: RefreshToken[K] };
const tokenValues = (row: NewRefreshToken) =>
  Object.fromEntries(newTokenColumns.map((key) => [key, (row as Partial<RefreshToken>)[key] ?? null])) as TokenValues;

/** The values of a new token, for `INSERT … SELECT`, in the columns' order. */
const selectTokenValues = (p: Placeholders<TokenValues>) =>
  sql.join(
    newTokenColumns.map((key) => sql`${p[key]}`),
    sql`, `,
  );

/**
 * `INSERT … SELECT` of a sign-in's token that inserts nothing unless the account is as the
 * sign-in read it: same password hash, still active, no sign-ins ended since (`tokens_valid_after`).
 * A password change or reset, logout-all or disabling that commits while the password is being
 * verified leaves this sign-in without a session.
 */
const insertWhileAccountUnchanged = prepared((db, p: Placeholders<TokenValues & { passwordHash: string; tokensValidAfter: number }>) =>
  db
    .insert(refreshTokens)
    .select(
      sql`SELECT ${selectTokenValues(p)} WHERE EXISTS (SELECT 1 FROM ${users} WHERE ${and(
        eq(users.id, p.userId),
        eq(users.passwordHash, p.passwordHash),
        eq(users.isActive, true),
        eq(users.tokensValidAfter, p.tokensValidAfter),
      )})`,
    ),
);

/** `INSERT … SELECT` of the successor that inserts nothing unless the parent is still live. */
const insertWhileParentLive = prepared((db, p: Placeholders<TokenValues & { liveParentId: string }>) =>
  db
    .insert(refreshTokens)
    .select(
      sql`SELECT ${selectTokenValues(p)} WHERE EXISTS (SELECT 1 FROM ${refreshTokens} WHERE ${and(eq(refreshTokens.id, p.liveParentId), isNull(refreshTokens.revokedAt))})`,
    ),
);

const revokeRotated = prepared((db, p: Placeholders<{ parentId: string; now: number }>) =>
  db
    .update(refreshTokens)
    .set({ revokedAt: sql`${p.now}`, revokedReason: "rotated" })
    .where(and(eq(refreshTokens.id, p.parentId), isNull(refreshTokens.revokedAt)))
    .returning({ id: refreshTokens.id }),
);

export function DrizzleTokenStore(db: Db): TokenStore {
  const familySpans = (userId: string, families?: ReturnType<typeof liveFamilies>) =>
    db
      .select({
        familyId: refreshTokens.familyId,
        firstAt: min(refreshTokens.createdAt).mapWith(Number).as("first_at"),
        lastAt: max(refreshTokens.createdAt).mapWith(Number).as("last_at"),
      })
      .from(refreshTokens)
      .where(and(eq(refreshTokens.userId, userId), families ? inArray(refreshTokens.familyId, families) : undefined))
      .groupBy(refreshTokens.familyId)
      .as("spans");

  const liveFamilies = (userId: string, nowMs: number, lifetimes: SessionLifetimes) =>
    db
      .select({ familyId: refreshTokens.familyId })
      .from(refreshTokens)
      .where(and(eq(refreshTokens.userId, userId), isLive(nowMs, lifetimes)));

  const liveAndOwned = (userId: string, sessionId: string, nowMs: number, lifetimes: SessionLifetimes) =>
    and(eq(refreshTokens.familyId, sessionId), eq(refreshTokens.userId, userId), isLive(nowMs, lifetimes));

  return {
    async lookupForRefresh(tokenHash, ip, nowMs) {
      const [limit, rows] = (await runBatch(db, [countHit(db, "refreshPerIp", ip, nowMs), selectByTokenHash(db, { tokenHash })])) as [
        Counter[],
        { token: RefreshToken; userActive: boolean }[],
      ];
      return { counter: limit[0], found: rows[0] ?? null };
    },

    async byHash(tokenHash) {
      const [row] = await runOne(selectByTokenHash(db, { tokenHash }));
      return row?.token ?? null;
    },

    async signIn({ token, verified, release, activity, rehash, nowMs }) {
      // The counters' release, the entry and the hash upgrade are written only if the token was.
      const written = tokenWritten(token.id);
      const [inserted] = await runBatch(db, [
        insertWhileAccountUnchanged(db, { ...tokenValues(token), ...verified }),
        ...releasePasswordCheck(db, release, token.id),
        activityInsertSelect(db, activity, { where: written }),
        rehash !== null &&
          db
            .update(users)
            .set({ passwordHash: rehash, updatedAt: nowMs })
            .where(and(eq(users.id, token.userId), written)),
      ]);
      return affectedRows(inserted) === 1;
    },

    async rotate(parentId, successor, nowMs) {
      // Whichever concurrent request runs second changes nothing: its insert finds the parent
      // revoked, and its revocation matches no live row.
      const [, revoked] = await runBatch(db, [
        insertWhileParentLive(db, { ...tokenValues(successor), liveParentId: parentId }),
        revokeRotated(db, { parentId, now: nowMs }),
      ]);
      return affectedRows(revoked) === 1;
    },

    async revokeFamily(familyId, reason, nowMs, activity) {
      const live = sql`EXISTS (SELECT 1 FROM ${refreshTokens} WHERE ${and(eq(refreshTokens.familyId, familyId), isNull(refreshTokens.revokedAt))})`;
      await runBatch(db, [activityInsertSelect(db, activity, { where: live }), revokeFamily(db, familyId, reason, nowMs)]);
    },

    async endAllSessions(userId, { reason, nowMs, activity, audit, keepSessionId }) {
      return runGuarded(db, [
        audit && auditEntryWhile(db, audit, stillActiveStaff(audit.actorId)),
        // Also a guard: an account deleted meanwhile gets no entry (nor a 500 from its foreign key).
        activityInsertSelect(db, activity, { userIdFrom: sql`(SELECT ${users.id} FROM ${users} WHERE ${users.id} = ${userId})` }),
        ...endSignIns(db, userId, reason, nowMs, { keepSessionId }),
      ]);
    },

    async isLiveSession(userId, sessionId, nowMs, lifetimes) {
      const [owned] = await runOne(
        db
          .select({ id: refreshTokens.id })
          .from(refreshTokens)
          .where(liveAndOwned(userId, sessionId, nowMs, lifetimes))
          .limit(1),
      );
      return owned !== undefined;
    },

    async revokeSession(userId, sessionId, nowMs, lifetimes, activity) {
      await runBatch(db, [
        // Recorded only if the session is still live when the batch runs: a concurrent revocation
        // (logout, another tab) already ended it, and this request then changes nothing.
        activityInsertSelect(db, activity, {
          where: sql`EXISTS (SELECT 1 FROM ${refreshTokens} WHERE ${liveAndOwned(userId, sessionId, nowMs, lifetimes)})`,
        }),
        revokeFamily(db, sessionId, "session_revoked", nowMs),
      ]);
    },

    async liveSessions(userId, nowMs, lifetimes) {
      const spans = familySpans(userId, liveFamilies(userId, nowMs, lifetimes));
      const rows = await runOne(
        db
          .select({ ...tokenColumns, firstAt: spans.firstAt, lastAt: spans.lastAt })
          .from(refreshTokens)
          .innerJoin(spans, eq(spans.familyId, refreshTokens.familyId))
          .where(and(eq(refreshTokens.userId, userId), isLive(nowMs, lifetimes)))
          .orderBy(desc(spans.lastAt), desc(refreshTokens.createdAt)),
      );
      return onePerFamily(rows);
    },

    async allSessions(userId) {
      const spans = familySpans(userId);
      // The newest token of each family carries its last use, its expiry and its fate.
      const rows = await runOne(
        db
          .select({ ...tokenColumns, firstAt: spans.firstAt, lastAt: spans.lastAt })
          .from(refreshTokens)
          .innerJoin(spans, and(eq(spans.familyId, refreshTokens.familyId), eq(spans.lastAt, refreshTokens.createdAt)))
          .where(eq(refreshTokens.userId, userId))
          .orderBy(desc(spans.lastAt)),
      );
      return onePerFamily(rows);
    },

    async countLiveSessions(userId, nowMs, lifetimes) {
      const [live] = await runOne(
        db
          .select({ sessions: count(sql`DISTINCT ${refreshTokens.familyId}`) })
          .from(refreshTokens)
          .where(and(eq(refreshTokens.userId, userId), isLive(nowMs, lifetimes))),
      );
      return live?.sessions ?? 0;
    },

    async endSignInsStartedBefore(startedBefore, nowMs) {
      await runOne(
        db
          .update(refreshTokens)
          .set({ revokedAt: nowMs, revokedReason: "session_max_age" })
          .where(and(isNull(refreshTokens.revokedAt), lt(refreshTokens.familyCreatedAt, startedBefore))),
      );
    },

    async purgeDead(nowMs, limit) {
      // A family with any unexpired token keeps all its rotated tokens: presenting one of those
      // is how reuse is detected (RFC 9700 §4.14.2).
      const live = alias(refreshTokens, "live");
      const result = await runOne(
        db
          .delete(refreshTokens)
          .where(
            inArray(
              refreshTokens.id,
              db
                .select({ id: refreshTokens.id })
                .from(refreshTokens)
                .where(
                  and(
                    lte(refreshTokens.expiresAt, nowMs),
                    notExists(
                      db
                        .select({ id: live.id })
                        .from(live)
                        .where(and(eq(live.familyId, refreshTokens.familyId), gt(live.expiresAt, nowMs))),
                    ),
                  ),
                )
                .limit(limit),
            ),
          )
          .run(),
      );
      return affectedRows(result);
    },
  };
}
