import { createRoute, z } from "@hono/zod-openapi";
import { CONFIG_KEY_NAMES, CONFIG_KEYS, type ConfigKey } from "../../config/config.definitions";
import { bearerAuth, createRouter, jsonBody, jsonContent, problems } from "../../lib/openapi";
import { pageQuery } from "../../lib/pagination";
import { requireStaff, requireUser } from "../../middleware/auth";
import { UserSchema } from "../auth/auth.schemas";
import { listAudit } from "./admin.audit";
import { getConfig, patchConfig, resetConfigKey } from "./admin.config.service";
import { adminLogoutAll, getUser, searchUsers, updateUserFlags } from "./admin.users.service";

const tags = ["admin"];
/** Every admin route: a valid access token (401 otherwise) of a staff account (403 otherwise). */
const staff = { security: bearerAuth, middleware: [requireUser(), requireStaff()] };

const ConfigEntrySchema = z
  .object({
    key: z.enum(CONFIG_KEY_NAMES as [ConfigKey, ...ConfigKey[]]),
    value: z.union([z.number(), z.boolean()]).openapi({ description: "The value in force" }),
    default: z.union([z.number(), z.boolean()]),
    source: z.enum(["kv", "default"]),
    valid: z.boolean().openapi({ description: "False when KV holds a value the worker ignores (the default is in force)" }),
    stored: z.string().nullable().openapi({ description: "The raw KV value, or null when the key is not set" }),
    min: z.number().nullable(),
    max: z.number().nullable(),
    description: z.string(),
  })
  .openapi("ConfigEntry");
const ConfigResponseSchema = z.object({ config: z.array(ConfigEntrySchema) }).openapi("ConfigResponse");

// Values are validated by parseConfigValue (the worker's own parser), not here, so the API and
// the worker can never disagree on what is valid. Strict: an unknown key is a 400.
const PatchConfigSchema = z
  .strictObject(
    Object.fromEntries(
      CONFIG_KEY_NAMES.map((key) => {
        const def = CONFIG_KEYS[key];
        const bounds = "min" in def ? ` (${def.min}–${def.max})` : "";
        return [
          key,
          z
            .union([z.number(), z.boolean(), z.string()])
            .optional()
            .openapi({ description: `${def.description}${bounds}` }),
        ];
      }),
    ) as Record<ConfigKey, z.ZodOptional<z.ZodUnion<[z.ZodNumber, z.ZodBoolean, z.ZodString]>>>,
  )
  .openapi("PatchConfigRequest");

const AdminUserSchema = UserSchema.extend({
  updated_at: z.string().openapi({ format: "date-time" }),
  tokens_valid_after: z.string().nullable().openapi({ format: "date-time" }),
}).openapi("AdminUser");
const AdminUserDetailSchema = AdminUserSchema.extend({ active_sessions: z.number().int() }).openapi("AdminUserDetail");

const UserIdParams = z.object({ id: z.string().min(1).max(64) });

const AuditEntrySchema = z
  .object({
    id: z.string(),
    actor_id: z.string().nullable(),
    actor_email: z.string().nullable(),
    created_at: z.string().openapi({ format: "date-time" }),
    action: z.string().openapi({ example: "config.set" }),
    target: z.string().openapi({ description: "The config key or the user id" }),
    old_value: z.string().nullable(),
    new_value: z.string().nullable(),
  })
  .openapi("AuditEntry");

const PatchUserSchema = z
  .strictObject({ is_active: z.boolean().optional(), is_staff: z.boolean().optional(), email_verified: z.boolean().optional() })
  .openapi("AdminUpdateUserRequest");

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
      responses: { 200: jsonContent(ConfigResponseSchema, "The new configuration"), ...problems(401, 403, 404) },
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
      responses: { 200: jsonContent(AdminUserDetailSchema, "The account"), ...problems(401, 403, 404) },
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
        "Disabling revokes every refresh token and every access token issued so far. Staff cannot demote or disable themselves (409).",
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
      responses: { 204: { description: "Signed out everywhere" }, ...problems(401, 403, 404) },
    }),
    async (c) => {
      await adminLogoutAll(c.var.deps, c.var.user, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );
