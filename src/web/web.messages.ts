/**
 * What a person reads. Every public error code has a sentence (the compiler checks the map is
 * complete); like the API's titles they say nothing that would help someone guessing accounts.
 * Flash messages are chosen by key, so a cookie never carries text into a page.
 */
import type { ErrorCode } from "../lib/errors";

export const ERROR_SENTENCES: Record<ErrorCode, string> = {
  validation_failed: "Some fields need attention; see the messages next to them.",
  malformed_json: "The form could not be read. Please try again.",
  invalid_token: "That link or token is not valid.",
  invalid_code: "That code is wrong or has expired. Check the latest email, or ask for a new code.",
  invalid_cursor: "That page no longer exists; start again from the first page.",
  unauthorized: "Please sign in to continue.",
  invalid_credentials: "The email or username and password do not match an account.",
  invalid_refresh_token: "Your sign-in has ended. Please sign in again.",
  invalid_current_password: "Your current password is not correct.",
  forbidden: "You are not allowed to do this.",
  email_not_verified: "Please confirm your email address first.",
  not_found: "We could not find that.",
  method_not_allowed: "This page does not accept that kind of request.",
  email_taken: "An account with this email address already exists.",
  username_taken: "This username is taken; please choose another.",
  conflict: "That cannot be done right now.",
  last_staff: "That would leave no active staff account. Make another account staff first.",
  payload_too_large: "What you sent is too large.",
  unsupported_media_type: "That kind of file is not accepted.",
  unprocessable_image: "That image cannot be used.",
  rate_limited: "Too many attempts. Please wait a little and try again.",
  internal_error: "Something went wrong on our side. Please try again.",
  service_unavailable: "The service is temporarily unavailable; nothing was changed. Please try again soon.",
  database_unavailable: "We could not reach our database just now. Please try again in a moment.",
};

export const FLASH = {
  registered: "Account created. We emailed you a code to confirm your address.",
  code_sent: "If an account with this email exists, a code is on its way.",
  verified: "Email address confirmed. Welcome!",
  signed_in: "You are signed in.",
  signed_out: "You are signed out.",
  settings_saved: "Settings saved.",
  avatar_saved: "Profile picture saved.",
  avatar_removed: "Profile picture removed.",
  password_changed: "Password changed. Your other sign-ins have ended.",
  password_code_sent: "We emailed you a code. Enter it below with your new password.",
  email_change_started: "We emailed a code to your new address. Enter it below to finish the change.",
  email_changed: "Email address changed.",
  email_change_cancelled: "The pending email change was cancelled.",
  account_deleted: "Your account has been deleted.",
  status_posted: "Status posted.",
  status_saved: "Status saved.",
  status_deleted: "Status deleted.",
  session_ended: "That session has been signed out.",
  others_ended: "Every other session has been signed out.",
  password_reset: "Password changed. Please sign in with your new password.",
  signed_out_everywhere: "You are signed out everywhere.",
  config_saved: "Configuration saved.",
  config_reset: "Reset to the default.",
  user_saved: "Account updated.",
  user_sessions_ended: "Every session of that account has ended.",
} as const;
export type FlashKey = keyof typeof FLASH;

export function isFlashKey(value: unknown): value is FlashKey {
  return typeof value === "string" && Object.hasOwn(FLASH, value);
}

/** Activity types as a person reads them. */
export const ACTIVITY_LABELS: Record<string, string> = {
  register: "Account created",
  email_verified: "Email confirmed",
  login: "Signed in",
  login_failed: "Failed sign-in",
  logout: "Signed out",
  logout_all: "Signed out everywhere",
  token_reuse_detected: "Suspicious reuse of a sign-in; that session was ended",
  password_changed: "Password changed",
  password_reset: "Password reset",
  email_change_requested: "Email change requested",
  email_changed: "Email changed",
  username_changed: "Username changed",
  profile_updated: "Profile updated",
  avatar_updated: "Profile picture changed",
  avatar_deleted: "Profile picture removed",
  status_created: "Status posted",
  status_updated: "Status edited",
  status_deleted: "Status deleted",
  otp_requested: "Code requested",
  otp_locked: "Code locked after wrong attempts",
  session_revoked: "Session signed out",
};

/** A short description of a browser from its user agent (never shown as markup). */
export function deviceName(userAgent: string | null): string {
  if (!userAgent) return "Unknown device";
  const browser = /Edg\//.test(userAgent)
    ? "Edge"
    : /Firefox\//.test(userAgent)
      ? "Firefox"
      : /Chrome\//.test(userAgent)
        ? "Chrome"
        : /Safari\//.test(userAgent)
          ? "Safari"
          : /curl\//.test(userAgent)
            ? "curl"
            : null;
  const os = /Windows/.test(userAgent)
    ? "Windows"
    : /Android/.test(userAgent)
      ? "Android"
      : /iPhone|iPad/.test(userAgent)
        ? "iOS"
        : /Mac OS X/.test(userAgent)
          ? "macOS"
          : /Linux/.test(userAgent)
            ? "Linux"
            : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser ?? os ?? userAgent.slice(0, 60);
}
