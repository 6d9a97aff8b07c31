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
  "email_changed",
  "profile_updated",
  "avatar_updated",
  "avatar_deleted",
  "status_created",
  "status_deleted",
  "otp_requested",
  "session_revoked",
] as const;
export type ActivityType = (typeof ACTIVITY_TYPES)[number];

/** Where a request came from, as recorded with tokens and activity. */
export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
}

export function activityInsert(
  db: Db,
  entry: {
    userId: string;
    type: ActivityType;
    nowMs: number;
    meta: RequestMeta;
    details?: Record<string, string | number | boolean | string[]>;
  },
) {
  return db.insert(activity).values({
    id: randomId(),
    userId: entry.userId,
    type: entry.type,
    createdAt: entry.nowMs,
    ip: entry.meta.ip,
    userAgent: entry.meta.userAgent,
    details: JSON.stringify(entry.details ?? {}),
  });
}

/**
 * Like `activityInsert`, but the entry is written only if `condition` (an SQL boolean such as
 * `EXISTS (…)`) still holds when the batch runs. Put it before the change in the batch: when a
 * concurrent request already made the change (deleted the status, revoked the session), this
 * request's batch changes nothing and records nothing. A query builder (`INSERT … SELECT … WHERE`),
 * not `db.run`, so that it can go into a batch.
 */
export function activityInsertIf(db: Db, entry: Parameters<typeof activityInsert>[1], condition: SQL) {
  const values: Record<keyof typeof activity.$inferSelect, unknown> = {
    id: randomId(),
    userId: entry.userId,
    type: entry.type,
    createdAt: entry.nowMs,
    ip: entry.meta.ip,
    userAgent: entry.meta.userAgent,
    details: JSON.stringify(entry.details ?? {}),
  };
  // drizzle lists every column in table order for INSERT … SELECT; select the values in that order.
  const columns = Object.keys(getTableColumns(activity)).map((key) => sql`${values[key as keyof typeof values]}`);
  return db.insert(activity).select(sql`SELECT ${sql.join(columns, sql`, `)} WHERE ${condition}`);
}
