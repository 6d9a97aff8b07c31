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
 * - avatar objects nothing points at (`sweepOrphanAvatars`): those of deleted accounts, and
 *   replaced or failed uploads left behind by an R2 or D1 failure. Each run goes on from where
 *   the previous one stopped listing, so the whole bucket is covered however large it grows.
 *
 * Every statement deletes at most `batchSize` rows (D1 limits a statement's duration, and a huge
 * delete would hold the database's single writer), and each kind gets at most `maxRounds`
 * statements per run. A backlog larger than that is worked off over the following days.
 */
import { readConfigEntries } from "../../config/config.service";
import type { Deps } from "../../deps";
import { log } from "../../lib/log";
import { sweepOrphanAvatars } from "../profiles/avatar.service";

export const RETENTION_BATCH_SIZE = 500;
export const RETENTION_MAX_ROUNDS = 20;
const DAY_MS = 86_400_000;

export interface RetentionResult {
  activity: number;
  refreshTokens: number;
  rateLimits: number;
  otpCodes: number;
  avatars: number;
  /** False when some kind hit `maxRounds` with rows possibly left for the next run, or was skipped. */
  complete: boolean;
}

/** Runs `deleteBatch` until it deletes fewer than `batchSize` rows or `maxRounds` is reached. */
async function drain(deleteBatch: () => Promise<number>, batchSize: number, maxRounds: number) {
  let deleted = 0;
  for (let round = 0; round < maxRounds; round++) {
    const changes = await deleteBatch();
    deleted += changes;
    if (changes < batchSize) return { deleted, complete: true };
  }
  return { deleted, complete: false };
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
  deps: Pick<Deps, "activity" | "tokens" | "counters" | "codes" | "clock" | "avatars" | "profiles" | "configKv">,
  options: { batchSize?: number; maxRounds?: number } = {},
): Promise<RetentionResult> {
  const batchSize = options.batchSize ?? RETENTION_BATCH_SIZE;
  const maxRounds = options.maxRounds ?? RETENTION_MAX_ROUNDS;
  const now = deps.clock.now();
  const days = await retentionDays(deps.configKv);

  const oldActivity =
    days === null
      ? { deleted: 0, complete: false }
      : await drain(() => deps.activity.purgeOlderThan(now - days * DAY_MS, batchSize), batchSize, maxRounds);
  const deadTokens = await drain(() => deps.tokens.purgeDead(now, batchSize), batchSize, maxRounds);
  const endedWindows = await drain(() => deps.counters.purgeEnded(now, batchSize), batchSize, maxRounds);
  const deadCodes = await drain(() => deps.codes.purgeExpired(now, batchSize), batchSize, maxRounds);
  // R2 lists 1,000 objects a page: the same number of rounds covers 20,000 objects a run.
  const orphanAvatars = await sweepOrphanAvatars(deps, { maxPages: maxRounds });

  return {
    activity: oldActivity.deleted,
    refreshTokens: deadTokens.deleted,
    rateLimits: endedWindows.deleted,
    otpCodes: deadCodes.deleted,
    avatars: orphanAvatars.deleted,
    complete: oldActivity.complete && deadTokens.complete && endedWindows.complete && deadCodes.complete && orphanAvatars.complete,
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
    deleted_avatars: result.avatars,
    complete: result.complete,
  });
  return result;
}
