import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createdContent, createRouter, jsonBody, jsonContent, problems } from "../../lib/openapi";
import { API_BASE } from "../../lib/paths";
import { requireUser } from "../../middleware/auth";
import {
  CreateStatusSchema,
  ReplaceStatusSchema,
  StatusIdParams,
  StatusListQuery,
  StatusPageSchema,
  StatusSchema,
  UpdateStatusSchema,
} from "./statuses.schemas";
import { createStatus, deleteStatus, getStatus, listStatuses, updateStatus } from "./statuses.service";

const tags = ["statuses"];
const auth = { security: bearerAuth, middleware: [requireUser()] };

const StatusResponseSchema = z.object({ status: StatusSchema });
const single = (description: string) => jsonContent(StatusResponseSchema, description);
/** Where `GET /statuses/{id}` reads a status: the new status's `Location`. */
const statusPath = (id: string) => `${API_BASE}/statuses/${id}`;

export const statusesRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/statuses",
      tags,
      summary: "Publish a status",
      description: "At most 30 a minute per user (429 with Retry-After beyond).",
      ...auth,
      request: { body: jsonBody(CreateStatusSchema) },
      responses: {
        201: createdContent(StatusResponseSchema, "The new status", "The new status's URL, `/api/v1/statuses/{id}`"),
        ...problems(400, 401, 413, 415, 429),
      },
    }),
    async (c) => {
      const status = await createStatus(c.var.deps, c.var.user, c.req.valid("json").content);
      return c.json({ status }, 201, { Location: statusPath(status.id) });
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/statuses",
      tags,
      summary: "List statuses, newest first",
      description: "Public. Pass the previous page's `next_cursor` as `cursor` for the next page.",
      request: { query: StatusListQuery },
      responses: { 200: jsonContent(StatusPageSchema, "A page of statuses"), ...problems(400) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return c.json(await listStatuses(c.var.deps, { userId: q.user_id, limit: q.limit, cursor: q.cursor }), 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/statuses/{id}",
      tags,
      summary: "One status",
      request: { params: StatusIdParams },
      responses: { 200: single("The status"), ...problems(400, 404) },
    }),
    async (c) => c.json({ status: await getStatus(c.var.deps, c.req.valid("param").id) }, 200),
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/statuses/{id}",
      tags,
      summary: "Replace a status's content",
      description: "Author or staff only.",
      ...auth,
      request: { params: StatusIdParams, body: jsonBody(ReplaceStatusSchema) },
      responses: { 200: single("The updated status"), ...problems(400, 401, 403, 404, 413, 415) },
    }),
    async (c) => {
      const status = await updateStatus(c.var.deps, c.var.user, c.req.valid("param").id, c.req.valid("json").content);
      return c.json({ status }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/statuses/{id}",
      tags,
      summary: "Change a status's content",
      description: "Author or staff only.",
      ...auth,
      request: { params: StatusIdParams, body: jsonBody(UpdateStatusSchema) },
      responses: { 200: single("The updated status"), ...problems(400, 401, 403, 404, 413, 415) },
    }),
    async (c) => {
      const status = await updateStatus(c.var.deps, c.var.user, c.req.valid("param").id, c.req.valid("json").content);
      return c.json({ status }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/statuses/{id}",
      tags,
      summary: "Delete a status",
      description: "Author or staff only; recorded as `status_deleted` in the author's activity.",
      ...auth,
      request: { params: StatusIdParams },
      responses: { 204: { description: "Deleted" }, ...problems(400, 401, 403, 404) },
    }),
    async (c) => {
      await deleteStatus(c.var.deps, c.var.user, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );
