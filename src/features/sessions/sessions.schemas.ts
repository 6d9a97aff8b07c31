/** Response shapes of the sessions API. */
import { z } from "@hono/zod-openapi";

export const SessionSchema = z
  .object({
    id: z.string(),
    created_at: z.string().openapi({ format: "date-time", description: "When the sign-in happened" }),
    last_used_at: z.string().openapi({ format: "date-time", description: "The latest login or token refresh" }),
    expires_at: z.string().openapi({
      format: "date-time",
      description:
        "When its current refresh token stops working unless used: its expiry, or earlier under idle or absolute lifetimes lowered since it was issued",
    }),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    current: z.boolean().openapi({ description: "The session this request's access token belongs to" }),
  })
  .openapi("Session");

export const SessionIdParams = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});

export const ExportedSessionSchema = SessionSchema.omit({ current: true })
  .extend({
    active: z.boolean(),
    revoked_at: z.string().nullable().openapi({ format: "date-time" }),
    revoked_reason: z.string().nullable().openapi({ example: "logout" }),
  })
  .openapi("ExportedSession");
