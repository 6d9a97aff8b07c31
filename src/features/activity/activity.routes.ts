import { createRoute } from "@hono/zod-openapi";
import { bearerAuth, createRouter, jsonContent, problems } from "../../lib/openapi";
import { requireUser } from "../../middleware/auth";
import { ActivityPageSchema, ActivityQuery } from "./activity.schemas";
import { listActivity } from "./activity.service";

export const activityRoutes = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/me/activity",
    tags: ["me"],
    summary: "Your account history, newest first",
    description:
      "Sign-ins, sign-outs and account changes with time, IP and user agent. Entries older than KV `activity_retention_days` are deleted daily.",
    security: bearerAuth,
    middleware: [requireUser()],
    request: { query: ActivityQuery },
    responses: { 200: jsonContent(ActivityPageSchema, "A page of entries"), ...problems(400, 401) },
  }),
  async (c) => {
    const q = c.req.valid("query");
    return c.json(await listActivity(c.var.deps, c.var.user.id, { type: q.type, limit: q.limit, cursor: q.cursor }), 200);
  },
);
