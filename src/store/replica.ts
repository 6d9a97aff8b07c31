/**
 * D1 read replication (the Sessions API): the one rule deciding where each request's reads may
 * go, and the bookmark that lets a client read its own writes.
 *
 * Every request runs in one D1 session. Read-only routes that tolerate a slightly stale answer
 * start `first-unconstrained` (their first query may go to the nearest replica); everything that
 * writes, or must see the newest state (sign-in, refresh, every admin read), starts
 * `first-primary`. Within a session reads are sequentially consistent either way, and writes
 * always go to the primary. The session's bookmark is returned as `X-Latchkey-Bookmark`; a client
 * that sends it back starts its next session on a replica-tolerant route at least that fresh, so it
 * reads its own writes there. Routes that start at the primary ignore it, and a malformed
 * bookmark is ignored everywhere (the route's own start applies).
 *
 * Under libSQL there are no D1 sessions: the same interface is a no-op and no bookmark is sent.
 */
import { API_BASE } from "../lib/paths";
import { D1Db, type Db } from "./driver";

export const BOOKMARK_HEADER = "X-Latchkey-Bookmark";

export type SessionStart = "first-primary" | "first-unconstrained";

/**
 * GET routes that may read from a replica (paths relative to API_BASE). Everything else starts at
 * the primary. Keep the README's table ("D1 read replication") in step with this list.
 *
 * Not the avatar (`/profiles/{user_id}/avatar`): its answer is stored in the edge cache for up to
 * an hour, so a lagging replica that still saw a replaced version as current, or a disabled account
 * as public, would put back the copy a purge had just removed. It reads D1 only on a cache miss.
 * Nor the data export (`/me/export`): everything the account holds, answered only to a session
 * the primary says is live, not to one a lagging replica has not yet seen revoked.
 */
export const REPLICA_TOLERANT_ROUTES = [
  "/profiles", // the public directory
  "/profiles/{user_id}", // a public profile
  "/statuses", // the public timeline
  "/statuses/{id}", // one status
  "/me", // the caller's account
  "/me/profile",
  "/me/activity",
  "/me/sessions", // the sessions list
] as const;

const tolerant = REPLICA_TOLERANT_ROUTES.map((route) => new RegExp(`^${API_BASE}${route.replace(/\{[a-z_]+\}/g, "[^/]+")}/?$`));

/** Where a request's session starts: the rule for every route, in one place. */
export function sessionStartFor(method: string, path: string): SessionStart {
  if (method !== "GET" && method !== "HEAD") return "first-primary";
  return tolerant.some((pattern) => pattern.test(path)) ? "first-unconstrained" : "first-primary";
}

/**
 * D1 bookmarks are four hyphen-separated hex fields (e.g. `00000000-00000006-00000000-` and 32 hex
 * digits). Anything else is not one we issued: it is dropped rather than handed to D1, so a bad
 * header can never fail the request.
 */
const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

export function parseBookmark(header: string | null | undefined): string | null {
  return header && BOOKMARK.test(header) ? header : null;
}

/** The database for one request, and the bookmark to hand back after it (null: none to send). */
export interface ReplicaSession {
  db: Db;
  bookmark(): string | null;
}

/**
 * A D1 session starting at `start`, or, on a replica-tolerant route (`first-unconstrained`), at
 * the client's `bookmark` when it sent a valid one. A route that starts at the primary ignores
 * the bookmark: it can only make a session fresher than a replica's, never fresher than the
 * primary, and an old one would let a lagging replica answer what must be the newest state (a
 * staff check, a revoked session, the avatar that goes to the edge cache). The session starts
 * when `db` is first read: a request that never queries starts none, and then has no bookmark to
 * send back.
 */
export function D1Session(binding: D1Database, start: SessionStart, clientBookmark: string | null): ReplicaSession {
  const bookmark = start === "first-primary" ? null : clientBookmark;
  // A binding without the Sessions API (a stand-in in tests, an old compatibility date) reads the primary.
  if (typeof binding.withSession !== "function") return NoSession(D1Db(binding));
  let session: D1DatabaseSession | null = null;
  let db: Db | null = null;
  return {
    get db() {
      if (!db) {
        try {
          session = binding.withSession(bookmark ?? start);
        } catch (error) {
          // A bookmark D1 refuses is ignored, never a 5xx.
          if (bookmark === null) throw error;
          session = binding.withSession(start);
        }
        db = D1Db(session);
      }
      return db;
    },
    bookmark: () => session?.getBookmark() ?? null,
  };
}

/** No sessions (libSQL, or background jobs on the D1 binding itself). */
export function NoSession(db: Db): ReplicaSession {
  return { db, bookmark: () => null };
}
