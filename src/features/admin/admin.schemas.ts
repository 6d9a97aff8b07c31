/** Request and response shapes of the admin API; the services' view types are derived from them. */
import { z } from "@hono/zod-openapi";
import { CONFIG_KEY_NAMES, CONFIG_KEYS, type ConfigKey } from "../../config/config.definitions";
import { UserSchema } from "../auth/auth.schemas";

export const ConfigEntrySchema = z
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
export const ConfigResponseSchema = z.object({ config: z.array(ConfigEntrySchema) }).openapi("ConfigResponse");

// Values are validated by parseConfigValue (the worker's own parser), not here, so the API and
// the worker can never disagree on what is valid. Strict: an unknown key is a 400.
export const PatchConfigSchema = z
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

export const AdminUserSchema = UserSchema.extend({
  updated_at: z.string().openapi({ format: "date-time" }),
  tokens_valid_after: z.string().nullable().openapi({ format: "date-time" }),
}).openapi("AdminUser");
export const AdminUserDetailSchema = AdminUserSchema.extend({ active_sessions: z.number().int() }).openapi("AdminUserDetail");

export const UserIdParams = z.object({ id: z.string().min(1).max(64) });

export const AuditEntrySchema = z
  .object({
    id: z.string(),
    actor_id: z
      .string()
      .nullable()
      .openapi({ description: "The staff member's id; null for the operator's CLI, or once their account is deleted" }),
    actor_email: z.string().nullable().openapi({
      description: "The staff member's address now, or, once their account is deleted, the one they had then; null for the operator's CLI",
    }),
    created_at: z.string().openapi({ format: "date-time" }),
    action: z.string().openapi({ example: "config.set" }),
    target: z.string().openapi({ description: "The config key, the user id, or the status id" }),
    old_value: z.string().nullable(),
    new_value: z.string().nullable(),
  })
  .openapi("AuditEntry");

export const PatchUserSchema = z
  .strictObject({ is_active: z.boolean().optional(), is_staff: z.boolean().optional(), email_verified: z.boolean().optional() })
  .openapi("AdminUpdateUserRequest");

export type ConfigEntryView = z.infer<typeof ConfigEntrySchema>;
export type AdminUserView = z.infer<typeof AdminUserSchema>;
export type AuditEntryView = z.infer<typeof AuditEntrySchema>;
export type UserFlagsPatch = z.infer<typeof PatchUserSchema>;
