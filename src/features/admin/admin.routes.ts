import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createRouter, jsonBody, jsonContent, problems } from "../../lib/openapi";
import { pageQuery } from "../../lib/pagination";
import { requireStaff, requireUser } from "../../middleware/auth";
import { listAudit } from "./admin.audit";
import { getConfig, patchConfig, resetConfigKey } from "./admin.config.service";
import {
  AdminUserDetailSchema,
  AdminUserSchema,
  AuditEntrySchema,
  ConfigResponseSchema,
  PatchConfigSchema,
  PatchUserSchema,
  UserIdParams,
} from "./admin.schemas";
import { adminLogoutAll, getUser, searchUsers, updateUserFlags } from "./admin.users.service";

const tags = ["admin"];
/** Every admin route: a valid access token (401 otherwise) of a staff account (403 otherwise). */
const staff = { security: bearerAuth, middleware: [requireUser(), requireStaff()] };

export const adminRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/config",
      tags,
      summary: "Every configuration key with its value in force",
      ...staff,
      responses: { 200: jsonContent(ConfigResponseSchema, "The configuration"), ...problems(401, 403) },
    }),
    async (c) => c.json({ config: await getConfig(c.var.deps) }, 200),
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/admin/config",
      tags,
      summary: "Change configuration keys",
      description: "Every value is validated first; one invalid value or unknown key rejects the request and nothing is written.",
      ...staff,
      request: { body: jsonBody(PatchConfigSchema) },
      responses: { 200: jsonContent(ConfigResponseSchema, "The new configuration"), ...problems(400, 401, 403, 413, 415, 503) },
    }),
    async (c) => c.json({ config: await patchConfig(c.var.deps, c.var.user, c.req.valid("json")) }, 200),
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/admin/config/{key}",
      tags,
      summary: "Reset a configuration key to its default",
      ...staff,
      request: { params: z.object({ key: z.string().max(100) }) },
      responses: { 200: jsonContent(ConfigResponseSchema, "The new configuration"), ...problems(400, 401, 403, 404) },
    }),
    async (c) => c.json({ config: await resetConfigKey(c.var.deps, c.var.user, c.req.valid("param").key) }, 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/audit",
      tags,
      summary: "The admin audit trail, newest first",
      ...staff,
      request: { query: z.object(pageQuery) },
      responses: {
        200: jsonContent(z.object({ items: z.array(AuditEntrySchema), next_cursor: z.string().nullable() }), "One page"),
        ...problems(400, 401, 403),
      },
    }),
    async (c) => c.json(await listAudit(c.var.deps, c.req.valid("query")), 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/users",
      tags,
      summary: "Search accounts by email or username prefix, newest first",
      ...staff,
      request: { query: z.object({ q: z.string().max(254).optional(), ...pageQuery }) },
      responses: {
        200: jsonContent(z.object({ items: z.array(AdminUserSchema), next_cursor: z.string().nullable() }), "One page"),
        ...problems(400, 401, 403),
      },
    }),
    async (c) => c.json(await searchUsers(c.var.deps, c.req.valid("query")), 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/users/{id}",
      tags,
      summary: "One account",
      ...staff,
      request: { params: UserIdParams },
      responses: { 200: jsonContent(AdminUserDetailSchema, "The account"), ...problems(400, 401, 403, 404) },
    }),
    async (c) => c.json(await getUser(c.var.deps, c.req.valid("param").id), 200),
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/admin/users/{id}",
      tags,
      summary: "Enable, disable, promote, demote, or mark an email verified",
      description:
        "Disabling, or marking the email unverified, revokes every refresh token and every access token issued so far. Staff cannot demote or disable themselves or mark their own address unverified (409 conflict), and no change may leave no active staff account (409 last_staff). A change is written only while the flags it changes still have the values read and the caller is still active staff (else 409 conflict, or 403), so a registrant confirming their own address meanwhile, or the caller's own demotion, wins over it.",
      ...staff,
      request: { params: UserIdParams, body: jsonBody(PatchUserSchema) },
      responses: { 200: jsonContent(AdminUserDetailSchema, "The updated account"), ...problems(400, 401, 403, 404, 409, 413, 415) },
    }),
    async (c) => c.json(await updateUserFlags(c.var.deps, c.var.user, c.req.valid("param").id, c.req.valid("json")), 200),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/users/{id}/logout-all",
      tags,
      summary: "End every session of an account",
      ...staff,
      request: { params: UserIdParams },
      responses: { 204: { description: "Signed out everywhere" }, ...problems(400, 401, 403, 404) },
    }),
    async (c) => {
      await adminLogoutAll(c.var.deps, c.var.user, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );
