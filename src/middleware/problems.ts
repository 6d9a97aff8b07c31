import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { AppError } from "../lib/errors";
import { isDatabaseOutage } from "../store";
import { setupError } from "./readiness";
import { logUnexpectedError } from "./request-log";

/** What a thrown error shows the client, for the API's handler and the website's alike. */
function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof HTTPException) {
    // Raised by hono's validator when the JSON body cannot be parsed.
    if (error.status === 400) return new AppError("malformed_json", "The body is not valid JSON.");
    if (error.status === 413) return new AppError("payload_too_large");
    if (error.status === 401) return new AppError("unauthorized");
  }
  // A database that did not answer is worth a retry, a bug is not (store/driver.ts).
  if (isDatabaseOutage(error)) return new AppError("database_unavailable", undefined, { retryAfterSeconds: DATABASE_RETRY_SECONDS });
  return new AppError("internal_error");
}

/**
 * D1's own advice is to retry such a query at once, with backoff (best-practices/retry-queries);
 * a database object restarting takes about a second or two, so that is what a client is told.
 */
const DATABASE_RETRY_SECONDS = 2;

/**
 * The error a failed request answers with. Every 5xx is logged with its request (an outage too:
 * the operator must see it), except an incomplete setup's, whose cause is already logged by name
 * and once (middleware/readiness.ts).
 */
export function answerFor(c: Context, error: unknown): AppError {
  const notSetUp = setupError(error);
  if (notSetUp) return notSetUp;
  const appError = toAppError(error);
  if (appError.status >= 500) logUnexpectedError(c, error);
  return appError;
}
