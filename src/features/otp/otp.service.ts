/**
 * One-time codes sent by email: account activation, passwordless login, password reset.
 * A code is 6 uniform digits; the database keeps only HMAC-SHA256(OTP_SECRET, user:purpose:code),
 * so a database leak does not reveal live codes and a hash is useless for another user or purpose.
 * Issuing a code supersedes the previous one of the same purpose.
 */
import { and, eq, isNull } from "drizzle-orm";
import type { Db, Query } from "../../db/client";
import { otpCodes, type User } from "../../db/schema";
import type { Deps } from "../../env";
import { hmacSha256Hex, randomDigits, randomId } from "../../lib/crypto";

export const OTP_PURPOSES = ["verify_email", "login", "reset_password"] as const;
export type OtpPurpose = (typeof OTP_PURPOSES)[number];
export const OTP_LENGTH = 6;

/** What the mail queue carries: everything the mail needs, and the id to check the code is still live. */
export interface MailMessage {
  kind: "otp";
  to: string;
  purpose: OtpPurpose;
  code: string;
  code_id: string;
  expires_at: string;
}

export function hashCode(secret: string, userId: string, purpose: OtpPurpose, code: string): Promise<string> {
  return hmacSha256Hex(secret, `${userId}:${purpose}:${code}`);
}

/** Marks every live code of this user and purpose as used up (a newer code replaces them). */
export function supersedeCodes(db: Db, userId: string, purpose: OtpPurpose, nowMs: number) {
  return db
    .update(otpCodes)
    .set({ consumedAt: nowMs })
    .where(and(eq(otpCodes.userId, userId), eq(otpCodes.purpose, purpose), isNull(otpCodes.consumedAt)));
}

/**
 * Makes a fresh code for `user`. Nothing is written or sent yet: `queries` go into the caller's
 * batch (so the code exists only if the change it belongs to happened), then `send()` enqueues
 * the mail. A failed enqueue is logged, not thrown: the stored state is consistent and the user
 * can ask for a new code.
 */
export async function prepareCode(
  deps: Deps,
  user: Pick<User, "id" | "email">,
  purpose: OtpPurpose,
): Promise<{ queries: Query[]; send: () => Promise<void> }> {
  const { db, clock, env } = deps;
  const config = await deps.config();
  const now = clock.now();
  const code = randomDigits(OTP_LENGTH);
  const row = {
    id: randomId(),
    userId: user.id,
    purpose,
    codeHash: await hashCode(env.OTP_SECRET, user.id, purpose, code),
    createdAt: now,
    expiresAt: now + config.otp_ttl * 1000,
    attempts: 0,
  };
  const message: MailMessage = {
    kind: "otp",
    to: user.email,
    purpose,
    code,
    code_id: row.id,
    expires_at: new Date(row.expiresAt).toISOString(),
  };
  return {
    queries: [supersedeCodes(db, user.id, purpose, now), db.insert(otpCodes).values(row)],
    send: async () => {
      try {
        await env.MAIL_QUEUE.send(message, { contentType: "json" });
      } catch (error) {
        console.error(`[otp] could not enqueue ${purpose} mail for user ${user.id}`, error);
      }
    },
  };
}
