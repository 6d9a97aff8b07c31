/**
 * Recording account events. `activityInsert` returns a query, not a promise of a write: callers
 * put it in the same `db.batch()` as the change it describes, so an event is never lost and never
 * recorded for a change that did not happen. `details` must never hold passwords, codes or tokens.
 */
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
