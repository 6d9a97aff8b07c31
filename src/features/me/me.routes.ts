import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createRouter, jsonBody, jsonContent, problems } from "../../lib/openapi";
import { requireUser } from "../../middleware/auth";
import { EmailSchema, PasswordSchema, UsernameSchema, UserSchema } from "../auth/auth.schemas";
import { userView } from "../auth/auth.service";
import { ProfileSchema } from "../profiles/profiles.schemas";
import { loadOwnProfile, profileView } from "../profiles/profiles.service";
import { changePassword, deleteMe, updateMe } from "./me.service";

const tags = ["me"];
const auth = { security: bearerAuth, middleware: [requireUser()] };

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
  .strictObject({ current_password: PasswordSchema, new_password: PasswordSchema })
  .openapi("ChangePasswordRequest");
const DeleteMeSchema = z.strictObject({ current_password: PasswordSchema }).openapi("DeleteMeRequest");

const updateResponses = {
  200: jsonContent(z.object({ user: UserSchema }), "The updated account"),
  ...problems(400, 401, 409, 413, 415),
};

export const meRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/me",
      tags,
      summary: "The signed-in account",
      security: bearerAuth,
      middleware: [requireUser({ withProfile: true })],
      responses: { 200: jsonContent(UserSchema.extend({ profile: ProfileSchema }), "The account and its profile"), ...problems(401) },
    }),
    async (c) =>
      c.json({ ...userView(c.var.user), profile: profileView(c.var.profile ?? (await loadOwnProfile(c.var.deps, c.var.user.id))) }, 200),
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/me",
      tags,
      summary: "Replace email and username",
      ...auth,
      request: { body: jsonBody(PutMeSchema) },
      responses: updateResponses,
    }),
    async (c) => c.json({ user: userView(await updateMe(c.var.deps, c.var.user, c.req.valid("json"), "replace")) }, 200),
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/me",
      tags,
      summary: "Change email or username",
      ...auth,
      request: { body: jsonBody(PatchMeSchema) },
      responses: updateResponses,
    }),
    async (c) => c.json({ user: userView(await updateMe(c.var.deps, c.var.user, c.req.valid("json"), "patch")) }, 200),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/me/password",
      tags,
      summary: "Change password",
      description: "Revokes every other sign-in and every access token issued so far (refresh this session's token to continue).",
      ...auth,
      request: { body: jsonBody(ChangePasswordSchema) },
      responses: { 204: { description: "Changed" }, ...problems(400, 401, 413, 415) },
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
      ...auth,
      request: { body: jsonBody(DeleteMeSchema) },
      responses: { 204: { description: "Deleted" }, ...problems(400, 401, 413, 415) },
    }),
    async (c) => {
      await deleteMe(c.var.deps, c.var.user, c.req.valid("json").current_password);
      return c.body(null, 204);
    },
  );
