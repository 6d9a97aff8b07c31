import { createRoute, z } from "@hono/zod-openapi";
import type { Deps } from "../../deps";
import { bearerAuth, createRouter, jsonBody, jsonContent, problems } from "../../lib/openapi";
import { requireUser } from "../../middleware/auth";
import type { Profile, User } from "../../store";
import { EmailSchema, PasswordSchema, UsernameSchema, UserSchema } from "../auth/auth.schemas";
import { CodeSchema } from "../otp/otp.schemas";
import { ProfileSchema } from "../profiles/profiles.schemas";
import { loadOwnProfile } from "../profiles/profiles.service";
import { changePassword, confirmEmailChange, deleteMe, meView, updateMe } from "./me.service";

const tags = ["me"];
const auth = { security: bearerAuth, middleware: [requireUser()] };
/** Routes that answer with the account: the profile comes in requireUser's one query. */
const authWithProfile = { security: bearerAuth, middleware: [requireUser({ withProfile: true })] };

/** The account as its owner sees it; every /me route that returns the account uses this envelope. */
const MeSchema = UserSchema.extend({
  pending_email: z.string().nullable().openapi({ description: "An address waiting for its change_email code; null when none" }),
  has_password: z
    .boolean()
    .openapi({ description: "False when the account signs in by emailed code only (set one with POST /me/password)" }),
  profile: ProfileSchema,
}).openapi("Me");
const MeResponseSchema = z.object({ user: MeSchema }).openapi("MeResponse");

async function meBody(deps: Deps, user: User, profile: Profile | null) {
  return { user: meView(user, profile ?? (await loadOwnProfile(deps, user.id))) };
}

// Strict objects: `id`, `is_staff`, `is_active`, `password`, timestamps … are refused with 400,
// never silently dropped or applied (mass assignment).
const PutMeSchema = z
  .strictObject({
    email: EmailSchema,
    username: UsernameSchema.nullable().optional(),
    current_password: PasswordSchema.optional().openapi({ description: "Required when the email changes" }),
  })
  .openapi("ReplaceMeRequest");
const PatchMeSchema = z
  .strictObject({
    email: EmailSchema.optional(),
    username: UsernameSchema.nullable().optional(),
    current_password: PasswordSchema.optional().openapi({ description: "Required when the email changes" }),
  })
  .openapi("UpdateMeRequest");
const ChangePasswordSchema = z
  .strictObject({
    current_password: PasswordSchema.optional().openapi({
      description: "The current password; or give `code` instead. An account without a password yet (has_password: false) gives `code`.",
    }),
    new_password: PasswordSchema,
    code: CodeSchema.optional().openapi({
      description:
        "A `reset_password` code mailed to the account's address (POST /auth/otp), instead of `current_password`. Required when has_password is false: a bearer token alone never sets a password.",
    }),
  })
  .openapi("ChangePasswordRequest");
const ConfirmEmailSchema = z.strictObject({ code: CodeSchema }).openapi("ConfirmEmailChangeRequest");
const DeleteMeSchema = z.strictObject({ current_password: PasswordSchema }).openapi("DeleteMeRequest");

const updateResponses = {
  200: jsonContent(MeResponseSchema, "The updated account"),
  ...problems(400, 401, 409, 413, 415, 429),
};
const EMAIL_CHANGE =
  "A new `email` needs `current_password` and stays `pending_email` until the code mailed to it is given to " +
  "`POST /me/email/verify`; a notice goes to the current address. Giving the current address again cancels a pending change. " +
  "`409 conflict` when the password changed or the account's sign-ins ended while the request ran: nothing was changed.";

export const meRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/me",
      tags,
      summary: "The signed-in account",
      ...authWithProfile,
      responses: { 200: jsonContent(MeResponseSchema, "The account and its profile"), ...problems(401) },
    }),
    async (c) => c.json(await meBody(c.var.deps, c.var.user, c.var.profile), 200),
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/me",
      tags,
      summary: "Replace email and username",
      description: EMAIL_CHANGE,
      ...authWithProfile,
      request: { body: jsonBody(PutMeSchema) },
      responses: updateResponses,
    }),
    async (c) =>
      c.json(await meBody(c.var.deps, await updateMe(c.var.deps, c.var.user, c.req.valid("json"), "replace"), c.var.profile), 200),
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/me",
      tags,
      summary: "Change email or username",
      description: EMAIL_CHANGE,
      ...authWithProfile,
      request: { body: jsonBody(PatchMeSchema) },
      responses: updateResponses,
    }),
    async (c) => c.json(await meBody(c.var.deps, await updateMe(c.var.deps, c.var.user, c.req.valid("json"), "patch"), c.var.profile), 200),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/me/email/verify",
      tags,
      summary: "Complete a pending email change with the code mailed to the new address",
      description:
        "The pending address becomes the account's verified email, every outstanding code is voided and every other sign-in ends. " +
        "A wrong, expired or used code answers `400 invalid_code`; an address another account took in the meantime `409 email_taken`.",
      ...authWithProfile,
      request: { body: jsonBody(ConfirmEmailSchema) },
      responses: { 200: jsonContent(MeResponseSchema, "The account with its new address"), ...problems(400, 401, 409, 413, 415, 429) },
    }),
    async (c) => {
      const user = await confirmEmailChange(c.var.deps, c.var.user, c.var.token.sessionId, c.req.valid("json").code);
      return c.json(await meBody(c.var.deps, user, c.var.profile), 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/me/password",
      tags,
      summary: "Change password",
      description:
        "Proven with `current_password` or with a `reset_password` code mailed to the account's address (`code`; the only way for an account without a password). " +
        "Revokes every other sign-in and every access token issued so far (refresh this session's token to continue). " +
        "`409 conflict` when the password changed or the account's sign-ins ended while the request ran: nothing was changed.",
      ...auth,
      request: { body: jsonBody(ChangePasswordSchema) },
      responses: { 204: { description: "Changed" }, ...problems(400, 401, 409, 413, 415, 429) },
    }),
    async (c) => {
      await changePassword(c.var.deps, c.var.user, c.var.token.sessionId, c.req.valid("json"));
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/me",
      tags,
      summary: "Delete the account and everything it owns",
      description:
        "`409 conflict` when the password changed or the account's sign-ins ended while the request ran, `409 last_staff` when it is the only active staff account (make another account staff first): nothing was deleted.",
      ...auth,
      request: { body: jsonBody(DeleteMeSchema) },
      responses: { 204: { description: "Deleted" }, ...problems(400, 401, 409, 413, 415, 429) },
    }),
    async (c) => {
      await deleteMe(c.var.deps, c.var.user, c.req.valid("json").current_password);
      return c.body(null, 204);
    },
  );
