/**
 * Shared pieces for declaring routes with @hono/zod-openapi: one router factory whose validation
 * hook turns zod issues into the app's 400 problem document, and response helpers so every route
 * documents its error shapes (the OpenAPI document and the typed client both see them).
 */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../env";
import { AppError, ERRORS, type FieldError } from "./errors";

export const ProblemSchema = z
  .object({
    type: z.string().openapi({
      description:
        "`/problems/{code with dashes}`, e.g. `/problems/rate-limited`: a relative reference that, resolved against the request's URL (RFC 9457 §3.1.1), leads to this deployment's page on the code — what it means and what a client should do.",
    }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(Object.keys(ERRORS) as [keyof typeof ERRORS, ...(keyof typeof ERRORS)[]]),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    /** The request's id, as in its `X-Request-Id` header and log lines (added by middleware/request-id.ts). */
    request_id: z
      .string()
      .openapi({ description: "This request's id, as in the X-Request-Id response header; quote it when reporting a problem." }),
  })
  .openapi("Problem");

function issuesToErrors(issues: z.ZodIssue[]): FieldError[] {
  return issues.map((issue) => {
    const path = issue.path.map(String).join(".") || "body";
    if (issue.code === "unrecognized_keys") {
      return { path: issue.keys.join(", "), message: "is not a field you can set" };
    }
    return { path, message: issue.message };
  });
}

/** Turns a failed zod parse into the app's validation problem. */
export function validationError(error: z.ZodError): AppError {
  const errors = issuesToErrors(error.issues);
  return new AppError("validation_failed", errors.map((e) => `${e.path}: ${e.message}`).join("; "), { errors });
}

export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error);
    },
  });
}

const STATUS_TEXT: Record<number, string> = {
  400: "Invalid input (validation_failed, malformed_json, …)",
  401: "Missing, invalid or expired credentials",
  403: "Not allowed",
  404: "Not found",
  409: "Conflict with existing data",
  413: "Body too large",
  415: "Unsupported content type or content coding",
  422: "Unprocessable content",
  429: "Rate limited; see Retry-After",
  500: "Unexpected error",
  503: "A dependency is unavailable (`database_unavailable`: the database did not answer; `service_unavailable`: a dependency refused a write, or the service is not set up). Retry after `Retry-After` seconds when it is sent",
};

/** The headers a problem of that status always carries (lib/errors.ts, `problemResponse`). */
const PROBLEM_HEADERS: Record<number, Record<string, { description: string; schema: { type: "string" } }>> = {
  401: {
    "WWW-Authenticate": {
      description:
        'The challenge (RFC 6750): `Bearer realm="latchkey", error="invalid_token", …` when the access token sent was refused (refresh it, or sign in again); `Bearer realm="latchkey"` alone when none was sent, or the credentials at fault were in the body.',
      schema: { type: "string" },
    },
  },
  415: {
    "Accept-Encoding": {
      description: "`identity` when the body was refused for its Content-Encoding: send it without a content coding.",
      schema: { type: "string" },
    },
    "Accept-Patch": {
      description: "`application/json` when a PATCH was refused for its media type (RFC 5789 §2.2): the patch format it takes.",
      schema: { type: "string" },
    },
  },
  429: { "Retry-After": { description: "Seconds until the limit lets this request through.", schema: { type: "string" } } },
  503: {
    "Retry-After": {
      description:
        "Seconds to wait before sending the request again, when the failure is transient; absent while the service is not set up (an operator must act).",
      schema: { type: "string" },
    },
  },
};

/**
 * Problem responses for the given statuses, plus 500 and 503, which any route can answer (503:
 * a secret or the database migrations are missing, see middleware/readiness.ts; or the database
 * did not answer, see middleware/problems.ts).
 */
export function problems<const S extends number>(...statuses: S[]) {
  const all = [...new Set([...statuses, 500, 503])] as (S | 500 | 503)[];
  return Object.fromEntries(
    all.map((status) => [
      status,
      {
        description: STATUS_TEXT[status] ?? "Error",
        ...(PROBLEM_HEADERS[status] ? { headers: PROBLEM_HEADERS[status] } : {}),
        content: { "application/problem+json": { schema: ProblemSchema } },
      },
    ]),
  ) as { [K in S | 500 | 503]: { description: string; content: { "application/problem+json": { schema: typeof ProblemSchema } } } };
}

export function jsonContent<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** A `201 Created` answer: the JSON body, and `Location` naming the created resource (RFC 9110 §15.3.2). */
export function createdContent<T extends z.ZodType>(schema: T, description: string, location: string) {
  return { ...jsonContent(schema, description), headers: { Location: { description: location, schema: { type: "string" as const } } } };
}

export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}

export const bearerAuth = [{ bearerAuth: [] }];
