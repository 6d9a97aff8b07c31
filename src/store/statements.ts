/**
 * Statement builders, private to src/store/. Each returns a Drizzle query builder (not a promise:
 * builders run when awaited), so store methods can compose statements of several aggregates into
 * one batch — an activity entry rides in the same transaction as the change it records, a
 * rate-limit reservation in the same round trip as the lookup it guards.
 */
import { and, eq, getTableColumns, gt, isNotNull, isNull, lt, or, type Placeholder, type SQL, sql } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { randomId } from "../lib/crypto";
import { mailSubjects, RATE_LIMITS, type RateLimitName, rateLimitKey } from "../lib/rate-limit";
import { type Db, type Placeholders, prepared } from "./driver";
import { activity, adminAudit, otpCodes, rateLimits, refreshTokens, releasedUsernames, statuses, users } from "./schema";
import type { ActivityRecord, AuditRecord, LoginIdentifier, OtpPurpose, PasswordCheckRelease, User } from "./types";

// ---- rate-limit counters ----

/** The key as SQL: `subject` may itself be SQL (e.g. a user id looked up in the same statement). */
function keySql(name: RateLimitName, subject: string | SQL): SQL {
  return typeof subject === "string" ? sql`${rateLimitKey(name, subject)}` : sql`${rateLimitKey(name, "")} || ${subject}`;
}

/**
 * The upsert that counts one hit and returns the counter: a new window starts when the old one has
 * passed. Increment-then-compare in one statement: concurrent hits get distinct counts. `key` may
 * be SQL (e.g. with a user id looked up in the same statement); `when` makes the hit conditional.
 */
function hitUpsert(db: Db, key: SQL | Placeholder, now: number | Placeholder, reset: number | Placeholder, when?: SQL) {
  // INSERT … SELECT needs its WHERE so SQLite does not read ON CONFLICT as a join's ON.
  const insert = when
    ? db.insert(rateLimits).select(sql`SELECT ${key}, 1, ${reset} WHERE ${when}`)
    : db.insert(rateLimits).values({ key, count: 1, resetAt: reset });
  return insert
    .onConflictDoUpdate({
      target: rateLimits.key,
      set: {
        count: sql`CASE WHEN ${rateLimits.resetAt} <= ${now} THEN 1 ELSE ${rateLimits.count} + 1 END`,
        resetAt: sql`CASE WHEN ${rateLimits.resetAt} <= ${now} THEN ${reset} ELSE ${rateLimits.resetAt} END`,
      },
    })
    .returning({ count: rateLimits.count, resetAt: rateLimits.resetAt });
}

type HitWindow = { now: number; reset: number };
/** The common case, on every hot path (refresh, login): a counter named by a plain key. */
const countKeyHit = prepared((db, p: Placeholders<HitWindow & { key: string }>) => hitUpsert(db, p.key, p.now, p.reset));

/**
 * Counts one hit on the counter `name` of `subject` (see `hitUpsert`). `subject` may be SQL,
 * evaluated inside the statement; with `when`, the hit is counted only if that SQL holds.
 */
export function countHit(db: Db, name: RateLimitName, subject: string | SQL, nowMs: number, when?: SQL) {
  const reset = nowMs + RATE_LIMITS[name].windowMs;
  if (typeof subject === "string" && !when) return countKeyHit(db, { key: rateLimitKey(name, subject), now: nowMs, reset });
  return hitUpsert(db, keySql(name, subject), nowMs, reset, when);
}

/**
 * SQL: the counter `key`, hit earlier in the same batch, is within `limit`. A later hit made
 * conditional on it counts nowhere else when the first refused the request: a client over its own
 * limit cannot go on spending other counters (an account's lockout, an address's mail allowance).
 */
function counterWithin(key: string | Placeholder, nowMs: number | Placeholder, limit: number | Placeholder): SQL {
  return sql`COALESCE((SELECT ${rateLimits.count} FROM ${rateLimits} WHERE ${rateLimits.key} = ${key} AND ${rateLimits.resetAt} > ${nowMs}), 0) <= ${limit}`;
}

/** `counterWithin` for the counter `name` of `subject`, by its limit (or `limit`, one set in KV). */
export function hitWithin(name: RateLimitName, subject: string, nowMs: number, limit: number = RATE_LIMITS[name].limit): SQL {
  return counterWithin(rateLimitKey(name, subject), nowMs, limit);
}

/**
 * The lockout counter's subject for a sign-in identifier. Each identifier has its own, for an
 * account and an unknown one alike: an account's username is public (the directory) and its
 * address is not, and one shared counter would tell whoever locked the username out, by a 429,
 * which address belongs to it.
 */
export function identifierSubject(identifier: LoginIdentifier): string {
  return "email" in identifier ? `email:${identifier.email}` : `username:${identifier.username}`;
}

/**
 * A password check's hit on the failure counter of `identifier`, counted only when the IP's hit
 * (`ip`, earlier in the batch) is within its limit.
 */
export function countIdentifierHit(db: Db, identifier: LoginIdentifier, ip: string, nowMs: number) {
  const name = "loginFailuresPerIdentifier";
  return identifierHit(db, {
    key: rateLimitKey(name, identifierSubject(identifier)),
    now: nowMs,
    reset: nowMs + RATE_LIMITS[name].windowMs,
    ipKey: rateLimitKey("loginFailuresPerIp", ip),
    ipLimit: RATE_LIMITS.loginFailuresPerIp.limit,
  });
}
const identifierHit = prepared((db, p: Placeholders<HitWindow & { key: string; ipKey: string; ipLimit: number }>) =>
  hitUpsert(db, p.key, p.now, p.reset, counterWithin(p.ipKey, p.now, p.ipLimit)),
);

/**
 * Forgives the failed password checks of one identifier (`identifierSubject`), after a success
 * proven through that identifier: a sign-in with it, or a code mailed to that address. Never
 * another identifier of the account: whoever locked out a public username could otherwise watch
 * the lockout end when the owner signs in by address, and so link the two.
 */
export function clearLockout(db: Db, subject: string, onlyWithToken?: string) {
  return deleteCounter[onlyWithToken === undefined ? 0 : 1](db, {
    key: rateLimitKey("loginFailuresPerIdentifier", subject),
    tokenId: onlyWithToken ?? "",
  });
}

/** Gives back one reserved hit (a password check that succeeded is not a failure of its IP). */
export function refundHit(db: Db, name: RateLimitName, subject: string, onlyWithToken?: string) {
  return decrementCounter[onlyWithToken === undefined ? 0 : 1](db, { key: rateLimitKey(name, subject), tokenId: onlyWithToken ?? "" });
}

/** SQL: the refresh token `id` exists: a sign-in's, written earlier in the same batch if at all. */
export const tokenWritten = (id: string | Placeholder) => sql`EXISTS (SELECT 1 FROM ${refreshTokens} WHERE ${refreshTokens.id} = ${id})`;

type CounterChange = Placeholders<{ key: string; tokenId: string }>;
const counterDeletion = (guarded: boolean) =>
  prepared((db, p: CounterChange) =>
    db.delete(rateLimits).where(and(eq(rateLimits.key, p.key), guarded ? tokenWritten(p.tokenId) : undefined)),
  );
const counterDecrement = (guarded: boolean) =>
  prepared((db, p: CounterChange) =>
    db
      .update(rateLimits)
      .set({ count: sql`${rateLimits.count} - 1` })
      .where(and(eq(rateLimits.key, p.key), gt(rateLimits.count, 0), guarded ? tokenWritten(p.tokenId) : undefined)),
  );
// Each in two shapes: unconditional, and only if the sign-in's token was written (`onlyWithToken`).
const deleteCounter = [counterDeletion(false), counterDeletion(true)] as const;
const decrementCounter = [counterDecrement(false), counterDecrement(true)] as const;

/**
 * After a successful password check: the failures of the identifier it counted on forgiven, the
 * IP's reservation returned. With `onlyWithToken`, only if that sign-in's token was written: a
 * sign-in refused after the check (the account changed meanwhile) is a failed try like any other.
 */
export function releasePasswordCheck(db: Db, release: PasswordCheckRelease | null | undefined, onlyWithToken?: string) {
  if (!release) return [];
  return [
    clearLockout(db, identifierSubject(release.identifier), onlyWithToken),
    refundHit(db, "loginFailuresPerIp", release.ip, onlyWithToken),
  ];
}

/**
 * The per-address mail counters (see `mailSubjects`), counted for a code mailed in any case (the
 * registration's own); with `when`, only if it holds (a limit hit earlier in the batch let it through).
 */
export function countMailToAddress(db: Db, address: string, purpose: OtpPurpose, nowMs: number, when?: SQL) {
  const subjects = mailSubjects(address, purpose);
  return [countHit(db, "otpPerEmailMinute", subjects.minute, nowMs, when), countHit(db, "otpPerEmailHour", subjects.hour, nowMs, when)];
}

// ---- activity ----

function activityRow(entry: ActivityRecord) {
  return {
    id: randomId(),
    userId: entry.userId,
    type: entry.type,
    createdAt: entry.nowMs,
    ip: entry.meta.ip ?? null,
    userAgent: entry.meta.userAgent ?? null,
    details: JSON.stringify(entry.details ?? {}),
  };
}

export function activityInsert(db: Db, entry: ActivityRecord) {
  return insertActivity(db, activityRow(entry));
}
const insertActivity = prepared((db, p: Placeholders<ReturnType<typeof activityRow>>) =>
  db.insert(activity).values({
    id: p.id,
    userId: p.userId,
    type: p.type,
    createdAt: p.createdAt,
    ip: p.ip,
    userAgent: p.userAgent,
    details: p.details,
  }),
);

/**
 * The entry as `INSERT … SELECT`, for writes that must depend on the database's state when the
 * batch runs: `where` makes the entry conditional; `userIdFrom` takes the user id from a
 * sub-select (NULL there fails the NOT NULL constraint and rolls back the whole batch);
 * `detailsFrom` its details, a JSON object made when the batch runs (`json_object`).
 */
export function activityInsertSelect(db: Db, entry: ActivityRecord, options: { where?: SQL; userIdFrom?: SQL; detailsFrom?: SQL }) {
  return insertSelect(db, activity, activityRow(entry), { userId: options.userIdFrom, details: options.detailsFrom }, options.where);
}

/**
 * One row as `INSERT … SELECT`: `computed` gives columns as SQL read when the batch runs (a
 * sub-select), `where` makes the row conditional.
 */
function insertSelect<T extends typeof activity | typeof adminAudit>(
  db: Db,
  table: T,
  row: Record<string, unknown>,
  computed: Record<string, SQL | undefined>,
  where?: SQL,
) {
  // drizzle lists every column in table order for INSERT … SELECT; select the values in that order.
  const columns = Object.keys(getTableColumns(table)).map((key) => computed[key] ?? sql`${row[key] ?? null}`);
  return db.insert(table).select(sql`SELECT ${sql.join(columns, sql`, `)}${where ? sql` WHERE ${where}` : sql``}`);
}

/**
 * Only confirmed, enabled accounts appear in public: the directory, single profiles, avatars and
 * statuses. An account staff disabled or marked unverified leaves public view whole.
 */
export const isPublicAccount = () => and(eq(users.emailVerified, true), eq(users.isActive, true));

/** SQL: whether the account `userId` is in public view as the statement runs (isPublicAccount), 1 or 0. */
export const isPublicNow = (userId: string) =>
  sql`coalesce((SELECT ${users.emailVerified} AND ${users.isActive} FROM ${users} WHERE ${users.id} = ${userId}), 0)`;

/**
 * Brings `statuses.author_public` in step with the author's row. Put it in the same batch, after
 * every write that may move the account in or out of public view (disabling, enabling, the
 * verified flag), so no reader ever sees the two disagree. Rows already in step are not written.
 */
export function statusesFollowAuthor(db: Db, userId: string) {
  return db
    .update(statuses)
    .set({ authorPublic: isPublicNow(userId) })
    .where(and(eq(statuses.userId, userId), sql`${statuses.authorPublic} <> ${isPublicNow(userId)}`));
}

// ---- released usernames ----

/**
 * How long an account must have kept its name for giving it up to hold it: links to a name come
 * with time, and without this an account could squat any number of names by renaming itself again
 * and again, each name it passed through held for it. The name was set at registration or by the
 * account's latest rename (its `username_changed` entry).
 */
export const USERNAME_TENURE_MS = 7 * 86_400_000;

/**
 * Holds the account's username (if it has one, kept for `USERNAME_TENURE_MS`) as released at
 * `nowMs`, for `holder` to take back (null: no one), while `when` holds. Put it in the batch before
 * the write that gives the name up, so it reads the name being given up.
 */
export function releaseUsername(db: Db, userId: string, holder: string | null, nowMs: number, when?: SQL) {
  const since = nowMs - USERNAME_TENURE_MS;
  const keptLongEnough = and(
    lt(users.createdAt, since),
    sql`NOT EXISTS (SELECT 1 FROM ${activity} WHERE ${activity.userId} = ${userId} AND ${activity.type} = 'username_changed' AND ${activity.createdAt} >= ${since})`,
  );
  return db
    .insert(releasedUsernames)
    .select(
      sql`SELECT ${users.username}, ${holder}, ${nowMs} FROM ${users} WHERE ${and(eq(users.id, userId), isNotNull(users.username), keptLongEnough, when)}`,
    )
    .onConflictDoUpdate({
      target: releasedUsernames.username,
      set: { userId: sql`excluded.user_id`, releasedAt: sql`excluded.released_at` },
    });
}

// ---- refresh tokens and access-token cut-off ----

/** What a change authorised by the current password (or a live sign-in) read of the account. */
export type AccountAsRead = Pick<User, "id" | "passwordHash" | "tokensValidAfter">;

/**
 * The account's sign-ins are as read: it is active, and none ended since (`tokens_valid_after`,
 * which a password change or reset, logout-all, disabling, staff marking the address unverified
 * and an address claimed by its owner all move). What a request started from that state — a code sign-in's session — is written only
 * while this holds, so a logout-all or disabling that commits in between leaves nothing behind.
 */
function signInsAsRead(userId: string, tokensValidAfter: number): SQL {
  return and(eq(users.id, userId), eq(users.isActive, true), eq(users.tokensValidAfter, tokensValidAfter)) as SQL;
}

/** `signInsAsRead` as a condition for any statement. */
export function whileSignInsAsRead(userId: string, tokensValidAfter: number): SQL {
  return sql`EXISTS (SELECT 1 FROM ${users} WHERE ${signInsAsRead(userId, tokensValidAfter)})`;
}

/**
 * The sign-in `sessionId` of `userId` has not ended on its own: signed out, or ended from the
 * sessions list, which moves nothing of the account's. Every authenticated request reads it
 * (users.ts); a write made long after that read checks it again (`whileSignedIn`).
 */
export function signInLive(userId: string | Placeholder, sessionId: string | Placeholder): SQL {
  return sql`EXISTS (SELECT 1 FROM ${refreshTokens} WHERE ${refreshTokens.familyId} = ${sessionId} AND ${refreshTokens.userId} = ${userId} AND ${refreshTokens.revokedAt} IS NULL)`;
}

/** What a request's sign-in was when it was checked. */
export type SignInAsRead = { tokensValidAfter: number; sessionId: string };

/**
 * The request's sign-in is still as checked: none of the account's ended (`whileSignInsAsRead`),
 * nor this one alone (`signInLive`). For a write whose request may have been held open after the
 * check, as an upload's body is read only after it.
 */
export function whileSignedIn(userId: string, signIn: SignInAsRead): SQL {
  return sql`(${whileSignInsAsRead(userId, signIn.tokensValidAfter)} AND ${signInLive(userId, signIn.sessionId)})`;
}

/**
 * The account is still as `read`: `signInsAsRead`, and the same password hash. A change the caller
 * authorised with what it read — the current password checked against that hash, a sign-in live
 * then — is written only while this holds, so one that commits in between (the owner's reset,
 * most of all) wins over a request in flight that someone who knows the old password sent. The
 * same rule guards a password sign-in's session (tokens.ts, `insertWhileAccountUnchanged`).
 */
function accountAsRead(read: AccountAsRead): SQL {
  return and(signInsAsRead(read.id, read.tokensValidAfter), eq(users.passwordHash, read.passwordHash)) as SQL;
}

/** `accountAsRead` as a condition for any statement of the change. */
export function whileAccountAsRead(read: AccountAsRead): SQL {
  return sql`EXISTS (SELECT 1 FROM ${users} WHERE ${accountAsRead(read)})`;
}

/**
 * The change's activity entry as the guard of its batch: written only while `account` holds of
 * the user's row, else the batch rolls back whole (`guard_failed`, see `activityInsertSelect`). Put it first.
 */
function entryWhile(db: Db, entry: ActivityRecord, account: SQL) {
  return activityInsertSelect(db, entry, { userIdFrom: sql`(SELECT ${users.id} FROM ${users} WHERE ${account})` });
}

/** `entryWhile` the account is as `read` (`accountAsRead`): for what the current password authorised. */
export function entryWhileAccountAsRead(db: Db, entry: ActivityRecord, read: AccountAsRead) {
  return entryWhile(db, entry, accountAsRead(read));
}

/** `entryWhile` the user's sign-ins are as read (`signInsAsRead`): for what a live sign-in authorised. */
export function entryWhileSignedIn(db: Db, entry: ActivityRecord, signInsValidAfter: number) {
  return entryWhile(db, entry, signInsAsRead(entry.userId, signInsValidAfter));
}

/** Revokes every live token of one family (a sign-in), e.g. on logout or detected reuse. */
export function revokeFamily(db: Db, familyId: string, reason: string, nowMs: number) {
  return db
    .update(refreshTokens)
    .set({ revokedAt: nowMs, revokedReason: reason })
    .where(and(eq(refreshTokens.familyId, familyId), isNull(refreshTokens.revokedAt)));
}

/** Revokes every live token of a user, optionally sparing one family (the caller's own session). */
export function revokeAllForUser(db: Db, userId: string, reason: string, nowMs: number, exceptFamilyId?: string) {
  return db
    .update(refreshTokens)
    .set({ revokedAt: nowMs, revokedReason: reason })
    .where(
      and(
        eq(refreshTokens.userId, userId),
        isNull(refreshTokens.revokedAt),
        exceptFamilyId ? sql`${refreshTokens.familyId} <> ${exceptFamilyId}` : undefined,
      ),
    );
}

/**
 * Marks an unverified address as proven by someone other than whoever registered it (a code
 * sign-in, or staff): whoever registered may not have owned the address (pre-registration
 * hijacking), so the password set before and every earlier sign-in end with it.
 */
export function claimAddress(db: Db, userId: string, unusablePasswordHash: string, nowMs: number) {
  return endSignIns(db, userId, "email_claimed", nowMs, { set: { emailVerified: true, passwordHash: unusablePasswordHash } });
}

/**
 * Ends the account's sign-ins (all, or all but `keepSessionId`): their refresh tokens revoked,
 * the access tokens already issued cut off (checked when a request authenticates), a pending email
 * change cancelled, and every outstanding code voided. The change may be a thief's, the very
 * reason for the password change, reset, logout-all or disabling, and would otherwise still move
 * the account to the thief's address; a `login` or `reset_password` code mailed before would
 * start a sign-in, or set a password, past the moment that just ended them all, for whoever read
 * the mailbox then. A code the owner still wants is one request away. `set` rides along in the
 * same update of the user's row (the new password hash, the verified flag).
 */
export function endSignIns(
  db: Db,
  userId: string,
  reason: string,
  nowMs: number,
  options: { keepSessionId?: string; set?: { passwordHash?: string; emailVerified?: boolean } } = {},
) {
  return [
    revokeAllForUser(db, userId, reason, nowMs, options.keepSessionId),
    // iat has whole-second precision: round down so tokens issued later in this second stay valid.
    db
      .update(users)
      .set({ ...options.set, tokensValidAfter: Math.floor(nowMs / 1000) * 1000, pendingEmail: null, updatedAt: nowMs })
      .where(eq(users.id, userId)),
    options.set?.emailVerified !== undefined && statusesFollowAuthor(db, userId),
    voidAllCodes(db, userId, nowMs),
  ];
}

// ---- one-time codes ----

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

// ---- admin audit ----

function auditRow(entry: AuditRecord) {
  return {
    id: entry.id ?? randomId(),
    actorId: entry.actorId,
    actorEmail: sql`(SELECT ${users.email} FROM ${users} WHERE ${users.id} = ${entry.actorId})`,
    createdAt: entry.nowMs,
    action: entry.action,
    target: entry.target,
    oldValue: entry.oldValue,
    newValue: entry.newValue,
  };
}

/**
 * The change's audit entry as the guard of its batch: written only while `guard` holds when the
 * batch runs; otherwise its action is NULL, the NOT NULL constraint fails and the whole batch
 * rolls back (`guard_failed`, see driver.ts). Put it first. The condition is read inside the
 * batch's transaction, so a concurrent change cannot slip in between the check and the write.
 * With `where`, no entry at all (and no failure) when that does not hold (what it records is
 * gone); `oldValue`, when given, is read in the batch too.
 */
export function auditEntryWhile(db: Db, entry: AuditRecord, guard: SQL, options: { where?: SQL; oldValue?: SQL } = {}) {
  const action = sql`(SELECT ${entry.action} WHERE ${guard})`;
  return insertSelect(db, adminAudit, auditRow(entry), { action, oldValue: options.oldValue }, options.where);
}

/** An enabled staff account. */
export const activeStaff = () => and(eq(users.isStaff, true), eq(users.isActive, true));

/**
 * `actorId` is active staff when the batch runs: a staff action still in flight when its sender
 * was demoted or disabled then lands nowhere (the guard of its audit entry, `auditEntryWhile`).
 */
export function stillActiveStaff(actorId: string): SQL {
  return sql`EXISTS (SELECT 1 FROM ${users} WHERE ${and(eq(users.id, actorId), activeStaff())})`;
}

// ---- keyset pagination and search ----

/** A page's cursor, as values or as a prepared statement's placeholders. */
type CursorOf = { t: number | Placeholder; id: string | Placeholder };

/** Rows after `cursor` in newest-first order: `(t, id) < cursor`. No condition without a cursor. */
export function olderThan(t: SQLiteColumn, id: SQLiteColumn, cursor: CursorOf | null): SQL | undefined {
  return cursor ? or(lt(t, cursor.t), and(eq(t, cursor.t), lt(id, cursor.id))) : undefined;
}

/** Rows after `cursor` in oldest-first order: `(t, id) > cursor`. No condition without a cursor. */
export function newerThan(t: SQLiteColumn, id: SQLiteColumn, cursor: CursorOf | null): SQL | undefined {
  return cursor ? or(gt(t, cursor.t), and(eq(t, cursor.t), gt(id, cursor.id))) : undefined;
}

/** The LIKE pattern of a prefix taken literally: `%`, `_` and `\` in it match only themselves. */
export function prefixPattern(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
}

/** `column LIKE pattern`, with `\` escaping (see `prefixPattern`). */
export function like(column: SQLiteColumn, pattern: string | Placeholder): SQL {
  return sql`${column} LIKE ${pattern} ESCAPE '\\'`;
}

/** `column LIKE 'prefix%'` with the prefix taken literally. */
export function startsWith(column: SQLiteColumn, prefix: string): SQL {
  return like(column, prefixPattern(prefix));
}
