import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createRouter, jsonContent, problems } from "../../lib/openapi";
import { requireUser } from "../../middleware/auth";
import { SessionIdParams, SessionSchema } from "./sessions.schemas";
import { listSessions, revokeSession } from "./sessions.service";

const tags = ["me"];
const auth = { security: bearerAuth, middleware: [requireUser()] };

export const sessionsRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/me/sessions",
      tags,
      summary: "Your active sign-ins",
      description: "One per login (refresh-token family) that still has a live refresh token, most recently used first.",
      ...auth,
      responses: { 200: jsonContent(z.object({ items: z.array(SessionSchema) }), "The active sessions"), ...problems(401) },
    }),
    async (c) => c.json({ items: await listSessions(c.var.deps, c.var.user.id, c.var.token.sessionId) }, 200),
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/me/sessions/{id}",
      tags,
      summary: "Sign out one session",
      description:
        "Revokes the session's refresh tokens (recorded as `session_revoked`). Its access tokens stop working at once: every request checks that its session is still live.",
      ...auth,
      request: { params: SessionIdParams },
      responses: { 204: { description: "Revoked" }, ...problems(400, 401, 404) },
    }),
    async (c) => {
      await revokeSession(c.var.deps, c.var.user.id, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );
