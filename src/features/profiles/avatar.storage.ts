/** Where avatars live in R2: `avatars/{user_id}/{random}.{ext}`, keys made only by the server. */

import { loggableError } from "../../lib/errors";
import { log } from "../../lib/log";
import { API_BASE } from "../../lib/paths";

const AVATARS_ROOT = "avatars/";

/** An avatar key as a log line shows it: without the account's id (logs name users only by `userRef`, lib/log.ts). */
export function loggableAvatarKey(key: string): string {
  return key.replace(/^avatars\/[^/]+\//, "avatars/…/");
}

export function avatarPrefix(userId: string): string {
  return `${AVATARS_ROOT}${userId}/`;
}

/**
 * Removes every avatar object of a user (account deletion) and returns the keys it removed.
 * Failures are logged, not thrown.
 */
export async function deleteAllAvatarObjects(bucket: R2Bucket, userId: string): Promise<string[]> {
  const removed: string[] = [];
  try {
    let cursor: string | undefined;
    do {
      const page = await bucket.list({ prefix: avatarPrefix(userId), cursor });
      const keys = page.objects.map((o) => o.key);
      if (keys.length > 0) await bucket.delete(keys);
      removed.push(...keys);
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  } catch (error) {
    log("error", "avatar.delete_failed", { why: "account deleted", outcome: "left for the daily sweep", error: loggableError(error) });
  }
  return removed;
}

/** The account an avatar key belongs to (`avatars/{userId}/…`), or null for a key of another shape. */
export function avatarOwner(key: string): string | null {
  if (!key.startsWith(AVATARS_ROOT)) return null;
  const rest = key.slice(AVATARS_ROOT.length);
  const slash = rest.indexOf("/");
  return slash > 0 ? rest.slice(0, slash) : null;
}

/** R2 lists at most this many objects a call. */
const R2_LIST_MAX = 1000;

/**
 * One page (up to `limit`, R2_LIST_MAX by default) of the avatar objects, in key order, with when
 * each was stored; `cursor` for the next page. The first page starts after `startAfter` when given.
 */
export async function listAvatarObjects(bucket: R2Bucket, page: { cursor?: string; startAfter?: string; limit?: number } = {}) {
  const listed = await bucket.list({
    prefix: AVATARS_ROOT,
    ...(page.cursor ? { cursor: page.cursor } : page.startAfter ? { startAfter: page.startAfter } : {}),
    limit: page.limit ?? R2_LIST_MAX,
  });
  return {
    objects: listed.objects.map((o) => ({ key: o.key, uploaded: o.uploaded.getTime() })),
    cursor: listed.truncated ? listed.cursor : undefined,
  };
}

/** Public URLs are served by the worker itself (`GET {API_BASE}/profiles/{id}/avatar`). */
const AVATAR_URL_BASE = `${API_BASE}/profiles`;

/** The random part of a key: it changes with every upload, so it versions the public URL. */
export function avatarVersion(key: string): string {
  const name = key.slice(key.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot === -1 ? name : name.slice(0, dot);
}

/** The path and query of one version of a user's avatar (also its edge-cache key, after the origin). */
export function avatarPath(userId: string, version: string): string {
  return `${AVATAR_URL_BASE}/${encodeURIComponent(userId)}/avatar?v=${encodeURIComponent(version)}`;
}

/** The avatar's public, cacheable URL, or null when there is none. */
export function avatarUrl(userId: string, key: string | null): string | null {
  return key ? avatarPath(userId, avatarVersion(key)) : null;
}
