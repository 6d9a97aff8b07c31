/**
 * Recording account events. `activityInsert` returns a query, not a promise of a write: callers
 * put it in the same `db.batch()` as the change it describes, so an event is never lost and never
 * recorded for a change that did not happen. `details` must never hold passwords, codes or tokens.
 */
import { getTableColumns, type SQL, sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { activity } from "../../db/schema";
import { randomId } from "../../lib/crypto";

export const ACTIVITY_TYPES = [
  "register",
  "email_verified",
  "login",
  "login_failed",
  "logout",
  "logout_all",
  "token_reuse_detected",
  "password_changed",
  "password_reset",
  "email_change_requested",
  "email_changed",
  "profile_updated",
  "avatar_updated",
  "avatar_deleted",
  "status_created",
  "status_deleted",
  "otp_requested",
  "otp_locked",
  "session_revoked",
] as const;
export type ActivityType = (typeof ACTIVITY_TYPES)[number];

/** Where a request came from, as recorded with tokens and activity. */
export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
}

export interface ActivityEntry {
  userId: string;
  type: ActivityType;
  nowMs: number;
  meta: RequestMeta;
  details?: Record<string, string | number | boolean | string[]>;
}

function activityRow(entry: ActivityEntry) {
  return {
    id: randomId(),
    userId: entry.userId,
    type: entry.type,
    createdAt: entry.nowMs,
    ip: entry.meta.ip,
    userAgent: entry.meta.userAgent,
    details: JSON.stringify(entry.details ?? {}),
  };
}

export function activityInsert(db: Db, entry: ActivityEntry) {
  return db.insert(activity).values(activityRow(entry));
}

/**
 * The entry as `INSERT … SELECT`, for writes that must depend on the database's state when the
 * batch runs: `where` makes the entry conditional; `userIdFrom` takes the user id from a
 * sub-select (NULL there fails the NOT NULL constraint and rolls back the whole batch). A query
 * builder, not `db.run`, so that it can go into a batch.
 */
export function activityInsertSelect(db: Db, entry: ActivityEntry, options: { where?: SQL; userIdFrom?: SQL }) {
  const row: Record<string, unknown> = activityRow(entry);
  // drizzle lists every column in table order for INSERT … SELECT; select the values in that order.
  const columns = Object.keys(getTableColumns(activity)).map((key) =>
    key === "userId" && options.userIdFrom ? options.userIdFrom : sql`${row[key] ?? null}`,
  );
  const where = options.where ? sql` WHERE ${options.where}` : sql``;
  return db.insert(activity).select(sql`SELECT ${sql.join(columns, sql`, `)}${where}`);
}

/**
 * Like `activityInsert`, but the entry is written only if `condition` (an SQL boolean such as
 * `EXISTS (…)`) still holds when the batch runs. Put it before the change in the batch: when a
 * concurrent request already made the change (deleted the status, revoked the session), this
 * request's batch changes nothing and records nothing.
 */
export function activityInsertIf(db: Db, entry: ActivityEntry, condition: SQL) {
  return activityInsertSelect(db, entry, { where: condition });
}
