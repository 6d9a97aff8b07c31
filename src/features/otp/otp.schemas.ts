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

export const VerifyEmailSchema = z.strictObject({ email: EmailSchema, code: CodeSchema }).openapi("VerifyEmailRequest");

export const OtpRequestSchema = z.strictObject({ email: EmailSchema, purpose: PurposeSchema }).openapi("OtpRequest");

export const OtpAcceptedSchema = z
  .object({ detail: z.string() })
  .openapi("OtpAccepted", { description: "The same answer whether or not the account exists" });

export const OtpLoginSchema = z.strictObject({ email: EmailSchema, code: CodeSchema }).openapi("OtpLoginRequest");

export const PasswordResetSchema = z
  .strictObject({ email: EmailSchema, code: CodeSchema, new_password: PasswordSchema })
  .openapi("PasswordResetRequest");
