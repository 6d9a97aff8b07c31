import { createRoute, z } from "@hono/zod-openapi";
import { createRouter, jsonBody, jsonContent, problems } from "../../lib/openapi";
import { TokenResponseSchema, UserSchema } from "../auth/auth.schemas";
import { userView } from "../auth/auth.service";
import { OtpAcceptedSchema, OtpLoginSchema, OtpRequestSchema, PasswordResetSchema, VerifyEmailSchema } from "./otp.schemas";
import { loginWithCode, requestCode, resetPassword, verifyEmail } from "./otp-flows.service";

const tags = ["auth"];
/** Token responses must never be stored by a cache (RFC 6749 §5.1). */
const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" };
/** The one answer to every code request, so it cannot tell which addresses have accounts. */
const ACCEPTED = { detail: "If an account with this email address exists, a code is on its way." };
const CODE_RULES =
  "Any wrong, expired, used, superseded or unknown email/code combination answers the same 400 `invalid_code`. " +
  "A code works once, expires after KV `otp_ttl` seconds and dies after KV `otp_max_attempts` wrong guesses.";

export const otpRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/auth/otp",
      tags,
      summary: "Email a one-time code",
      description:
        "Issues a fresh code for `purpose` (the previous one stops working) and mails it. `202` with the same body " +
        "whether or not the account exists; at most one code per address and purpose per minute and five per address per hour " +
        "(beyond that, still `202` but no mail). Too many requests from one client IP answer `429` with `Retry-After`. " +
        "If the mail cannot be queued, `503` (for every address alike), and the code is void and asking again works at once.",
      request: { body: jsonBody(OtpRequestSchema) },
      responses: {
        202: jsonContent(OtpAcceptedSchema, "Accepted; a code is mailed if the account exists"),
        ...problems(400, 413, 415, 429),
      },
    }),
    async (c) => {
      await requestCode(c.var.deps, c.req.valid("json"));
      return c.json(ACCEPTED, 202);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/auth/verify-email",
      tags,
      summary: "Confirm the email address with a code",
      description:
        "Uses a `verify_email` code and the password chosen at registration (a wrong one: 401 `invalid_credentials`, " +
        "counted like a failed login, or 429 during a lockout; the code spends none of its tries). Someone who did not register the address confirms " +
        `it by signing in with a \`login\` code instead, which ends the password someone else chose. ${CODE_RULES}`,
      request: { body: jsonBody(VerifyEmailSchema) },
      responses: {
        200: jsonContent(z.object({ user: UserSchema }), "The account, now verified"),
        ...problems(400, 401, 413, 415, 429),
      },
    }),
    async (c) => {
      const user = await verifyEmail(c.var.deps, c.req.valid("json"));
      return c.json({ user: userView(user) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/auth/login/otp",
      tags,
      summary: "Sign in with an emailed code instead of a password",
      description: `Uses a \`login\` code; also marks the email verified. ${CODE_RULES}`,
      request: { body: jsonBody(OtpLoginSchema) },
      responses: {
        200: jsonContent(TokenResponseSchema, "A new token pair"),
        ...problems(400, 413, 415, 429),
      },
    }),
    async (c) => c.json(await loginWithCode(c.var.deps, c.req.valid("json")), 200, NO_STORE),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/auth/password/reset",
      tags,
      summary: "Set a new password with an emailed code",
      description:
        "Uses a `reset_password` code. The new password follows the registration policy; every session ends and the old " +
        `password stops working. ${CODE_RULES}`,
      request: { body: jsonBody(PasswordResetSchema) },
      responses: { 204: { description: "Password changed; every session ended" }, ...problems(400, 413, 415, 429) },
    }),
    async (c) => {
      await resetPassword(c.var.deps, c.req.valid("json"));
      return c.body(null, 204);
    },
  );
