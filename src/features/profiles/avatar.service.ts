/**
 * Avatars in R2. The order of writes keeps R2 and D1 consistent without a shared transaction:
 * the object is written first (a failure leaves the profile untouched), then the profile points
 * at it in one D1 batch with the activity entry (a failure deletes the new object), and only then
 * is the replaced object deleted. The batch also reads the key it replaces, inside the same
 * transaction, so two concurrent uploads each delete exactly the object they displaced.
 *
 * Reads of the current versioned URL are answered from the edge cache when it has a copy
 * (avatar.cache.ts); every change that makes a cached URL wrong — a replace, a delete, the account
 * disabled, unverified or deleted — purges the copy it can name.
 */
import type { Deps } from "../../deps";
import { assertNoContentCoding } from "../../lib/content-coding";
import { randomId, toHex } from "../../lib/crypto";
import { readAtMost } from "../../lib/drain";
import { AppError, dependencyRefused, fieldError, loggableError, signInEnded } from "../../lib/errors";
import { log } from "../../lib/log";
import type { User } from "../../store";
import type { CachedAvatar } from "./avatar.cache";
import { AVATAR_MAX_BYTES, type ImageInfo, inspectImage } from "./avatar.image";
import {
  avatarOwner,
  avatarPrefix,
  avatarUrl,
  avatarVersion,
  deleteAllAvatarObjects,
  listAvatarObjects,
  loggableAvatarKey,
} from "./avatar.storage";
import { countProfileChange, loadOwnProfile } from "./profiles.service";

/** Room for a form's boundary lines and part headers around the file (an HTML form sends ~300 bytes). */
export const MULTIPART_OVERHEAD_BYTES = 16 * 1024;

const tooLarge = () => new AppError("payload_too_large", `The image must be at most ${AVATAR_MAX_BYTES} bytes (2 MiB).`);

/**
 * Reads a body into memory, refusing it (413) as soon as it passes `maxBytes`: the declared
 * Content-Length is checked first, then the bytes are counted as they stream (lib/drain.ts).
 */
async function readBounded(body: ReadableStream<Uint8Array> | null, contentLength: string | null, maxBytes: number): Promise<Uint8Array> {
  if (contentLength !== null && Number(contentLength) > maxBytes) throw tooLarge();
  if (!body) return new Uint8Array(0);
  return readAtMost(body, maxBytes, tooLarge);
}

/**
 * The uploaded file's bytes: the raw body, or the `avatar` field of a multipart/form-data body.
 * The declared type only tells the two apart; what the file is gets decided by its bytes. A body
 * with a content coding is refused unread (415, lib/content-coding.ts).
 */
export async function readAvatarUpload(request: Request): Promise<Uint8Array> {
  assertNoContentCoding(request.headers);
  const contentType = request.headers.get("content-type") ?? "";
  const contentLength = request.headers.get("content-length");
  if (!/^multipart\/form-data\s*;/i.test(contentType)) {
    const bytes = await readBounded(request.body, contentLength, AVATAR_MAX_BYTES);
    if (bytes.byteLength === 0) throw fieldError("avatar", "the body is empty; send the image bytes");
    return bytes;
  }
  const body = await readBounded(request.body, contentLength, AVATAR_MAX_BYTES + MULTIPART_OVERHEAD_BYTES);
  let form: FormData;
  try {
    form = await new Response(body, { headers: { "content-type": contentType } }).formData();
  } catch {
    throw new AppError("validation_failed", "The multipart body cannot be parsed.");
  }
  const parts = form.getAll("avatar");
  const file = parts[0];
  if (parts.length !== 1 || typeof file === "string" || file === undefined) {
    throw fieldError("avatar", "send exactly one file in the 'avatar' field");
  }
  if (file.size > AVATAR_MAX_BYTES) throw tooLarge();
  if (file.size === 0) throw fieldError("avatar", "the file is empty");
  return new Uint8Array(await file.arrayBuffer());
}

/** Maps the inspector's verdict to the error model: not an allowed image 415, a bad one 422. */
function assertAcceptableImage(bytes: Uint8Array): ImageInfo {
  const result = inspectImage(bytes);
  if (result.ok) return result.image;
  const code = result.reason === "unsupported" || result.reason === "polyglot" ? "unsupported_media_type" : "unprocessable_image";
  throw new AppError(code, result.detail);
}

async function deleteObject(bucket: R2Bucket, key: string, why: string) {
  try {
    await bucket.delete(key);
  } catch (error) {
    log("error", "avatar.delete_failed", { why, key: loggableAvatarKey(key), error: loggableError(error) });
  }
}

/**
 * Stores a new avatar and points the profile at it. Returns its public URL. Keys are made here
 * (`avatars/{user_id}/{random}.{ext}`), never from input.
 */
export async function uploadAvatar(deps: Deps, user: User, sessionId: string, bytes: Uint8Array): Promise<{ avatar_url: string }> {
  const { avatars, clock, meta } = deps;
  // Counted before the image is examined: refused uploads cost the scan of up to 2 MiB too.
  await countProfileChange(deps, user.id, clock.now());
  const image = assertAcceptableImage(bytes);
  await loadOwnProfile(deps, user.id);
  const key = `${avatarPrefix(user.id)}${randomId()}.${image.extension}`;
  const sha256 = toHex(await crypto.subtle.digest("SHA-256", bytes));

  let stored: R2Object | null;
  try {
    // R2 verifies the body against `sha256`; the hex copy in customMetadata survives for audits.
    stored = await avatars.put(key, bytes, {
      httpMetadata: { contentType: image.contentType },
      customMetadata: { sha256, width: String(image.width), height: String(image.height) },
      sha256,
    });
  } catch (error) {
    log("error", "avatar.store_failed", { key: loggableAvatarKey(key), error: loggableError(error) });
    stored = null;
  }
  if (!stored) throw dependencyRefused("The image could not be stored; your profile is unchanged.");

  const now = clock.now();
  let set: { written: boolean; replacedKey: string | null };
  try {
    set = await deps.profiles.setAvatar(
      user.id,
      { key, contentType: image.contentType, etag: stored.httpEtag },
      now,
      {
        userId: user.id,
        type: "avatar_updated",
        nowMs: now,
        meta,
        details: { content_type: image.contentType, width: image.width, height: image.height, bytes: bytes.byteLength },
      },
      { tokensValidAfter: user.tokensValidAfter, sessionId },
    );
  } catch (error) {
    // An error can hide a write that committed (its reply lost): the new object is deleted only
    // when the profile is known not to point at it, never leaving the profile on a missing image.
    // Read at the primary: the session never saw the lost reply's bookmark, so a replica it may
    // read from need not have the write yet.
    const pointsAtIt = await deps.primary.profiles.byUser(user.id).then(
      (profile) => profile?.avatarKey === key,
      () => null,
    );
    const outcome = {
      true: "reported failure but committed it; the replaced object, if any, is left for the daily sweep",
      false: "failed; deleting it",
      null: "failed, and the profile cannot be read; it is left for the daily sweep",
    }[String(pointsAtIt) as "true" | "false" | "null"];
    log("error", "avatar.profile_update_failed", { key: loggableAvatarKey(key), outcome, error: loggableError(error) });
    if (pointsAtIt === true) return { avatar_url: avatarUrl(user.id, key) as string };
    if (pointsAtIt === false) await deleteObject(avatars, key, "orphaned");
    throw dependencyRefused("The avatar could not be saved; your profile is unchanged.");
  }
  if (!set.written) {
    // The account was deleted, or this sign-in ended, meanwhile: nothing points at the new object.
    await deleteObject(avatars, key, "orphaned");
    throw signInEnded();
  }
  const { replacedKey } = set;
  if (replacedKey && replacedKey !== key) {
    await deps.avatarCache.purge(user.id, avatarVersion(replacedKey));
    await deleteObject(avatars, replacedKey, "replaced");
  }
  return { avatar_url: avatarUrl(user.id, key) as string };
}

/** Removes the avatar (idempotent: no avatar, nothing to do and nothing recorded). */
export async function deleteAvatar(deps: Deps, user: User, sessionId: string): Promise<void> {
  const { avatars, clock, meta } = deps;
  const profile = await loadOwnProfile(deps, user.id);
  if (!profile.avatarKey) return;
  const now = clock.now();
  await countProfileChange(deps, user.id, now);
  const { written, replacedKey: removedKey } = await deps.profiles.setAvatar(
    user.id,
    null,
    now,
    { userId: user.id, type: "avatar_deleted", nowMs: now, meta },
    { tokensValidAfter: user.tokensValidAfter, sessionId },
  );
  if (!written) throw signInEnded(); // the account was deleted, or this sign-in ended, meanwhile
  if (removedKey) {
    await deps.avatarCache.purge(user.id, avatarVersion(removedKey));
    await deleteObject(avatars, removedKey, "deleted");
  }
}

/**
 * Purges the edge-cache copy of a user's current avatar, for a change that takes the account out
 * of public view (disabled or unverified by staff). One profile read, on that rare path only.
 */
export async function purgeAvatarCopies(deps: Pick<Deps, "profiles" | "avatarCache">, userId: string): Promise<void> {
  try {
    const profile = await deps.profiles.byUser(userId);
    if (profile?.avatarKey) await deps.avatarCache.purge(userId, avatarVersion(profile.avatarKey));
  } catch (error) {
    // What made the copy stale has committed; this data center's copy expires within the hour.
    log("error", "avatar.cache_purge_failed", { error: loggableError(error) });
  }
}

/** Purges the edge-cache copy of the avatar object `key` of `userId`. */
export async function purgeAvatarCopy(deps: Pick<Deps, "avatarCache">, userId: string, key: string): Promise<void> {
  await deps.avatarCache.purge(userId, avatarVersion(key));
}

/**
 * Account deletion: removes every avatar object of the user and purges the edge-cache copy of
 * each (any left behind, and `currentKey`, the profile's, even when R2 cannot list or delete).
 * Failures are logged, not thrown.
 */
export async function deleteAllAvatars(
  deps: Pick<Deps, "avatars" | "avatarCache">,
  userId: string,
  currentKey: string | null,
): Promise<void> {
  const keys = await deleteAllAvatarObjects(deps.avatars, userId);
  const versions = new Set([...keys, ...(currentKey ? [currentKey] : [])].map(avatarVersion));
  await Promise.all([...versions].map((version) => deps.avatarCache.purge(userId, version)));
}

/**
 * Objects younger than this may belong to an upload whose database write has not committed yet,
 * so the sweep leaves them alone even when no profile points at them.
 */
export const AVATAR_SWEEP_GRACE_MS = 60 * 60_000;

/**
 * Where the next sweep starts, kept in the CONFIG namespace (no config key has this shape): the
 * last key the previous run reached. A run stops after `maxPages` listings, so without it every
 * run would list the same first objects and a bucket larger than one run's listings would never
 * be swept past them.
 */
export const AVATAR_SWEEP_POSITION_KEY = "job:avatar-sweep:after";

/** The saved position, or null (start at the top) when there is none or KV fails. */
async function sweepStart(kv: KVNamespace): Promise<string | null> {
  try {
    return await kv.get(AVATAR_SWEEP_POSITION_KEY);
  } catch (error) {
    log("error", "avatar.sweep_position", { failed: "read", outcome: "starting at the top", error: loggableError(error) });
    return null;
  }
}

async function saveSweepPosition(kv: KVNamespace, position: string | null): Promise<void> {
  try {
    if (position === null) await kv.delete(AVATAR_SWEEP_POSITION_KEY);
    else await kv.put(AVATAR_SWEEP_POSITION_KEY, position);
  } catch (error) {
    log("error", "avatar.sweep_position", { failed: "save", outcome: "the next run repeats it", error: loggableError(error) });
  }
}

/**
 * Deletes the avatar objects nothing points at, for the daily job: every object of an account
 * that no longer exists (its deletion could not remove them from R2), and each object older than
 * AVATAR_SWEEP_GRACE_MS that is not its account's current avatar (a replaced object whose delete
 * failed, an upload whose profile write failed). Up to `maxPages` listings of `pageSize` objects
 * per run, starting where the previous run stopped; an R2 failure ends the run early, logged, and
 * the next run goes on from the last page done. `complete` is true when the run reached the end
 * of the listing (the next one starts at the top again).
 */
export async function sweepOrphanAvatars(
  deps: Pick<Deps, "avatars" | "profiles" | "clock" | "configKv">,
  options: { maxPages: number; pageSize?: number },
): Promise<{ deleted: number; complete: boolean }> {
  const cutoff = deps.clock.now() - AVATAR_SWEEP_GRACE_MS;
  const startAfter = await sweepStart(deps.configKv);
  let position = startAfter;
  let deleted = 0;
  let complete = false;
  let cursor: string | undefined;
  try {
    for (let page = 0; page < options.maxPages; page++) {
      const listed = await listAvatarObjects(deps.avatars, { cursor, startAfter: startAfter ?? undefined, limit: options.pageSize });
      const objects = listed.objects.flatMap((o) => {
        const owner = avatarOwner(o.key);
        return owner === null ? [] : [{ ...o, owner }];
      });
      const current = await deps.profiles.currentAvatarKeys([...new Set(objects.map((o) => o.owner))]);
      const orphans = objects
        .filter((o) => !current.has(o.owner) || (current.get(o.owner) !== o.key && o.uploaded < cutoff))
        .map((o) => o.key);
      if (orphans.length > 0) await deps.avatars.delete(orphans);
      deleted += orphans.length;
      position = listed.objects.at(-1)?.key ?? position;
      cursor = listed.cursor;
      if (!cursor) {
        complete = true;
        position = null;
        break;
      }
    }
  } catch (error) {
    log("error", "avatar.sweep_stopped", { deleted, error: loggableError(error) });
  }
  if (position !== startAfter) await saveSweepPosition(deps.configKv, position);
  return { deleted, complete };
}

export type AvatarRead =
  | { status: 304; etag: string; current: boolean }
  | { status: 200; etag: string; current: boolean; contentType: string; body: ReadableStream; size: number };

/** True when an If-None-Match header lists `etag` (weak comparison, RFC 9110 §13.1.2) or is `*`. */
function matchesEtag(ifNoneMatch: string, etag: string): boolean {
  const strip = (tag: string) => tag.trim().replace(/^W\//, "");
  return ifNoneMatch.split(",").some((tag) => tag.trim() === "*" || strip(tag) === strip(etag));
}

/** A read answered from the edge cache's copy: only the current version is ever stored. */
function fromCopy(copy: CachedAvatar, ifNoneMatch: string | undefined): AvatarRead {
  if (ifNoneMatch && matchesEtag(ifNoneMatch, copy.etag)) {
    copy.body.cancel().catch(() => {}); // the bytes are not needed
    return { status: 304, etag: copy.etag, current: true };
  }
  return { status: 200, etag: copy.etag, current: true, contentType: copy.contentType, body: copy.body, size: copy.size };
}

/**
 * Opens a user's avatar for the public URL. `current` says whether the requested version is
 * the current one (only that URL may be cached as immutable). 404 when the account is not public
 * or has no avatar.
 *
 * A versioned request is first looked up in the edge cache (no D1, no R2 on a hit). On a miss,
 * a 200 for the current version of a public account is stored there as it streams out; nothing
 * else is (not an old or missing version, not a 304, not a 404).
 */
export async function openAvatar(
  deps: Pick<Deps, "profiles" | "avatars" | "avatarCache">,
  userId: string,
  request: { version?: string; ifNoneMatch?: string },
): Promise<AvatarRead> {
  const { version } = request;
  if (version) {
    const copy = await deps.avatarCache.get(userId, version);
    if (copy) return fromCopy(copy, request.ifNoneMatch);
  }
  const row = await deps.profiles.publicAvatar(userId);
  if (!row?.key || !row.etag) throw new AppError("not_found", "This profile has no avatar.");
  const current = version === avatarVersion(row.key);
  if (request.ifNoneMatch && matchesEtag(request.ifNoneMatch, row.etag)) return { status: 304, etag: row.etag, current };
  const object = await deps.avatars.get(row.key);
  if (!object) throw new AppError("not_found", "This profile has no avatar.");
  const contentType = object.httpMetadata?.contentType ?? row.contentType ?? "application/octet-stream";
  let body = object.body;
  if (current && version) {
    const [forClient, forCache] = object.body.tee();
    body = forClient;
    await deps.avatarCache.put(userId, version, { etag: object.httpEtag, contentType, size: object.size, body: forCache });
  }
  return { status: 200, etag: object.httpEtag, current, contentType, body, size: object.size };
}
