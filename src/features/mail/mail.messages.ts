/**
 * What the `latchkey-mail` queue carries: one schema for the producers (code and notice mails)
 * and the consumer, so the two cannot drift apart. Anything else on the queue is malformed.
 *
 * A code never rests in the queue readable: a message waits there for seconds, and after failed
 * deliveries for days in the dead-letter queue, where anyone with access to the account's queues
 * could read it. The message carries the code sealed (AES-256-GCM under a key derived from
 * OTP_SECRET for this use alone), bound to its code id, address and purpose, so a sealed code
 * copied into another message does not open.
 */
import { z } from "zod";
import { seal, unseal } from "../../lib/crypto";
import { CODE_PATTERN, OTP_PURPOSES, type OtpPurpose } from "../otp/otp.purposes";

const Address = z.string().email().max(254);

/** A one-time code's mail. The consumer sends it only while the code `code_id` is still live. */
export const OtpMailSchema = z.object({
  kind: z.literal("otp"),
  to: Address,
  purpose: z.enum(OTP_PURPOSES),
  /** The code, sealed by `sealMailCode`. */
  sealed_code: z.string().min(1).max(128),
  code_id: z.string().min(1).max(64),
  expires_at: z.string().datetime(),
});

/** Security notices that carry no code: they tell an address's owner what happened to their account. */
export const NOTICES = ["email_change_requested", "email_changed", "account_deleted"] as const;
export type Notice = (typeof NOTICES)[number];
/** The notices about a move to another address, which name it (`new_email`). */
const ABOUT_A_MOVE: readonly Notice[] = ["email_change_requested", "email_changed"];

export const NoticeMailSchema = z.object({
  kind: z.literal("notice"),
  notice: z.enum(NOTICES),
  to: Address,
  /** The address the account is moving (or has moved) to: given exactly for the notices about a move. */
  new_email: Address.optional(),
  /** Stable per notice: the provider's idempotency key. */
  notice_id: z.string().min(1).max(64),
});

export const MailMessageSchema = z
  .discriminatedUnion("kind", [OtpMailSchema, NoticeMailSchema])
  .refine((mail) => mail.kind !== "notice" || (mail.new_email !== undefined) === ABOUT_A_MOVE.includes(mail.notice), {
    path: ["new_email"],
    message: "is given exactly for the notices about a move to another address",
  });
export type MailMessage = z.infer<typeof MailMessageSchema>;
export type OtpMail = z.infer<typeof OtpMailSchema>;
export type NoticeMail = z.infer<typeof NoticeMailSchema>;

const MAIL_CODE_LABEL = "mail-code:v1";
type CodeMailFields = { to: string; purpose: OtpPurpose; code_id: string };
const codeContext = (mail: CodeMailFields) => `${mail.code_id}\n${mail.purpose}\n${mail.to}`;

/** The code as a code mail carries it (`sealed_code`). */
export function sealMailCode(otpSecret: string, mail: CodeMailFields, code: string): Promise<string> {
  return seal(otpSecret, MAIL_CODE_LABEL, codeContext(mail), code);
}

/** The code a code mail carries; null when it was not sealed for this message under this secret. */
export async function openMailCode(otpSecret: string, mail: OtpMail): Promise<string | null> {
  const plain = await unseal(otpSecret, MAIL_CODE_LABEL, codeContext(mail), mail.sealed_code);
  const code = plain && new TextDecoder().decode(plain);
  return code && CODE_PATTERN.test(code) ? code : null;
}
