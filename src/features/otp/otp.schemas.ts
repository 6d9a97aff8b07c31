import { z } from "@hono/zod-openapi";
import { EmailSchema, PasswordSchema } from "../auth/auth.schemas";
import { OTP_LENGTH, REQUESTABLE_PURPOSES } from "./otp.purposes";

/**
 * Any short string: a code of the wrong shape is answered like a wrong code (400 invalid_code),
 * not with a validation error, so the response never says more than "that did not work".
 */
export const CodeSchema = z
  .string()
  .max(64)
  .openapi({ example: "123456", description: `The ${OTP_LENGTH}-digit code from the email` });

export const PurposeSchema = z.enum(REQUESTABLE_PURPOSES).openapi({ description: "What the code will be good for" });

/**
 * The code proves the mailbox, the password proves the registrant: someone may have registered an
 * address they do not own, and its owner, mailed the activation code, must not confirm a password
 * chosen by someone else (pre-registration hijacking). A mailbox owner who did not register signs
 * in with a `login` code instead, which ends that password.
 */
export const VerifyEmailSchema = z
  .strictObject({
    email: EmailSchema,
    code: CodeSchema,
    password: PasswordSchema.openapi({ description: "The password chosen at registration" }),
  })
  .openapi("VerifyEmailRequest");

export const OtpRequestSchema = z.strictObject({ email: EmailSchema, purpose: PurposeSchema }).openapi("OtpRequest");

export const OtpAcceptedSchema = z
  .object({ detail: z.string() })
  .openapi("OtpAccepted", { description: "The same answer whether or not the account exists" });

export const OtpLoginSchema = z.strictObject({ email: EmailSchema, code: CodeSchema }).openapi("OtpLoginRequest");

export const PasswordResetSchema = z
  .strictObject({ email: EmailSchema, code: CodeSchema, new_password: PasswordSchema })
  .openapi("PasswordResetRequest");
