/** Response and query shapes of the activity center. */
import { z } from "@hono/zod-openapi";
import { pageQuery } from "../../lib/pagination";
import { ACTIVITY_TYPES } from "./activity.record";

export const ActivityEntrySchema = z
  .object({
    id: z.string(),
    type: z.string().openapi({ example: "login" }),
    created_at: z.string().openapi({ format: "date-time" }),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    details: z.record(z.unknown()).openapi({ description: 'A small object, e.g. {method: "password"}; never secrets' }),
  })
  .openapi("ActivityEntry");

export const ActivityPageSchema = z
  .object({ items: z.array(ActivityEntrySchema), next_cursor: z.string().nullable() })
  .openapi("ActivityPage", { description: "`next_cursor` is null on the last page" });

export const ActivityQuery = z.object({
  type: z
    .enum(ACTIVITY_TYPES, { message: `must be one of ${ACTIVITY_TYPES.join(", ")}` })
    .optional()
    .openapi({ description: "Only entries of this type" }),
  ...pageQuery,
});
