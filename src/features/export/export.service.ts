/**
 * "Your data": one document with everything Latchkey stores about a user. Built from the same
 * views the API shows, which by construction leave out password hashes, refresh-token hashes and
 * one-time-code hashes (codes themselves are never stored); the export adds ended sessions and
 * the full activity history.
 */
import type { Deps } from "../../deps";
import type { Profile, User } from "../../store";
import { allActivity } from "../activity/activity.service";
import { userView } from "../auth/auth.service";
import { profileView } from "../profiles/profiles.service";
import { allSessions } from "../sessions/sessions.service";
import { allStatuses } from "../statuses/statuses.service";

export const EXPORT_FORMAT_VERSION = 1;

/** The export goes out as a download of personal data, from the API and the website alike: never kept by a cache or proxy. */
export const EXPORT_DOWNLOAD_HEADERS = {
  "Content-Disposition": 'attachment; filename="latchkey-export.json"',
  "Cache-Control": "no-store",
};

function exportedProfile(profile: Profile) {
  return { ...profileView(profile), avatar_content_type: profile.avatarContentType };
}

/** Collects the export for `user` (the row loaded for this request by `requireUser`). */
export async function exportUserData(deps: Pick<Deps, "profiles" | "statuses" | "activity" | "tokens" | "clock">, user: User) {
  const [profile, statuses, activity, sessions] = await Promise.all([
    deps.profiles.byUser(user.id),
    allStatuses(deps, user.id),
    allActivity(deps, user.id),
    allSessions(deps, user.id),
  ]);
  return {
    format_version: EXPORT_FORMAT_VERSION,
    exported_at: new Date(deps.clock.now()).toISOString(),
    account: userView(user),
    profile: profile ? exportedProfile(profile) : null,
    statuses,
    activity,
    sessions,
  };
}
