/**
 * "Your data": one document with everything Latchkey stores about a user. Built from the same
 * views the API shows, which by construction leave out password hashes, refresh-token hashes and
 * one-time-code hashes (codes themselves are never stored); the export adds ended sessions and
 * the full activity history.
 *
 * The statuses and the activity history have no bound (years of posts and sign-ins), so they are
 * read in pages while the document is written out (lib/json-stream.ts) instead of being held whole
 * in an isolate's 128 MB. The rest is read before the answer starts, so a database that fails at
 * once still gets a clean 500 problem document; a page read that fails later aborts the download.
 */
import type { Deps } from "../../deps";
import { jsonObjectStream, PagedArray } from "../../lib/json-stream";
import type { Profile, User } from "../../store";
import { activityPages } from "../activity/activity.service";
import { userView } from "../auth/auth.service";
import { profileView } from "../profiles/profiles.service";
import { allSessions } from "../sessions/sessions.service";
import { statusPages } from "../statuses/statuses.service";

export const EXPORT_FORMAT_VERSION = 1;

/**
 * Statuses or activity entries per read: at most about 1–2 MB of rows held at a time, and one D1
 * query per thousand (a Worker invocation may make at most 1,000 D1 queries on the paid plan, 50 on the free one).
 */
export const EXPORT_PAGE_SIZE = 1000;

/** The export goes out as a download of personal data, from the API and the website alike: never kept by a cache or proxy. */
export const EXPORT_DOWNLOAD_HEADERS = {
  "Content-Disposition": 'attachment; filename="latchkey-export.json"',
  "Cache-Control": "no-store",
};

function exportedProfile(profile: Profile) {
  return { ...profileView(profile), avatar_content_type: profile.avatarContentType };
}

/**
 * The export of `user` (the row loaded for this request by `requireUser`) as a JSON byte stream,
 * its fields in the order of `DataExport`. `onError` gets what stopped the stream after it began
 * (for the log); the stream then errors instead of ending.
 */
export async function exportUserData(
  deps: Pick<Deps, "profiles" | "statuses" | "activity" | "tokens" | "clock" | "config">,
  user: User,
  onError: (error: unknown) => void,
) {
  const [profile, sessions] = await Promise.all([deps.profiles.byUser(user.id), allSessions(deps, user.id)]);
  return jsonObjectStream(
    {
      format_version: EXPORT_FORMAT_VERSION,
      exported_at: new Date(deps.clock.now()).toISOString(),
      account: { ...userView(user), pending_email: user.pendingEmail },
      profile: profile ? exportedProfile(profile) : null,
      statuses: new PagedArray(statusPages(deps, user.id, EXPORT_PAGE_SIZE)),
      activity: new PagedArray(activityPages(deps, user.id, EXPORT_PAGE_SIZE)),
      sessions,
    },
    onError,
  );
}
