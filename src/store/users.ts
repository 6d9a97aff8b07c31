/**
 * Accounts: the user row and the changes that span it and its dependents (registration with its
 * profile, first code and history; password change; identifier change; deletion; staff flag
 * changes). Every multi-statement change is one batch, so it applies whole or not at all.
 */
import { and, desc, eq, gt, inArray, lte, ne, or, type SQL, sql } from "drizzle-orm";
import { affectedRows, type Db, type Placeholders, prepared, runBatch, runGuarded, runGuardedBatch, runOne } from "./driver";
import { type PendingNotice, pendingNoticeInsert, pendingNoticeInsertWhile } from "./notices";
import { type ProfileUpdate, profileUpdate } from "./profiles";
import { activity, adminAudit, otpCodes, profiles, refreshTokens, releasedUsernames, statuses, users } from "./schema";
import {
  type AccountAsRead,
  activeStaff,
  activityInsert,
  activityInsertSelect,
  auditEntryWhile,
  claimAddress,
  countHit,
  countIdentifierHit,
  countMailToAddress,
  endSignIns,
  entryWhileAccountAsRead,
  olderThan,
  releasePasswordCheck,
  releaseUsername,
  signInLive,
  startsWith,
  statusesFollowAuthor,
  stillActiveStaff,
  supersedeCodes,
  whileAccountAsRead,
  whileSignInsAsRead,
} from "./statements";
import type {
  ActivityRecord,
  AuditRecord,
  Counter,
  LoginIdentifier,
  NewCode,
  PageQuery,
  PasswordCheckRelease,
  Profile,
  User,
} from "./types";

export interface UserFlags {
  isActive?: boolean;
  isStaff?: boolean;
  emailVerified?: boolean;
}

/**
 * What became of a staff change of flags: `applied`, or refused with nothing written because no
 * active staff account would remain (`last_staff`), the flags it changes no longer hold the values
 * it read (`changed`), its actor is no longer active staff (`not_staff`), or the account is gone (`gone`).
 */
export type FlagsChange = "applied" | "last_staff" | "changed" | "not_staff" | "gone";

export interface UserStore {
  byId(id: string): Promise<User | null>;
  /** Accounts holding `email` or `username` (either may be null: not asked). */
  holdersOf(email: string | null, username: string | null): Promise<{ id: string; email: string; username: string | null }[]>;
  /**
   * Whether `username` was given up after `releasedAfter` (a rename, a deleted account), and by whom:
   * `{ holder }` names the account that may take it back (null: none); null when it is not held.
   */
  releasedUsername(username: string, releasedAfter: number): Promise<{ holder: string | null } | null>;
  /** Deletes up to `limit` holds of usernames released before `releasedBefore`; returns how many. */
  purgeReleasedUsernames(releasedBefore: number, limit: number): Promise<number>;
  /**
   * The account, its empty profile, its `register` entry and (when given) its first code with the
   * address's mail counters, in one transaction. Throws `StoreError` email_taken / username_taken.
   */
  register(input: { user: User; activity: ActivityRecord; code: NewCode | null }): Promise<void>;
  /**
   * The account a password sign-in names, and this attempt reserved on the IP's and the
   * identifier's failure counters, in one round trip. Every identifier, an account's or not, is
   * counted under itself (`identifierSubject`), so an unknown one reaches 429 exactly like an
   * existing account's, and locking out a username says nothing about the account's address.
   */
  beginPasswordLogin(
    identifier: LoginIdentifier,
    ip: string,
    nowMs: number,
  ): Promise<{ user: User | null; ip?: Counter; identifier?: Counter }>;
  /** A `login_failed` entry, written only when the identifier names an account (the same statement either way). */
  recordLoginFailure(identifier: LoginIdentifier, entry: ActivityRecord): Promise<void>;
  /**
   * The caller for an authenticated request: the user, whether the sign-in `sessionId` is still
   * live, and (on request) the profile, in one statement.
   */
  authenticate(
    userId: string,
    sessionId: string,
    options: { withProfile: boolean },
  ): Promise<{ user: User; sessionLive: boolean; profile: Profile | null } | null>;
  /**
   * Sets the username and the pending address; `cancelPendingCodes` supersedes outstanding
   * change_email codes; `code` is the change_email code for a new address (with its mail
   * counters' place taken by the caller's reservation); `release` gives back a password check.
   * An email change (`emailChange`, authorised by the current password) is written only while the
   * account is as the caller read it (`whileAccountAsRead`); false when it was not, and nothing changed.
   * Its notice to the current address is kept with it (`notices`), to be sent from there.
   */
  updateIdentifiers(input: {
    userId: string;
    /** Only what changes is written (undefined: left as it is now, not as the caller read it). */
    username?: string | null;
    pendingEmail?: string | null;
    nowMs: number;
    cancelPendingCodes: boolean;
    code: NewCode | null;
    emailChange: { activity: ActivityRecord; asRead: AccountAsRead; notice: PendingNotice } | null;
    /** A rename's `username_changed` entry (with `username` only); its details (`from`, `to`) are the names when the batch runs. */
    renamed: ActivityRecord | null;
    /** A profile change saved with the rename, in the same transaction (the website's one form for both). */
    profile?: ProfileUpdate | null;
    release: PasswordCheckRelease | null;
    /** The `tokens_valid_after` the request read: nothing is written once its sign-ins ended since. */
    signInsValidAfter: number;
  }): Promise<boolean>;
  /**
   * New password hash; every other sign-in ends and access tokens issued so far stop working.
   * Written only while the account is as the caller read it; false when it was not, and nothing changed.
   */
  changePassword(input: {
    asRead: AccountAsRead;
    passwordHash: string;
    keepSessionId: string;
    nowMs: number;
    activity: ActivityRecord;
    release: PasswordCheckRelease | null;
  }): Promise<boolean>;
  /**
   * Deletes the account and everything it owns (its audit entries as staff keep a null actor), in
   * one transaction, while the account is as the caller read it (else `changed`) and another active
   * staff account remains if it is one (else `last_staff`); otherwise nothing was deleted.
   */
  delete(
    asRead: AccountAsRead,
    release: PasswordCheckRelease | null,
    notice: PendingNotice | null,
    nowMs: number,
  ): Promise<"deleted" | "last_staff" | "changed">;
  /**
   * Staff change of account flags with its audit entry (whose actor is the staff member); disabling
   * or marking the address unverified also ends every session. With `claim`, the flags mark an
   * unverified address verified: the password set before and every sign-in end too
   * (`claimAddress`), with the account's activity entry. Each flag given is a change from the value
   * the caller read, its opposite. The change is written only while, when the batch runs, each
   * flag still has that value, the actor is still active staff, and (for a demotion or disabling)
   * another active staff account remains; else nothing is written and the answer says which failed.
   */
  updateFlags(
    userId: string,
    flags: UserFlags,
    nowMs: number,
    audit: AuditRecord,
    claim?: { unusablePasswordHash: string; activity: ActivityRecord },
  ): Promise<FlagsChange>;
  /** Accounts whose email or username starts with `prefix`, newest first (`limit + 1` rows). */
  search(prefix: string, page: PageQuery): Promise<User[]>;
}

/**
 * An active staff account remains once `userId` loses its staff power: it had none to lose, or
 * another account has it. Read inside the change's own batch, so of two staff demoting or
 * disabling each other at once, the second to commit sees the first's write and is refused:
 * read in the service before the write, both would pass and leave nobody to administer the service.
 */
function activeStaffRemainsWithout(userId: string): SQL {
  return sql`(EXISTS (SELECT 1 FROM ${users} WHERE ${activeStaff()} AND ${ne(users.id, userId)})
    OR NOT EXISTS (SELECT 1 FROM ${users} WHERE ${activeStaff()} AND ${eq(users.id, userId)}))`;
}

/** Each flag a change gives still has the value it changes from (its opposite). */
function flagsAsRead(userId: string, flags: UserFlags): SQL {
  const columns = { isActive: users.isActive, isStaff: users.isStaff, emailVerified: users.emailVerified };
  const asRead = (Object.keys(columns) as (keyof UserFlags)[])
    .filter((flag) => flags[flag] !== undefined)
    .map((flag) => eq(columns[flag], !flags[flag]));
  return sql`EXISTS (SELECT 1 FROM ${users} WHERE ${and(eq(users.id, userId), ...asRead)})`;
}

const matchOf = (identifier: LoginIdentifier): SQL =>
  ("email" in identifier ? eq(users.email, identifier.email) : eq(users.username, identifier.username)) as SQL;

/** A password sign-in's account lookup, prepared for either identifier. */
const userByEmail = prepared((db, p: Placeholders<{ email: string }>) => db.select().from(users).where(eq(users.email, p.email)).limit(1));
const userByUsername = prepared((db, p: Placeholders<{ username: string }>) =>
  db.select().from(users).where(eq(users.username, p.username)).limit(1),
);

/**
 * Every authenticated request's one statement (prepared once per isolate): the user, whether the
 * token's sign-in is still live — logging out, revoking the session or reuse detection then cut
 * off its access tokens at once, not when they expire — and, for routes that show it, the profile.
 */
const sessionLive = (p: Placeholders<{ userId: string; sessionId: string }>) =>
  sql<number>`${signInLive(p.userId, p.sessionId)}`.as("session_live");
const authenticateWithProfile = prepared((db, p: Placeholders<{ userId: string; sessionId: string }>) =>
  db
    .select({ user: users, sessionLive: sessionLive(p), profile: profiles })
    .from(users)
    .leftJoin(profiles, eq(profiles.userId, users.id))
    .where(eq(users.id, p.userId))
    .limit(1),
);
const authenticateUser = prepared((db, p: Placeholders<{ userId: string; sessionId: string }>) =>
  db
    .select({ user: users, sessionLive: sessionLive(p) })
    .from(users)
    .where(eq(users.id, p.userId))
    .limit(1),
);

export function DrizzleUserStore(db: Db): UserStore {
  return {
    async byId(id) {
      const [user] = await runOne(db.select().from(users).where(eq(users.id, id)).limit(1));
      return user ?? null;
    },

    async holdersOf(email, username) {
      const conditions = [email ? eq(users.email, email) : undefined, username ? eq(users.username, username) : undefined].filter(Boolean);
      if (conditions.length === 0) return [];
      return runOne(
        db
          .select({ id: users.id, email: users.email, username: users.username })
          .from(users)
          .where(or(...conditions)),
      );
    },

    async releasedUsername(username, releasedAfter) {
      const [held] = await runOne(
        db
          .select({ holder: releasedUsernames.userId })
          .from(releasedUsernames)
          .where(and(eq(releasedUsernames.username, username), gt(releasedUsernames.releasedAt, releasedAfter))),
      );
      return held ?? null;
    },

    async purgeReleasedUsernames(releasedBefore, limit) {
      const due = db
        .select({ username: releasedUsernames.username })
        .from(releasedUsernames)
        .where(lte(releasedUsernames.releasedAt, releasedBefore))
        .limit(limit);
      return affectedRows(await runOne(db.delete(releasedUsernames).where(inArray(releasedUsernames.username, due)).run()));
    },

    async register({ user, activity, code }) {
      const now = user.createdAt;
      await runBatch(db, [
        db.insert(users).values(user),
        db.insert(profiles).values({ userId: user.id, updatedAt: now }),
        activityInsert(db, activity),
        ...(code
          ? [
              supersedeCodes(db, user.id, code.purpose, now),
              db.insert(otpCodes).values({ ...code, userId: user.id, attempts: 0, consumedAt: null }),
              ...countMailToAddress(db, user.email, code.purpose, now),
            ]
          : []),
      ]);
    },

    async beginPasswordLogin(identifier, ip, nowMs) {
      const [accounts, ipRows, identifierRows] = (await runBatch(db, [
        "email" in identifier ? userByEmail(db, { email: identifier.email }) : userByUsername(db, { username: identifier.username }),
        countHit(db, "loginFailuresPerIp", ip, nowMs),
        countIdentifierHit(db, identifier, ip, nowMs),
      ])) as [User[], Counter[], Counter[]];
      return { user: accounts[0] ?? null, ip: ipRows[0], identifier: identifierRows[0] };
    },

    async recordLoginFailure(identifier, entry) {
      const match = matchOf(identifier);
      await runBatch(db, [
        activityInsertSelect(db, entry, {
          userIdFrom: sql`(SELECT ${users.id} FROM ${users} WHERE ${match})`,
          where: sql`EXISTS (SELECT 1 FROM ${users} WHERE ${match})`,
        }),
      ]);
    },

    async authenticate(userId, sessionId, { withProfile }) {
      if (withProfile) {
        const [found] = await runOne(authenticateWithProfile(db, { userId, sessionId }));
        return found ? { user: found.user, sessionLive: Boolean(found.sessionLive), profile: found.profile ?? null } : null;
      }
      const [found] = await runOne(authenticateUser(db, { userId, sessionId }));
      return found ? { user: found.user, sessionLive: Boolean(found.sessionLive), profile: null } : null;
    },

    async updateIdentifiers(input) {
      const { userId, nowMs, emailChange, username } = input;
      // A change without the password (a rename, a cancellation) holds only while the sign-in that
      // asked for it does; one with it has the stricter guard of its entry (`entryWhileAccountAsRead`).
      const signedIn = whileSignInsAsRead(userId, input.signInsValidAfter);
      const currentName = sql`(SELECT ${users.username} FROM ${users} WHERE ${users.id} = ${userId})`;
      // Before the update, so it reads the name being replaced (a concurrent rename's, if that won).
      const renamedEntry =
        input.renamed && username !== undefined
          ? activityInsertSelect(db, input.renamed, {
              detailsFrom: sql`json_object('from', ${currentName}, 'to', ${username})`,
              where: and(signedIn, sql`${currentName} IS NOT ${username}`),
            })
          : null;
      // Each column only when it changes: a rename that wrote back the pending address it had read
      // would undo a cancellation (a reset, a password change) that committed in between.
      const update = db
        .update(users)
        .set({ username, pendingEmail: input.pendingEmail, updatedAt: nowMs })
        .where(and(eq(users.id, userId), signedIn))
        .returning({ id: users.id });
      const statements = [
        // The name given up is held for its owner: before the update, which replaces it, and before
        // this rename's own entry, which would make the name look just taken.
        username !== undefined && releaseUsername(db, userId, userId, nowMs, and(signedIn, sql`${users.username} IS NOT ${username}`)),
        renamedEntry,
        update,
        emailChange && entryWhileAccountAsRead(db, emailChange.activity, emailChange.asRead),
        input.cancelPendingCodes && supersedeCodes(db, userId, "change_email", nowMs, signedIn),
        ...(input.code
          ? [
              supersedeCodes(db, userId, input.code.purpose, nowMs),
              db.insert(otpCodes).values({ ...input.code, userId, attempts: 0, consumedAt: null }),
            ]
          : []),
        emailChange && pendingNoticeInsert(db, emailChange.notice),
        ...releasePasswordCheck(db, input.release),
        ...(input.profile ? profileUpdate(db, userId, input.profile, signedIn) : []),
      ].filter((statement) => statement !== null && statement !== false);
      const results = await runGuardedBatch(db, statements);
      return results !== null && affectedRows(results[statements.indexOf(update)]) === 1;
    },

    async changePassword(input) {
      const { asRead, nowMs } = input;
      return runGuarded(db, [
        entryWhileAccountAsRead(db, input.activity, asRead),
        ...endSignIns(db, asRead.id, "password_changed", nowMs, {
          keepSessionId: input.keepSessionId,
          set: { passwordHash: input.passwordHash },
        }),
        ...releasePasswordCheck(db, input.release),
      ]);
    },

    async delete(asRead, release, notice, nowMs) {
      // D1 cascades the user row's deletion through the foreign keys; a libSQL server may not
      // enforce them (SQLite's default is off, per connection). So the batch removes what the
      // account owns itself, then the user row: the same end state on either driver. Each
      // statement holds only while the account is as read and is not the last active staff account
      // (the user row goes last), so all or none apply.
      const userId = asRead.id;
      const asReadNow = and(whileAccountAsRead(asRead), activeStaffRemainsWithout(userId)) as SQL;
      const results = await runBatch(db, [
        // The notice to the account's address outlives the account (no foreign key), until sent.
        notice && pendingNoticeInsertWhile(db, notice, asReadNow),
        db.delete(profiles).where(and(eq(profiles.userId, userId), asReadNow)),
        db.delete(refreshTokens).where(and(eq(refreshTokens.userId, userId), asReadNow)),
        db.delete(otpCodes).where(and(eq(otpCodes.userId, userId), asReadNow)),
        db.delete(statuses).where(and(eq(statuses.userId, userId), asReadNow)),
        db.delete(activity).where(and(eq(activity.userId, userId), asReadNow)),
        // The entries keep naming their actor (entries from before addresses were recorded take it now).
        db
          .update(adminAudit)
          .set({
            actorId: null,
            actorEmail: sql`coalesce(${adminAudit.actorEmail}, (SELECT ${users.email} FROM ${users} WHERE ${users.id} = ${userId}))`,
          })
          .where(and(eq(adminAudit.actorId, userId), asReadNow)),
        // Held for no one: nothing of the deleted account is kept.
        releaseUsername(db, userId, null, nowMs, asReadNow),
        db
          .delete(users)
          .where(and(eq(users.id, userId), asReadNow))
          .returning({ id: users.id }),
        ...releasePasswordCheck(db, release),
      ]);
      const deleted = results[notice ? 8 : 7];
      if (affectedRows(deleted) === 1) return "deleted";
      // Which guard failed, for the answer (nothing was deleted): no row is an account already gone.
      const [staff] = await runOne(
        db
          .select({ remains: sql<number>`${activeStaffRemainsWithout(userId)}` })
          .from(users)
          .where(eq(users.id, userId)),
      );
      return staff && !staff.remains ? "last_staff" : "changed";
    },

    async updateFlags(userId, flags, nowMs, audit, claim) {
      const disabling = flags.isActive === false;
      const removesStaffPower = disabling || flags.isStaff === false;
      // An unverified account cannot sign in while verification is required, so it keeps no sign-in either.
      const endsSignIns = disabling || flags.emailVerified === false;
      // Each read inside the batch. As read: staff marking an address verified while its registrant
      // verifies it with their own code would otherwise end the password that code just confirmed.
      // Actor: a staff member demoted or disabled while the request was under way changes nothing.
      const guards = {
        last_staff: removesStaffPower ? activeStaffRemainsWithout(userId) : sql`1`,
        changed: flagsAsRead(userId, flags),
        not_staff: stillActiveStaff(audit.actorId),
      };
      const applied = await runGuarded(db, [
        auditEntryWhile(db, audit, sql.join([guards.last_staff, guards.changed, guards.not_staff], sql` AND `)),
        db
          .update(users)
          .set({
            ...(flags.isActive !== undefined ? { isActive: flags.isActive } : {}),
            ...(flags.isStaff !== undefined ? { isStaff: flags.isStaff } : {}),
            ...(flags.emailVerified !== undefined ? { emailVerified: flags.emailVerified } : {}),
            updatedAt: nowMs,
          })
          .where(eq(users.id, userId)),
        statusesFollowAuthor(db, userId),
        ...(claim ? [...claimAddress(db, userId, claim.unusablePasswordHash, nowMs), activityInsert(db, claim.activity)] : []),
        ...(endsSignIns ? endSignIns(db, userId, "admin", nowMs) : []),
      ]);
      if (applied) return "applied";
      // Which guard failed, for the answer (nothing was written): the first that does not hold now.
      const [held] = await runOne(
        db
          .select({
            last_staff: sql<number>`${guards.last_staff}`,
            changed: sql<number>`${guards.changed}`,
            not_staff: sql<number>`${guards.not_staff}`,
          })
          .from(users)
          .where(eq(users.id, userId)),
      );
      if (!held) return "gone"; // deleted meanwhile
      return (["last_staff", "changed", "not_staff"] as const).find((reason) => !held[reason]) ?? "changed";
    },

    async search(prefix, page) {
      return runOne(
        db
          .select()
          .from(users)
          .where(
            and(
              prefix ? or(startsWith(users.email, prefix), startsWith(users.username, prefix)) : undefined,
              olderThan(users.createdAt, users.id, page.cursor),
            ),
          )
          .orderBy(desc(users.createdAt), desc(users.id))
          .limit(page.limit + 1),
      );
    },
  };
}
