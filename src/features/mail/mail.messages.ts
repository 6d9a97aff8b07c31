/**
 * What the `latchkey-mail` queue carries: one schema for the producers (code and notice mails)
 * and the consumer, so the two cannot drift apart. Anything else on the queue is malformed.
 */
import { z } from "zod";
import { CODE_PATTERN, OTP_PURPOSES } from "../otp/otp.purposes";

const Address = z.string().email().max(254);

/** A one-time code's mail. The consumer sends it only while the code `code_id` is still live. */
export const OtpMailSchema = z.object({
  kind: z.literal("otp"),
  to: Address,
  purpose: z.enum(OTP_PURPOSES),
  code: z.string().regex(CODE_PATTERN),
  code_id: z.string().min(1).max(64),
  expires_at: z.string().datetime(),
});

/** Security notices that carry no code: they tell an address's owner what happened to their account. */
export const NOTICES = ["email_change_requested", "email_changed"] as const;
export type Notice = (typeof NOTICES)[number];

export const NoticeMailSchema = z.object({
  kind: z.literal("notice"),
  notice: z.enum(NOTICES),
  to: Address,
  /** The address the account is moving (or has moved) to. */
  new_email: Address,
  /** Stable per notice: the provider's idempotency key. */
  notice_id: z.string().min(1).max(64),
});

export const MailMessageSchema = z.discriminatedUnion("kind", [OtpMailSchema, NoticeMailSchema]);
export type MailMessage = z.infer<typeof MailMessageSchema>;
export type OtpMail = z.infer<typeof OtpMailSchema>;
export type NoticeMail = z.infer<typeof NoticeMailSchema>;
