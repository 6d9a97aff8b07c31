/**
 * Profiles, part of the account aggregate: the owner's details, the avatar pointer, and the public
 * reads (directory, single profile, avatar lookup), which show only confirmed, enabled accounts.
 */
import { and, asc, desc, eq, inArray, isNotNull, or, type SQL, sql } from "drizzle-orm";
import { affectedRows, type Db, type Placeholders, prepared, preparedShapes, type Query, runBatch, runOne } from "./driver";
import { profiles, users } from "./schema";
import {
  activityInsertSelect,
  isPublicAccount,
  like,
  newerThan,
  prefixPattern,
  type SignInAsRead,
  whileSignedIn,
  whileSignInsAsRead,
} from "./statements";
import type { ActivityRecord, PageQuery, Profile } from "./types";

export type ProfileChanges = Partial<Pick<Profile, "name" | "surname" | "age" | "phoneNumber" | "profession" | "aboutMe">>;
/** The columns a profile change writes, and its `profile_updated` entry (whose time is the change's). */
export type ProfileUpdate = { changes: ProfileChanges; activity: ActivityRecord };

/** What the public sees of an account. */
export interface PublicProfileRow {
  id: string;
  username: string | null;
  createdAt: number;
  name: string | null;
  surname: string | null;
  profession: string | null;
  aboutMe: string | null;
  avatarKey: string | null;
}

export interface AvatarPointer {
  key: string;
  contentType: string;
  etag: string;
}

export interface ProfileStore {
  byUser(userId: string): Promise<Profile | null>;
  /** Inserts `blank` unless the user already has a profile; returns the stored one. */
  ensure(blank: Profile): Promise<Profile>;
  /**
   * Writes only the given columns, with the `profile_updated` entry, in one transaction, while the
   * user's sign-ins are as the caller read them (`signInsValidAfter`, `whileSignInsAsRead`); false,
   * and nothing written, when they ended since or the profile is gone (its account deleted meanwhile).
   */
  update(userId: string, change: ProfileUpdate, signInsValidAfter: number): Promise<boolean>;
  /**
   * Points the profile at a new avatar (or at none) with its activity entry. `replacedKey` is the
   * key it replaced, read inside the same transaction so concurrent uploads each see their own
   * predecessor; the entry is written only for a change that happened (removing an avatar that a
   * concurrent removal already took records nothing). It is written only while the request's
   * sign-in is as checked (`whileSignedIn`): an upload's body arrives after its token was checked,
   * and a thief's upload held open until after the owner's reset, logout-all or disabling, or the
   * owner ending that one sign-in, must not land. `written` is false when it is not, or
   * when the profile is gone (its account was deleted meanwhile), and nothing was written.
   */
  setAvatar(
    userId: string,
    avatar: AvatarPointer | null,
    nowMs: number,
    activity: ActivityRecord,
    signIn: SignInAsRead,
  ): Promise<{ written: boolean; replacedKey: string | null }>;
  /** The public directory, oldest first, optionally by a username or name prefix (`limit + 1` rows). */
  directory(filter: { usernamePrefix: string; namePrefix: string } | null, page: PageQuery): Promise<PublicProfileRow[]>;
  /**
   * One public profile, by the account's id or else by its (canonical) username; null for a
   * missing, unverified or disabled account.
   */
  publicProfile(key: { id: string; username?: string }): Promise<PublicProfileRow | null>;
  /** The avatar of a public account, or null. */
  publicAvatar(userId: string): Promise<{ key: string | null; etag: string | null; contentType: string | null } | null>;
  /** Of these accounts, the ones that exist, each with its current avatar key (null: none). */
  currentAvatarKeys(userIds: string[]): Promise<Map<string, string | null>>;
}

/** D1 binds at most 100 values per statement. */
const IDS_PER_STATEMENT = 90;

const publicColumns = {
  id: users.id,
  username: users.username,
  createdAt: users.createdAt,
  name: profiles.name,
  surname: profiles.surname,
  profession: profiles.profession,
  aboutMe: profiles.aboutMe,
  avatarKey: profiles.avatarKey,
};

type DirectoryValues = { limit: number; usernamePattern: string; namePattern: string; cursorT: number; cursorId: string };

/** One page of the public directory, prepared once per isolate for each shape (filtered, after a cursor). */
function directoryStatement(filtered: boolean, paged: boolean) {
  return prepared((db, p: Placeholders<DirectoryValues>) =>
    db
      .select(publicColumns)
      .from(users)
      .leftJoin(profiles, eq(profiles.userId, users.id))
      .where(
        and(
          isPublicAccount(),
          filtered ? or(like(users.username, p.usernamePattern), like(profiles.name, p.namePattern)) : undefined,
          paged ? newerThan(users.createdAt, users.id, { t: p.cursorT, id: p.cursorId }) : undefined,
        ),
      )
      .orderBy(asc(users.createdAt), asc(users.id))
      .limit(p.limit),
  );
}
const directoryPage = preparedShapes(directoryStatement);

/** SQL: the user's profile exists (and, with `also`, matches it). */
const profileExists = (userId: string, also?: SQL) =>
  sql`EXISTS (SELECT 1 FROM ${profiles} WHERE ${and(eq(profiles.userId, userId), also)})`;

/**
 * A profile change's statements, each only while `signedIn` holds: the entry first, and only while
 * the profile exists (an account deleted meanwhile took the profile with it, and an entry for it
 * would fail the foreign key, a 500, or on a libSQL server that does not enforce them outlive the
 * account), then the changed columns. For `update`, and for a rename made with it in one batch.
 */
export function profileUpdate(db: Db, userId: string, change: ProfileUpdate, signedIn: SQL) {
  return [
    activityInsertSelect(db, change.activity, { where: and(profileExists(userId), signedIn) }),
    db
      .update(profiles)
      .set({ ...change.changes, updatedAt: change.activity.nowMs })
      .where(and(eq(profiles.userId, userId), signedIn)),
  ];
}

export function DrizzleProfileStore(db: Db): ProfileStore {
  const byUser = async (userId: string): Promise<Profile | null> =>
    (await runOne(db.select().from(profiles).where(eq(profiles.userId, userId)).limit(1)))[0] ?? null;
  return {
    byUser,

    async ensure(blank) {
      await runOne(db.insert(profiles).values(blank).onConflictDoNothing());
      return (await byUser(blank.userId)) ?? blank;
    },

    async update(userId, change, signInsValidAfter) {
      const [, updated] = await runBatch(db, profileUpdate(db, userId, change, whileSignInsAsRead(userId, signInsValidAfter)));
      return affectedRows(updated) > 0;
    },

    async setAvatar(userId, avatar, nowMs, activity, signIn) {
      const signedIn = whileSignedIn(userId, signIn);
      const [before, , updated] = (await runBatch(db, [
        db.select({ key: profiles.avatarKey }).from(profiles).where(eq(profiles.userId, userId)),
        // Before the pointer moves, while it still tells whether there is anything to remove.
        activityInsertSelect(db, activity, {
          where: and(signedIn, avatar ? profileExists(userId) : profileExists(userId, isNotNull(profiles.avatarKey))),
        }),
        db
          .update(profiles)
          .set({
            avatarKey: avatar?.key ?? null,
            avatarContentType: avatar?.contentType ?? null,
            avatarEtag: avatar?.etag ?? null,
            updatedAt: nowMs,
          })
          .where(and(eq(profiles.userId, userId), signedIn)),
      ])) as [{ key: string | null }[], unknown, unknown];
      const written = affectedRows(updated) > 0;
      return { written, replacedKey: written ? (before[0]?.key ?? null) : null };
    },

    async directory(filter, page) {
      const rows = await runOne(
        directoryPage(filter !== null, page.cursor !== null)(db, {
          limit: page.limit + 1,
          usernamePattern: filter ? prefixPattern(filter.usernamePrefix) : "",
          namePattern: filter ? prefixPattern(filter.namePrefix) : "",
          cursorT: page.cursor?.t ?? 0,
          cursorId: page.cursor?.id ?? "",
        }),
      );
      return rows.map(withNulls);
    },

    async publicProfile({ id, username }) {
      const query = db.select(publicColumns).from(users).leftJoin(profiles, eq(profiles.userId, users.id));
      const [row] = await runOne(
        username === undefined
          ? query.where(and(eq(users.id, id), isPublicAccount())).limit(1)
          : query
              .where(and(or(eq(users.id, id), eq(users.username, username)), isPublicAccount()))
              // A key that is one account's id and another's username names the first.
              .orderBy(desc(eq(users.id, id)))
              .limit(1),
      );
      return row ? withNulls(row) : null;
    },

    async currentAvatarKeys(userIds) {
      const chunks: Query[] = [];
      for (let i = 0; i < userIds.length; i += IDS_PER_STATEMENT) {
        const ids = userIds.slice(i, i + IDS_PER_STATEMENT);
        chunks.push(
          db
            .select({ id: users.id, key: profiles.avatarKey })
            .from(users)
            .leftJoin(profiles, eq(profiles.userId, users.id))
            .where(inArray(users.id, ids)),
        );
      }
      // One round trip for every chunk.
      const results = chunks.length > 0 ? ((await runBatch(db, chunks)) as { id: string; key: string | null }[][]) : [];
      return new Map(results.flat().map((row) => [row.id, row.key]));
    },

    async publicAvatar(userId) {
      const [row] = await runOne(
        db
          .select({ key: profiles.avatarKey, etag: profiles.avatarEtag, contentType: profiles.avatarContentType })
          .from(users)
          .innerJoin(profiles, eq(profiles.userId, users.id))
          .where(and(eq(users.id, userId), isPublicAccount()))
          .limit(1),
      );
      return row ?? null;
    },
  };
}

type JoinedRow = { id: string; username: string | null; createdAt: number } & {
  [K in "name" | "surname" | "profession" | "aboutMe" | "avatarKey"]?: string | null;
};

/** A left join leaves the profile's columns null (or absent) for an account without one. */
function withNulls(row: JoinedRow): PublicProfileRow {
  return {
    id: row.id,
    username: row.username,
    createdAt: row.createdAt,
    name: row.name ?? null,
    surname: row.surname ?? null,
    profession: row.profession ?? null,
    aboutMe: row.aboutMe ?? null,
    avatarKey: row.avatarKey ?? null,
  };
}
