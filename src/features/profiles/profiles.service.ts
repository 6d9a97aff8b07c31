/**
 * Profiles: the signed-in user's own details, and the public directory. Every account gets its
 * profile row in the registration batch; an account made another way (the admin CLI) gets it
 * on first use, so readers never see an account without one.
 */
import type { z } from "@hono/zod-openapi";
import type { Deps } from "../../deps";
import { AppError, fieldError, signInEnded } from "../../lib/errors";
import { clientKey } from "../../lib/ip";
import { type Page, pageRequest, toPage } from "../../lib/pagination";
import { assertWithinLimit } from "../../lib/rate-limit";
import { cleanText, normalizeIdentifier } from "../../lib/text";
import type { Profile, ProfileChanges, ProfileUpdate, PublicProfileRow, User } from "../../store";
import { avatarUrl } from "./avatar.storage";
import { EDITABLE_FIELDS, type EditableField, type ProfileInput, type ProfileSchema, type PublicProfileSchema } from "./profiles.schemas";

const COLUMN: Record<EditableField, "name" | "surname" | "age" | "phoneNumber" | "profession" | "aboutMe"> = {
  name: "name",
  surname: "surname",
  age: "age",
  phone_number: "phoneNumber",
  profession: "profession",
  about_me: "aboutMe",
};

export function profileView(profile: Profile): ProfileView {
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
export type ProfileView = z.infer<typeof ProfileSchema>;

/** The user's profile row, created (empty) if the account somehow has none. */
export async function loadOwnProfile(deps: Pick<Deps, "profiles" | "clock">, userId: string): Promise<Profile> {
  const found = await deps.profiles.byUser(userId);
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
  return deps.profiles.ensure(blank);
}

/**
 * The change `input` makes to `user`'s profile: PUT (`replace`) sets every editable field, omitted
 * ones becoming null; PATCH (`patch`) only the fields given. Only changed columns are written (two
 * concurrent PATCHes of different fields both stick), with a `profile_updated` entry naming them,
 * never their values; `update` is null when nothing changes. A change is counted against
 * `profileChangesPerUser` here, before anything is written.
 */
export async function prepareProfileUpdate(
  deps: Deps,
  user: User,
  input: ProfileInput,
  mode: "replace" | "patch",
): Promise<{ current: Profile; update: ProfileUpdate | null }> {
  const current = await loadOwnProfile(deps, user.id);
  const changes: ProfileChanges = {};
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
  if (changed.length === 0) return { current, update: null };
  const now = deps.clock.now();
  await countProfileChange(deps, user.id, now);
  const activity = { userId: user.id, type: "profile_updated" as const, nowMs: now, meta: deps.meta, details: { fields: changed } };
  return { current, update: { changes, activity } };
}

/** Saves the change `input` makes to the profile (see `prepareProfileUpdate`); nothing is written when nothing changes. */
export async function updateProfile(deps: Deps, user: User, input: ProfileInput, mode: "replace" | "patch"): Promise<Profile> {
  const { current, update } = await prepareProfileUpdate(deps, user, input, mode);
  if (!update) return current;
  // False when its sign-ins ended, or the account was deleted, meanwhile.
  if (!(await deps.profiles.update(user.id, update, user.tokensValidAfter))) throw signInEnded();
  return { ...current, ...update.changes, updatedAt: update.activity.nowMs };
}

function publicProfileView(row: PublicProfileRow): PublicProfileView {
  return {
    user_id: row.id,
    username: row.username,
    name: row.name,
    surname: row.surname,
    profession: row.profession,
    about_me: row.aboutMe,
    avatar_url: avatarUrl(row.id, row.avatarKey),
  };
}
export type PublicProfileView = z.infer<typeof PublicProfileSchema>;

/**
 * The public directory in registration order (oldest first; ties by id), optionally filtered by
 * a prefix of the username or the name. `cursor` is the previous page's `next_cursor`.
 */
export async function listDirectory(
  deps: Pick<Deps, "profiles" | "secrets">,
  query: { q?: string; limit?: number; cursor?: string },
): Promise<Page<PublicProfileView>> {
  const page = await pageRequest(deps.secrets.otpSecret, "profiles", query);
  const q = query.q === undefined ? "" : cleanText(query.q);
  if (q === null) throw fieldError("q", "must not contain control characters");
  const rows = await deps.profiles.directory(q ? { usernamePrefix: normalizeIdentifier(q), namePrefix: q } : null, page);
  return toPage(deps.secrets.otpSecret, "profiles", rows, page.limit, publicProfileView);
}

/** One public profile; a missing, unverified or disabled account is a 404 alike. */
export async function getPublicProfile(deps: Pick<Deps, "profiles">, userId: string): Promise<PublicProfileView> {
  return publicProfileBy(deps, { id: userId });
}

/** Counts one change of `userId`'s profile or avatar (`profileChangesPerUser`); 429 past it. */
export async function countProfileChange(deps: Pick<Deps, "counters">, userId: string, nowMs: number): Promise<void> {
  assertWithinLimit("profileChangesPerUser", await deps.counters.hit("profileChangesPerUser", userId, nowMs), nowMs);
}

/** An account id's shape: 22 base64url characters (`randomId`). */
const ACCOUNT_ID = /^[A-Za-z0-9_-]{22}$/;

/**
 * The public profile a website address names (`/people/{key}`): an account id, or a username in
 * any letter case, found with one lookup. A missing, unverified or disabled account is a 404 alike.
 * A key of an id's shape with a capital letter names that id only: an account without a username
 * is linked by its id, and someone whose username spells that id in lower case would otherwise be
 * shown there once the account leaves public view. (An id without capitals, about 1 in 100,000,
 * still wins over a username while its account is public.)
 */
export async function findPublicProfile(deps: Pick<Deps, "profiles">, key: string): Promise<PublicProfileView> {
  if (ACCOUNT_ID.test(key) && key !== key.toLowerCase()) return publicProfileBy(deps, { id: key });
  return publicProfileBy(deps, { id: key, username: key.toLowerCase() });
}

async function publicProfileBy(deps: Pick<Deps, "profiles">, key: { id: string; username?: string }): Promise<PublicProfileView> {
  const row = await deps.profiles.publicProfile(key);
  if (!row) throw new AppError("not_found", "No public profile with this id.");
  return publicProfileView(row);
}

/**
 * Counts one read of the public directory by a page of the website, or one search by the API,
 * against the client's per-IP allowance (`directoryReadsPerIp`); past it, a 429 with Retry-After.
 */
export async function countDirectoryRead(deps: Pick<Deps, "counters" | "clock" | "meta">): Promise<void> {
  const now = deps.clock.now();
  assertWithinLimit("directoryReadsPerIp", await deps.counters.hit("directoryReadsPerIp", clientKey(deps.meta.ip), now), now);
}
