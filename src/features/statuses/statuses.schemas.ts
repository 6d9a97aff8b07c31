/** Request and response shapes of the statuses API. */
import { z } from "@hono/zod-openapi";
import { pageQuery } from "../../lib/pagination";
import { cleanText, stackedMarksProblem } from "../../lib/text";

export const STATUS_MAX_LENGTH = 500;
/** Bounds the work done on a raw value before it is normalised and trimmed. */
const STATUS_RAW_MAX_LENGTH = 4 * STATUS_MAX_LENGTH;

/**
 * 1–500 characters (code points) after NFC and trimming; control characters other than \n and \t
 * refused, and so is a character carrying more marks than prose may (MAX_STACKED_MARKS).
 */
const ContentSchema = z
  .string()
  .max(STATUS_RAW_MAX_LENGTH, { message: `must be at most ${STATUS_MAX_LENGTH} characters` })
  .transform((value, ctx) => {
    const text = cleanText(value);
    const length = text === null ? 0 : [...text].length;
    let message: string | null = null;
    if (text === null) message = "must not contain control characters";
    else if (length === 0) message = "must not be empty";
    else if (length > STATUS_MAX_LENGTH) message = `must be at most ${STATUS_MAX_LENGTH} characters`;
    else message = stackedMarksProblem(text, "prose");
    if (message !== null || text === null) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: message ?? "is not valid" });
      return z.NEVER;
    }
    return text;
  })
  .openapi({ type: "string", minLength: 1, maxLength: STATUS_MAX_LENGTH, example: "Shipping the analytical engine today." });

export const StatusSchema = z
  .object({
    id: z.string(),
    user_id: z.string(),
    username: z.string().nullable(),
    content: z.string(),
    created_at: z.string().openapi({ format: "date-time" }),
    updated_at: z.string().openapi({ format: "date-time" }),
  })
  .openapi("Status");

export const StatusPageSchema = z
  .object({ items: z.array(StatusSchema), next_cursor: z.string().nullable() })
  .openapi("StatusPage", { description: "`next_cursor` is null on the last page" });

// Strict: `user_id`, `id` and timestamps in a body are refused (the author cannot be changed).
export const CreateStatusSchema = z.strictObject({ content: ContentSchema }).openapi("CreateStatusRequest");
export const ReplaceStatusSchema = z.strictObject({ content: ContentSchema }).openapi("ReplaceStatusRequest");
export const UpdateStatusSchema = z.strictObject({ content: ContentSchema.optional() }).openapi("UpdateStatusRequest");

export const StatusIdParams = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});
export const StatusListQuery = z.object({
  user_id: z.string().min(1).max(64).optional().openapi({ description: "Only this author's statuses" }),
  ...pageQuery,
});
