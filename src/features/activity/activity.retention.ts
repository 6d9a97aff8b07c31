/**
 * The daily maintenance job (the cron trigger in wrangler.toml). It deletes:
 * - activity entries older than KV `activity_retention_days` — only when KV answered with a valid
 *   value: requests fall back to the default when KV fails or holds an invalid value, but a
 *   deletion cannot be undone, and an operator keeping ten years would lose nine of them;
 * - refresh tokens of sign-ins that are entirely over (every token of the family has expired).
 *   A family with any unexpired token keeps all its rotated tokens, because presenting one of
 *   those is how reuse is detected (RFC 9700 §4.14.2);
 * - rate-limit windows that have ended (a new hit starts a fresh window anyway);
 * - one-time codes past their expiry, used or not (a consumed code is gone within `otp_ttl`);
 * - the holds of usernames given up longer ago than `USERNAME_HOLD_MS` (no longer consulted);
 * - avatar objects nothing points at (`sweepOrphanAvatars`): those of deleted accounts, and
 *   replaced or failed uploads left behind by an R2 or D1 failure. Each run goes on from where
 *   the previous one stopped listing, so the whole bucket is covered however large it grows.
 *
 * Every statement deletes at most `batchSize` rows (D1 limits a statement's duration, and a huge
 * delete would hold the database's single writer), and each kind gets at most `maxRounds`
 * statements per run. A backlog larger than that is worked off over the following days. A kind
 * that fails is logged and the others still run: one failing every day (a statement timing out on
 * a backlog) must not starve the rest. The run then fails as a whole, after all of them.
 */
import { readConfigEntries } from "../../config/config.service";
import type { Deps } from "../../deps";
import { loggableError } from "../../lib/errors";
import { log } from "../../lib/log";
import { USERNAME_HOLD_MS } from "../auth/username-policy";
import { sweepOrphanAvatars } from "../profiles/avatar.service";

export const RETENTION_BATCH_SIZE = 500;
export const RETENTION_MAX_ROUNDS = 20;
const DAY_MS = 86_400_000;

export interface RetentionResult {
  activity: number;
  refreshTokens: number;
  rateLimits: number;
  otpCodes: number;
  releasedUsernames: number;
  avatars: number;
  /** False when some kind hit `maxRounds` with rows possibly left for the next run, was skipped, or failed. */
  complete: boolean;
  /** The kinds whose deletion failed (logged); the others ran. */
  failed: string[];
}

type Drained = { deleted: number; complete: boolean; failed?: string };

/**
 * Runs `deleteBatch` until it deletes fewer than `batchSize` rows or `maxRounds` is reached. A
 * failure ends this kind only: it is logged, with what was deleted before it.
 */
async function drain(kind: string, deleteBatch: () => Promise<number>, batchSize: number, maxRounds: number): Promise<Drained> {
  let deleted = 0;
  try {
    for (let round = 0; round < maxRounds; round++) {
      const changes = await deleteBatch();
      deleted += changes;
      if (changes < batchSize) return { deleted, complete: true };
    }
    return { deleted, complete: false };
  } catch (error) {
    log("error", "retention", { failed: kind, deleted, error: loggableError(error) });
    return { deleted, complete: false, failed: kind };
  }
}

/**
 * `activity_retention_days` as KV holds it, without the fallbacks requests use: null (and a log
 * line) when KV cannot be read or holds a value the worker cannot use.
 */
async function retentionDays(kv: KVNamespace): Promise<number | null> {
  try {
    const entry = (await readConfigEntries(kv)).find((e) => e.key === "activity_retention_days");
    if (entry?.valid && typeof entry.value === "number") return entry.value;
    log("error", "retention", { skipped: "activity", reason: "activity_retention_days in KV is not valid" });
  } catch (error) {
    log("error", "retention", { skipped: "activity", reason: `KV read failed: ${error instanceof Error ? error.message : String(error)}` });
  }
  return null;
}

/**
 * Deletes what has outlived its use (see the module comment). Time comes from `deps.clock`, so
 * tests run it at any instant; the retention period is read from KV itself (`retentionDays`).
 */
export async function runRetention(
  deps: Pick<Deps, "activity" | "tokens" | "counters" | "codes" | "users" | "clock" | "avatars" | "profiles" | "configKv">,
  options: { batchSize?: number; maxRounds?: number } = {},
): Promise<RetentionResult> {
  const batchSize = options.batchSize ?? RETENTION_BATCH_SIZE;
  const maxRounds = options.maxRounds ?? RETENTION_MAX_ROUNDS;
  const now = deps.clock.now();
  const days = await retentionDays(deps.configKv);

  const oldActivity: Drained =
    days === null
      ? { deleted: 0, complete: false }
      : await drain("activity", () => deps.activity.purgeOlderThan(now - days * DAY_MS, batchSize), batchSize, maxRounds);
  const deadTokens = await drain("refresh_tokens", () => deps.tokens.purgeDead(now, batchSize), batchSize, maxRounds);
  const endedWindows = await drain("rate_limits", () => deps.counters.purgeEnded(now, batchSize), batchSize, maxRounds);
  const deadCodes = await drain("otp_codes", () => deps.codes.purgeExpired(now, batchSize), batchSize, maxRounds);
  const pastHolds = await drain(
    "released_usernames",
    () => deps.users.purgeReleasedUsernames(now - USERNAME_HOLD_MS, batchSize),
    batchSize,
    maxRounds,
  );
  // R2 lists 1,000 objects a page: the same number of rounds covers 20,000 objects a run. It logs its own failures.
  const orphanAvatars = await sweepOrphanAvatars(deps, { maxPages: maxRounds });

  const kinds = [oldActivity, deadTokens, endedWindows, deadCodes, pastHolds, orphanAvatars];
  return {
    activity: oldActivity.deleted,
    refreshTokens: deadTokens.deleted,
    rateLimits: endedWindows.deleted,
    otpCodes: deadCodes.deleted,
    releasedUsernames: pastHolds.deleted,
    avatars: orphanAvatars.deleted,
    complete: kinds.every((kind) => kind.complete),
    failed: [oldActivity, deadTokens, endedWindows, deadCodes, pastHolds].flatMap((kind) => kind.failed ?? []),
  };
}

/** The cron entry point (deps from `createBackgroundDeps`: config read fresh); logs a summary. */
export async function scheduledRetention(deps: Deps): Promise<RetentionResult> {
  const result = await runRetention(deps);
  log("info", "retention", {
    deleted_activity: result.activity,
    deleted_refresh_tokens: result.refreshTokens,
    deleted_rate_limits: result.rateLimits,
    deleted_otp_codes: result.otpCodes,
    deleted_released_usernames: result.releasedUsernames,
    deleted_avatars: result.avatars,
    complete: result.complete,
  });
  // Awaited by the cron handler: the invocation shows as failed, after every kind had its turn.
  if (result.failed.length > 0) throw new Error(`retention failed for ${result.failed.join(", ")}`);
  return result;
}
