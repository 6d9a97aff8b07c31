import { z } from "@hono/zod-openapi";
import { normalizeIdentifier } from "../../lib/text";
import { PASSWORD_MAX_LENGTH } from "./password-policy";

/** Canonical email: NFKC, trimmed, lower-cased, then checked. Long input is refused unparsed. */
export const EmailSchema = z
  .string()
  .max(320)
  .transform(normalizeIdentifier)
  .pipe(z.string().email({ message: "must be a valid email address" }).max(254))
  .openapi({ type: "string", format: "email", example: "ada@example.com" });

export const USERNAME_PATTERN = /^[a-z0-9_.-]{3,30}$/;
export const UsernameSchema = z
  .string()
  .max(120)
  .transform(normalizeIdentifier)
  .pipe(z.string().regex(USERNAME_PATTERN, { message: "must be 3–30 letters, digits, '_', '.' or '-'" }))
  .openapi({
    type: "string",
    example: "ada",
    description:
      "3–30 of a-z 0-9 _ . - (compared case-insensitively); a new name starts and ends with a letter or digit and is not reserved (admin, support, …)",
  });

export const PasswordSchema = z
  .string()
  .min(1, { message: "is required" })
  .max(PASSWORD_MAX_LENGTH, { message: `must be at most ${PASSWORD_MAX_LENGTH} characters` })
  .openapi({ format: "password", example: "correct horse battery staple" });

/** 256 random bits, base64url without padding. Anything else is malformed (400), not just wrong (401). */
export const RefreshTokenSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43}$/, { message: "is not a refresh token" })
  .openapi({ example: "q3sD5mQm8m9S1bB2l0xJ6Hk2vF6o7u2e0Jmx8x0hY6c" });

export const UserSchema = z
  .object({
    id: z.string(),
    email: z.string(),
    username: z.string().nullable(),
    is_active: z.boolean(),
    is_staff: z.boolean(),
    email_verified: z.boolean(),
    created_at: z.string().openapi({ format: "date-time" }),
  })
  .openapi("User");

export const TokenResponseSchema = z
  .object({
    access_token: z.string(),
    token_type: z.literal("Bearer"),
    expires_in: z.number().int().openapi({ description: "Access-token lifetime in seconds (KV access_token_ttl)" }),
    refresh_token: z.string(),
    refresh_expires_in: z.number().int().openapi({ description: "Refresh-token lifetime in seconds (KV refresh_token_ttl)" }),
  })
  .openapi("TokenResponse");

export const RegisterSchema = z
  .strictObject({
    email: EmailSchema,
    password: PasswordSchema,
    password_confirm: PasswordSchema.optional(),
    username: UsernameSchema.optional(),
  })
  .openapi("RegisterRequest");

export const LoginSchema = z
  .strictObject({
    email: EmailSchema.optional(),
    username: UsernameSchema.optional(),
    password: PasswordSchema,
  })
  .refine((body) => (body.email === undefined) !== (body.username === undefined), {
    message: "give either email or username",
    path: ["email"],
  })
  .openapi("LoginRequest");

export const RefreshSchema = z.strictObject({ refresh_token: RefreshTokenSchema }).openapi("RefreshRequest");
