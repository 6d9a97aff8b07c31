import { createRoute, z } from "@hono/zod-openapi";
import { jsonStreamResponse } from "../../lib/json-stream";
import { bearerAuth, createRouter, jsonContent, problems } from "../../lib/openapi";
import { requireUser } from "../../middleware/auth";
import { logUnexpectedError } from "../../middleware/request-log";
import { ActivityEntrySchema } from "../activity/activity.schemas";
import { UserSchema } from "../auth/auth.schemas";
import { ProfileSchema } from "../profiles/profiles.schemas";
import { ExportedSessionSchema } from "../sessions/sessions.schemas";
import { StatusSchema } from "../statuses/statuses.schemas";
import { EXPORT_DOWNLOAD_HEADERS, exportUserData } from "./export.service";

const ExportedProfileSchema = ProfileSchema.extend({ avatar_content_type: z.string().nullable() }).openapi("ExportedProfile");

const ExportSchema = z
  .object({
    format_version: z.number().int(),
    exported_at: z.string().openapi({ format: "date-time" }),
    account: UserSchema.extend({
      pending_email: z.string().nullable().openapi({ description: "The address a pending email change moves the account to" }),
    }),
    profile: ExportedProfileSchema.nullable(),
    statuses: z.array(StatusSchema),
    activity: z.array(ActivityEntrySchema),
    sessions: z.array(ExportedSessionSchema),
  })
  .openapi("DataExport");

export const exportRoutes = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/me/export",
    tags: ["me"],
    summary: "Download everything stored about you",
    description:
      "Account, profile, statuses, the whole activity history and every stored sign-in (ended ones too), as one JSON attachment. Never contains password, token or code hashes.",
    security: bearerAuth,
    middleware: [requireUser()],
    responses: { 200: jsonContent(ExportSchema, "The export (Content-Disposition: attachment)"), ...problems(401) },
  }),
  async (c) => {
    const body = await exportUserData(c.var.deps, c.var.user, (error) => logUnexpectedError(c, error));
    return jsonStreamResponse(c, body, EXPORT_DOWNLOAD_HEADERS);
  },
);
