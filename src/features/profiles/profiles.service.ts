/**
 * Profiles: the signed-in user's own details, and the public directory. Every account gets its
 * profile row in the registration batch; an account made another way (the admin CLI) gets it
 * on first use, so readers never see an account without one.
 */
import { and, asc, eq, or } from "drizzle-orm";
import { runBatch } from "../../db/client";
import { type Profile, profiles, type User, users } from "../../db/schema";
import type { Deps } from "../../env";
import { AppError, fieldError } from "../../lib/errors";
import { newerThan, type Page, pageRequest, toPage } from "../../lib/pagination";
import { startsWith } from "../../lib/search";
import { cleanText, normalizeIdentifier } from "../../lib/text";
import { activityInsert } from "../activity/activity.record";
import { avatarUrl } from "./avatar.storage";
import { EDITABLE_FIELDS, type EditableField, type ProfileInput } from "./profiles.schemas";

const COLUMN: Record<EditableField, "name" | "surname" | "age" | "phoneNumber" | "profession" | "aboutMe"> = {
  name: "name",
  surname: "surname",
  age: "age",
  phone_number: "phoneNumber",
  profession: "profession",
  about_me: "aboutMe",
};

export function profileView(profile: Profile) {
  return {
    name: profile.name,
    surname: profile.surname,
    age: profile.age,
    phone_number: profile.phoneNumber,
    profession: profile.profession,
    about_me: profile.aboutMe,
    avatar_url: avatarUrl(profile.userId, profile.avatarKey),
    updated_at: new Date(profile.updatedAt).toISOString(),
  };
}
export type ProfileView = ReturnType<typeof profileView>;

/** The user's profile row, created (empty) if the account somehow has none. */
export async function loadOwnProfile(deps: Pick<Deps, "db" | "clock">, userId: string): Promise<Profile> {
  const found = await deps.db.query.profiles.findFirst({ where: eq(profiles.userId, userId) });
  if (found) return found;
  const blank: Profile = {
    userId,
    name: null,
    surname: null,
    age: null,
    phoneNumber: null,
    profession: null,
    aboutMe: null,
    avatarKey: null,
    avatarContentType: null,
    avatarEtag: null,
    updatedAt: deps.clock.now(),
  };
  await deps.db.insert(profiles).values(blank).onConflictDoNothing();
  return (await deps.db.query.profiles.findFirst({ where: eq(profiles.userId, userId) })) ?? blank;
}

/**
 * PUT (`replace`) sets every editable field, omitted ones becoming null; PATCH (`patch`) changes
 * only the fields given. Only changed columns are written (two concurrent PATCHes of different
 * fields both stick), together with a `profile_updated` entry naming them — never their values.
 * Nothing is written when nothing changes.
 */
export async function updateProfile(deps: Deps, user: User, input: ProfileInput, mode: "replace" | "patch"): Promise<Profile> {
  const current = await loadOwnProfile(deps, user.id);
  const changes: Partial<Profile> = {};
  const changed: EditableField[] = [];
  for (const field of EDITABLE_FIELDS) {
    const given = input[field];
    if (given === undefined && mode === "patch") continue;
    const value = given ?? null;
    const column = COLUMN[field];
    if (value === current[column]) continue;
    Object.assign(changes, { [column]: value });
    changed.push(field);
  }
  if (changed.length === 0) return current;

  const now = deps.clock.now();
  await runBatch(deps.db, [
    deps.db
      .update(profiles)
      .set({ ...changes, updatedAt: now })
      .where(eq(profiles.userId, user.id)),
    activityInsert(deps.db, { userId: user.id, type: "profile_updated", nowMs: now, meta: deps.meta, details: { fields: changed } }),
  ]);
  return { ...current, ...changes, updatedAt: now };
}

/** Only confirmed, enabled accounts appear in public: the directory, single reads and avatars. */
export const isPublicAccount = () => and(eq(users.emailVerified, true), eq(users.isActive, true));

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
type PublicRow = { id: string; username: string | null; createdAt: number } & Partial<
  Record<"name" | "surname" | "profession" | "aboutMe" | "avatarKey", string | null>
>;

function publicProfileView(row: PublicRow) {
  return {
    user_id: row.id,
    username: row.username,
    name: row.name ?? null,
    surname: row.surname ?? null,
    profession: row.profession ?? null,
    about_me: row.aboutMe ?? null,
    avatar_url: avatarUrl(row.id, row.avatarKey ?? null),
  };
}
export type PublicProfileView = ReturnType<typeof publicProfileView>;

/**
 * The public directory in registration order (oldest first; ties by id), optionally filtered by
 * a prefix of the username or the name. `cursor` is the previous page's `next_cursor`.
 */
export async function listDirectory(
  deps: Pick<Deps, "db" | "env">,
  query: { q?: string; limit?: number; cursor?: string },
): Promise<Page<PublicProfileView>> {
  const { limit, cursor } = await pageRequest(deps.env.OTP_SECRET, query);
  const q = query.q === undefined ? "" : cleanText(query.q);
  if (q === null) throw fieldError("q", "must not contain control characters");
  const byPrefix = q ? or(startsWith(users.username, normalizeIdentifier(q)), startsWith(profiles.name, q)) : undefined;
  const rows = await deps.db
    .select(publicColumns)
    .from(users)
    .leftJoin(profiles, eq(profiles.userId, users.id))
    .where(and(isPublicAccount(), byPrefix, newerThan(users.createdAt, users.id, cursor)))
    .orderBy(asc(users.createdAt), asc(users.id))
    .limit(limit + 1);
  return toPage(deps.env.OTP_SECRET, rows, limit, publicProfileView);
}

/** One public profile; a missing, unverified or disabled account is a 404 alike. */
export async function getPublicProfile(deps: Pick<Deps, "db">, userId: string): Promise<PublicProfileView> {
  const [row] = await deps.db
    .select(publicColumns)
    .from(users)
    .leftJoin(profiles, eq(profiles.userId, users.id))
    .where(and(eq(users.id, userId), isPublicAccount()))
    .limit(1);
  if (!row) throw new AppError("not_found", "No public profile with this id.");
  return publicProfileView(row);
}
