// What `npm run deploy` runs on the database after the new worker is up. The migrations are applied
// before the upload, so for a while (seconds, or until a failed upload is retried) the previous
// worker serves on the new schema, writing without the columns it does not know. Each repair here
// redoes, idempotently, what the new code would have written alongside such a write.

/**
 * Users changed in the window are found by `users.updated_at`, which every write of their state
 * sets, in the worker's clock; this margin covers the operator's clock being behind it.
 */
export const REPAIR_MARGIN_MS = 10 * 60_000;

/**
 * The repair SQL for writes since `sinceMs`: `statuses.author_public` (migration 0006) back in step
 * with its author, as `statusesFollowAuthor` in src/store/statements.ts keeps it, for the authors
 * whose row changed since (an old worker re-enabling or verifying one leaves it 0, hiding their
 * statuses from the timeline).
 */
export function repairSql(sinceMs) {
  const since = Math.floor(sinceMs);
  const publicNow = "coalesce((SELECT email_verified AND is_active FROM users WHERE users.id = statuses.user_id), 0)";
  return `UPDATE statuses SET author_public = ${publicNow} WHERE user_id IN (SELECT id FROM users WHERE updated_at >= ${since}) AND author_public <> ${publicNow}`;
}
