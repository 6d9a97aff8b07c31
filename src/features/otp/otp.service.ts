/**
 * One-time codes sent by email: account activation, passwordless login, password reset, and
 * proof of a new address on an email change. A code is 6 uniform digits; the database keeps only
 * HMAC-SHA256(OTP_SECRET, purpose:address:code), so a database leak does not reveal live codes.
 *
 * A code is bound to the address it was mailed to (`sent_to`, and the HMAC input): it verifies or
 * signs in that address and no other, and any change of the account's email voids every code the
 * account has outstanding. Issuing a code supersedes the previous one of the same purpose.
 *
 * Using a code has two round trips. `checkCode` reads the account and the address's daily
 * failure counter and reserves one attempt on the newest live code (a conditional increment, so
 * concurrent guesses cannot exceed `otp_max_attempts` between them), all in one batch, and
 * compares in constant time. Then either one of the code store's `spendFor…` methods runs the
 * change in one batch that also consumes the code — exactly once, whatever runs concurrently
 * (src/store/codes.ts) — or `recordFailure` counts the wrong guess. For an address without an account the same statements run (they match no
 * rows), so neither the answer nor the work tells whether an account exists.
 */
import type { Deps } from "../../deps";
import { hmacSha256Hex, randomDigits, randomId, timingSafeEqual } from "../../lib/crypto";
import { AppError, dependencyRefused, loggableError } from "../../lib/errors";
import { clientKey } from "../../lib/ip";
import { log } from "../../lib/log";
import { assertWithinLimit } from "../../lib/rate-limit";
import type { CodeOwner, NewCode, User } from "../../store";
import { type MailMessage, sealMailCode } from "../mail/mail.messages";
import { CODE_PATTERN, OTP_LENGTH, type OtpPurpose } from "./otp.purposes";

export function hashCode(secret: string, address: string, purpose: OtpPurpose, code: string): Promise<string> {
  return hmacSha256Hex(secret, `${purpose}:${address}:${code}`);
}

/** Codes are often pasted with a space or dash in the middle ("123 456"). */
export function normalizeCode(code: string): string {
  return code.replace(/[\s-]/g, "");
}

/**
 * A fresh code for `sentTo`: its stored row (only the HMAC) and its mail. Nothing is written or
 * sent yet: the row goes to the store method that makes the change the code belongs to (so the
 * code exists only if that change happened), then `send()` enqueues the mail. A mail the queue
 * refuses is not promised as sent: the code is voided and the address's mail counters it used
 * are given back (so asking again works at once), and `send()` throws a 503. The same statements
 * run whether or not the code was stored, so that answer says nothing about the address.
 */
export async function newCode(
  deps: Pick<Deps, "config" | "clock" | "secrets" | "outbox" | "codes">,
  sentTo: string,
  purpose: OtpPurpose,
): Promise<{ row: NewCode; message: MailMessage; send: () => Promise<void> }> {
  const config = await deps.config();
  const now = deps.clock.now();
  const code = randomDigits(OTP_LENGTH);
  const row: NewCode = {
    id: randomId(),
    purpose,
    sentTo,
    codeHash: await hashCode(deps.secrets.otpSecret, sentTo, purpose, code),
    createdAt: now,
    expiresAt: now + config.otp_ttl * 1000,
  };
  const sealed = { to: sentTo, purpose, code_id: row.id };
  const message: MailMessage = {
    kind: "otp",
    ...sealed,
    sealed_code: await sealMailCode(deps.secrets.otpSecret, sealed, code),
    expires_at: new Date(row.expiresAt).toISOString(),
  };
  const send = async () => {
    try {
      await deps.outbox.send(message);
    } catch (error) {
      log("error", "mail.enqueue_failed", { mail: purpose, error: loggableError(error) });
      await deps.codes.unissue(row).catch((undo: unknown) => log("error", "otp.unissue_failed", { error: loggableError(undo) }));
      throw dependencyRefused("The code could not be sent. Ask for a new one in a moment.");
    }
  };
  return { row, message, send };
}

/** The one answer for every failed use of a code: nothing tells which part was wrong. */
export function invalidCode(): AppError {
  return new AppError("invalid_code", "The code is not valid for this email address. Request a new one if it has expired.");
}

/** Whose code it is: the account owning the address, or (email change) the signed-in account. */
export type CodeAccount = CodeOwner;

export interface CodeUse {
  address: string;
  purpose: OtpPurpose;
  code: string;
  account: CodeAccount;
}

/** The result of `checkCode`. On failure, `recordFailure` must be called with it. */
export type CodeCheck =
  | { ok: true; codeId: string; user: User | null }
  | { ok: false; use: CodeUse; reservedId: string | null; maxAttempts: number; failureCount: number | null; failureLimit: number };

/**
 * Checks a presented code. One batch, the same statements whether or not the address has an
 * account (`CodeStore.check`): the client's counter (429 past it, and nothing of the address is
 * spent), the account by address (skipped for an email change, whose account is the caller), this
 * code counted on the address's daily failure counter, and the reservation of one attempt on the
 * newest live code bound to this address, purpose and account.
 */
export async function checkCode(deps: Deps, use: CodeUse): Promise<CodeCheck> {
  const now = deps.clock.now();
  const config = await deps.config();
  const code = normalizeCode(use.code);
  const presented = await hashCode(deps.secrets.otpSecret, use.address, use.purpose, code);
  const failure = {
    ok: false as const,
    use,
    reservedId: null,
    maxAttempts: config.otp_max_attempts,
    failureCount: null,
    failureLimit: config.otp_max_failures_per_day,
  };
  // A code of the wrong shape is refused before any I/O, for every address alike.
  if (!CODE_PATTERN.test(code)) return failure;

  const { user, ip, failures, reserved } = await deps.codes.check({
    address: use.address,
    purpose: use.purpose,
    owner: use.account,
    ip: clientKey(deps.meta.ip),
    maxAttempts: config.otp_max_attempts,
    failureLimit: config.otp_max_failures_per_day,
    nowMs: now,
  });
  assertWithinLimit("codeChecksPerIp", ip, now);
  // Past the daily ceiling (this code counted) every code of the address is refused, the right one too.
  const lockedOut = failures !== undefined && failures.count > config.otp_max_failures_per_day;
  const matches = reserved !== undefined && timingSafeEqual(presented, reserved.codeHash);
  const accountOk = use.account.by === "user" || user?.isActive === true;
  if (matches && !lockedOut && accountOk && reserved) return { ok: true, codeId: reserved.id, user };
  return { ...failure, reservedId: reserved?.id ?? null, failureCount: failures?.count ?? null };
}

/**
 * Records a failed use, in one batch and with the same statements for every address: counts it
 * against the address's daily ceiling, kills the code when that was its last attempt, writes
 * `login_failed` for a sign-in and `otp_locked` when the ceiling is reached — the entries only
 * when the address has an account. Then throws `invalid_code`.
 */
export async function recordFailure(deps: Deps, check: Extract<CodeCheck, { ok: false }>): Promise<never> {
  const { use } = check;
  // A malformed code reserved nothing and counts nothing: it was never compared with a code.
  if (CODE_PATTERN.test(normalizeCode(use.code))) {
    await deps.codes.recordFailure({
      address: use.address,
      purpose: use.purpose,
      owner: use.account,
      reservedId: check.reservedId,
      maxAttempts: check.maxAttempts,
      failureCount: check.failureCount,
      failureLimit: check.failureLimit,
      nowMs: deps.clock.now(),
      meta: deps.meta,
    });
  }
  throw invalidCode();
}

/** Throws `invalid_code` when a spend found the code no longer live (nothing was written then). */
export function assertSpent(spent: boolean): void {
  if (!spent) throw invalidCode();
}
