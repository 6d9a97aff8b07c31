/**
 * The domain types the stores speak: rows as services see them, and the records a store method
 * writes. Derived from the schema where they are rows, so a column is declared once.
 */
import type { Cursor } from "../lib/pagination";
import type { activity, otpCodes, profiles, refreshTokens, users } from "./schema";

export type User = typeof users.$inferSelect;
export type Profile = typeof profiles.$inferSelect;
export type RefreshToken = typeof refreshTokens.$inferSelect;
export type StoredActivity = typeof activity.$inferSelect;
export type OtpPurpose = (typeof otpCodes.$inferSelect)["purpose"];

/** Every kind of account event the activity history records. */
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
  "username_changed",
  "profile_updated",
  "avatar_updated",
  "avatar_deleted",
  "status_created",
  "status_updated",
  "status_deleted",
  "otp_requested",
  "otp_locked",
  "session_revoked",
] as const;
export type ActivityType = (typeof ACTIVITY_TYPES)[number];

export const AUDIT_ACTIONS = ["config.set", "config.delete", "user.update", "user.logout_all", "status.update", "status.delete"] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Where a request came from, as recorded with tokens and activity. */
export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
}

/** An activity entry to write. `details` must never hold passwords, codes or tokens. */
export interface ActivityRecord {
  userId: string;
  type: ActivityType;
  nowMs: number;
  meta: RequestMeta;
  details?: Record<string, string | number | boolean | string[]>;
}

export interface AuditRecord {
  id?: string;
  actorId: string;
  action: AuditAction;
  target: string;
  oldValue: string | null;
  newValue: string | null;
  nowMs: number;
}

/** A fixed-window counter as a reservation left it. */
export interface Counter {
  count: number;
  resetAt: number;
}

export type { Cursor };

/** A page request as the store sees it: `limit + 1` rows are read so the caller knows if there is more. */
export interface PageQuery {
  limit: number;
  cursor: Cursor | null;
}

/** A one-time code about to be stored (only its HMAC; the code itself is never written). */
export interface NewCode {
  id: string;
  purpose: OtpPurpose;
  sentTo: string;
  codeHash: string;
  createdAt: number;
  expiresAt: number;
}

/** A refresh token about to be stored (only its SHA-256). */
export type NewRefreshToken = Omit<RefreshToken, "revokedAt" | "revokedReason">;

/**
 * What a successful password check gives back, for the batch of the change it authorised: the
 * failures of the identifier it was counted on are forgiven and the IP's reservation is returned.
 */
export interface PasswordCheckRelease {
  identifier: LoginIdentifier;
  ip: string;
}

/** How a password sign-in names its account. */
export type LoginIdentifier = { email: string } | { username: string };
