/** Where avatars live in R2: `avatars/{user_id}/{random}.{ext}`, keys made only by the server. */
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
    console.error("[avatars] could not delete the avatar objects of a deleted account; the daily sweep will", error);
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

/** One page (up to 1,000) of every avatar object, with when each was stored; `cursor` for the next page. */
export async function listAvatarObjects(bucket: R2Bucket, cursor?: string) {
  const page = await bucket.list({ prefix: AVATARS_ROOT, cursor, limit: 1000 });
  return {
    objects: page.objects.map((o) => ({ key: o.key, uploaded: o.uploaded.getTime() })),
    cursor: page.truncated ? page.cursor : undefined,
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
