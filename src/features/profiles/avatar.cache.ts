/**
 * Avatars from the edge cache (the Workers Cache API, `caches.default`). A versioned avatar URL
 * names one upload's bytes, so the response for the *current* version of a *public, active*
 * account can be shared: a repeat request is answered from the cache without reading D1 or R2.
 *
 * What the Cache API is, and what that means here:
 * - It is per data center. "The contents of the cache do not replicate outside of the originating
 *   data center", and `cache.delete` likewise removes only this data center's copy
 *   (https://developers.cloudflare.com/workers/runtime-apis/cache/). A purge in every data center
 *   would take the zone's purge API and an API token, which this worker does not hold and does not
 *   call. So when an avatar is replaced or deleted, or the account is disabled, unverified or
 *   deleted, `purge` removes the copy in the data center that handled that change; other data
 *   centers may keep answering the old versioned URL until their copy expires.
 * - That is why the stored copy carries its own bounded lifetime, `EDGE_TTL_SECONDS`, separate from
 *   what the client is told (`max-age=31536000, immutable`, set by the route): no copy anywhere
 *   outlives a purge by more than that. Clients that follow `avatar_url` never see a stale image in
 *   the meantime, because replacing an avatar changes its version and so its URL; only someone
 *   holding the old URL can still fetch the old bytes, and only from a data center that cached it.
 *   The same bound covers the one race a purge cannot: a request that read the profile just before
 *   a change and stores its copy just after the purge. (The lookup reads the D1 primary, not a
 *   replica, so replication lag cannot widen that race: src/store/replica.ts.)
 * - The key is built here from the host name (always under `https://`, whichever scheme the
 *   request came by), the avatar path and `?v=version` only — never from the
 *   request's URL — so extra query parameters cannot make new entries or pick a different one, and
 *   only pairs the database confirmed (a real user, its current version) are ever stored: one
 *   entry per account, host name and data center. The host name is the request's own, as Cloudflare
 *   asks ("do not override the hostname in cache requests": cloudflare/cloudflare-docs#18634, on
 *   the page above); a purge therefore names the copy under the host name the change came through
 *   (the API and the website share one). Copies under other host names routed to this worker
 *   expire by the same bound.
 * - Any failure of the cache is logged and treated as a miss: it never fails a request.
 * - It does nothing on `*.workers.dev` (the Cache API works only on custom domains, per the page
 *   above); Miniflare (`wrangler dev`, the tests, the benchmark) implements it locally.
 */

import { loggableError } from "../../lib/errors";
import { log } from "../../lib/log";
import { avatarPath } from "./avatar.storage";

/**
 * How long a data center keeps its copy (`s-maxage`): the longest another data center can answer an
 * avatar URL after a purge, and the cost is one D1 read and one R2 read per avatar, data center and
 * hour — nothing next to the traffic a cached avatar serves.
 */
export const EDGE_TTL_SECONDS = 3600;

/** A stored copy of one version of an avatar. */
export interface CachedAvatar {
  etag: string;
  contentType: string;
  size: number;
  body: ReadableStream;
}

/** The edge cache as the avatar service sees it: one entry per user and current version. */
export interface AvatarCache {
  /** This data center's copy, or null (a miss, or the cache failed). */
  get(userId: string, version: string): Promise<CachedAvatar | null>;
  /** Stores a copy; in the background when the runtime allows (`waitUntil`). Never throws. */
  put(userId: string, version: string, avatar: CachedAvatar): Promise<void>;
  /** Deletes this data center's copy of that version (see the module comment). Never throws. */
  purge(userId: string, version: string): Promise<void>;
}

/** The Cache API behind `AvatarCache`, keyed under the host name of the request's `origin`. */
export function EdgeAvatarCache(options: { cache: Cache; origin: string; waitUntil?: (task: Promise<unknown>) => void }): AvatarCache {
  const { cache, waitUntil } = options;
  // One key per host, whatever the scheme the request came by: a zone that also answers plain
  // http would otherwise keep an http:// copy that a purge made over https does not name.
  const origin = `https://${new URL(options.origin).host}`;
  const keyOf = (userId: string, version: string) => `${origin}${avatarPath(userId, version)}`;
  return {
    async get(userId, version) {
      try {
        const response = await cache.match(keyOf(userId, version));
        if (!response) return null;
        const etag = response.headers.get("etag");
        const contentType = response.headers.get("content-type");
        const size = Number(response.headers.get("content-length"));
        if (!response.body || !etag || !contentType || !Number.isSafeInteger(size)) {
          await response.body?.cancel();
          return null;
        }
        return { etag, contentType, size, body: response.body };
      } catch (error) {
        log("error", "avatar.cache_read_failed", { error: loggableError(error) });
        return null;
      }
    },
    async put(userId, version, avatar) {
      const copy = new Response(avatar.body, {
        headers: {
          ETag: avatar.etag,
          "Content-Type": avatar.contentType,
          "Content-Length": String(avatar.size),
          "Cache-Control": `public, s-maxage=${EDGE_TTL_SECONDS}`,
        },
      });
      const stored = (async () => {
        try {
          await cache.put(keyOf(userId, version), copy);
        } catch (error) {
          log("error", "avatar.cache_write_failed", { error: loggableError(error) });
        }
      })();
      if (waitUntil) waitUntil(stored);
      else await stored;
    },
    async purge(userId, version) {
      try {
        await cache.delete(keyOf(userId, version));
      } catch (error) {
        log("error", "avatar.cache_purge_failed", { version, error: loggableError(error) });
      }
    },
  };
}

/** No cache: outside a request (queue, cron) there is no origin to name a copy by. */
export const NoAvatarCache: AvatarCache = {
  get: async () => null,
  put: async (_userId, _version, avatar) => {
    await avatar.body.cancel();
  },
  purge: async () => {},
};
