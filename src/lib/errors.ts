/**
 * The one error model. Services throw `AppError(code)`; `app.onError` renders it as an RFC 9457
 * problem document. Public titles are deliberately generic where detail would help an attacker
 * (login, codes); the `detail` given at the throw site is for cases where telling is safe.
 */

import type { Context } from "hono";

export const ERRORS = {
  validation_failed: { status: 400, title: "The request is not valid." },
  malformed_json: { status: 400, title: "The request body is not valid JSON." },
  invalid_token: { status: 400, title: "The token is malformed." },
  invalid_code: { status: 400, title: "The code is invalid or has expired." },
  invalid_cursor: { status: 400, title: "The pagination cursor is not valid." },
  unauthorized: { status: 401, title: "Authentication is required." },
  invalid_credentials: { status: 401, title: "The credentials are not valid." },
  invalid_refresh_token: { status: 401, title: "The refresh token is not valid." },
  invalid_current_password: { status: 401, title: "The current password is not correct." },
  forbidden: { status: 403, title: "You are not allowed to do this." },
  email_not_verified: { status: 403, title: "The email address has not been verified." },
  not_found: { status: 404, title: "Not found." },
  method_not_allowed: { status: 405, title: "Method not allowed." },
  email_taken: { status: 409, title: "An account with this email already exists." },
  username_taken: { status: 409, title: "This username is taken." },
  conflict: { status: 409, title: "The request conflicts with the current state." },
  last_staff: { status: 409, title: "No active staff account would remain." },
  payload_too_large: { status: 413, title: "The request body is too large." },
  unsupported_media_type: { status: 415, title: "The content type is not supported." },
  unprocessable_image: { status: 422, title: "The image cannot be accepted." },
  rate_limited: { status: 429, title: "Too many requests." },
  internal_error: { status: 500, title: "An unexpected error occurred." },
  service_unavailable: { status: 503, title: "A dependency is unavailable; nothing was changed." },
  database_unavailable: { status: 503, title: "The database did not answer; try again in a moment." },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;

export interface FieldError {
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    readonly detail?: string,
    readonly extra: {
      errors?: FieldError[];
      retryAfterSeconds?: number;
      tokenRefused?: boolean;
      /** Headers the answer carries besides its own (a 415's `Accept-Encoding`), telling the client what would work. */
      headers?: Record<string, string>;
    } = {},
  ) {
    super(detail ?? ERRORS[code].title);
    this.name = "AppError";
    this.status = ERRORS[code].status;
  }
}

/** Shorthand for a 400 naming one field. */
export function fieldError(path: string, message: string): AppError {
  return new AppError("validation_failed", `${path}: ${message}`, { errors: [{ path, message }] });
}

/**
 * The 401 for a caller whose sign-in is over: found by `requireUser`, or by a write that found the
 * account gone (deleted while the request was under way).
 */
export function signInEnded(): AppError {
  return tokenRefused("The access token is no longer valid.");
}

/** The 401 for a bearer token that was sent and refused: its challenge says `invalid_token`. */
export function tokenRefused(detail: string): AppError {
  return new AppError("unauthorized", detail, { tokenRefused: true });
}

/** The 409 for a change (staff flags, deleting an account) that would leave no active staff account. */
export function lastStaff(): AppError {
  return new AppError("last_staff", "No other active staff account would remain; make another account staff first.");
}

/** The 403 for a caller who is not (or no longer) active staff. */
export function staffOnly(): AppError {
  return new AppError("forbidden", "This needs a staff account.");
}

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  errors?: FieldError[];
  /** The request's id (middleware/request-id.ts), as in its `X-Request-Id` header and log line. */
  request_id?: string;
}

export function problemBody(error: AppError): ProblemDocument {
  const spec = ERRORS[error.code];
  return {
    type: `https://latchkey.dev/problems/${error.code.replace(/_/g, "-")}`,
    title: spec.title,
    status: spec.status,
    detail: error.detail ?? spec.title,
    code: error.code,
    ...(error.extra.errors ? { errors: error.extra.errors } : {}),
  };
}

/**
 * How long a client is told to wait (`Retry-After`) after a dependency refused a write — the mail
 * queue, R2, KV, or the database midway through a change that spans it and one of those: such a
 * refusal is transient (the service overloaded or restarting) and the request can be sent again
 * as it was; a few seconds lets the blip pass without keeping someone who waits for a code or an
 * upload long. (A database that did not answer at all has its own figure: middleware/problems.ts.)
 */
export const DEPENDENCY_RETRY_SECONDS = 5;

/** The 503 for a write a dependency refused (see DEPENDENCY_RETRY_SECONDS): transient, so it says when to retry. */
export function dependencyRefused(detail: string): AppError {
  return new AppError("service_unavailable", detail, { retryAfterSeconds: DEPENDENCY_RETRY_SECONDS });
}

/** The `Retry-After` value (whole seconds, at least 1) of an error worth retrying later (429, a transient 503); null for any other. */
export function retryAfter(error: AppError): string | null {
  const seconds = error.extra.retryAfterSeconds;
  return seconds === undefined ? null : String(Math.max(1, Math.ceil(seconds)));
}

const CHALLENGE = 'Bearer realm="latchkey"';

/**
 * The `WWW-Authenticate` challenge every 401 must carry (RFC 9110 §15.5.2). Per RFC 6750 §3 it
 * names `error="invalid_token"` only when a bearer token was sent and refused — the signal for a
 * client to refresh, or sign in again; a 401 for a wrong password or refresh token in the body
 * names no error, so such a client does not refresh and retry it. Null for any other status.
 */
export function challenge(error: AppError): string | null {
  if (error.status !== 401) return null;
  if (!error.extra.tokenRefused) return CHALLENGE;
  // error_description allows printable ASCII but `"` and `\` (RFC 6750 §3).
  const description = (error.detail ?? "").replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "");
  return `${CHALLENGE}, error="invalid_token", error_description="${description}"`;
}

/** What a problem response uses of the request's context (AppEnv's variables of these names). */
type ProblemEnv = { Variables: { requestId: string; problemCode: string } };

/**
 * The problem document for `error`, carrying the request's id, as the response to `c`'s request.
 * The code is kept on the context for the request's log line (middleware/request-log.ts). Made
 * here, where the request is known, rather than rewritten on the way out: re-reading and
 * re-serialising every error response doubled the CPU a 404 or 401 costs (README, Performance).
 */
export function problemResponse<E extends ProblemEnv>(c: Context<E>, error: AppError, headers: HeadersInit = {}): Response {
  c.set("problemCode", error.code);
  const body: ProblemDocument = { ...problemBody(error), request_id: c.get("requestId") };
  const response = new Response(JSON.stringify(body), {
    status: error.status,
    headers: { "Content-Type": "application/problem+json", ...error.extra.headers, ...headers },
  });
  const wait = retryAfter(error);
  if (wait !== null) response.headers.set("Retry-After", wait);
  const authenticate = challenge(error);
  if (authenticate !== null) response.headers.set("WWW-Authenticate", authenticate);
  return response;
}

/**
 * An error as it may be logged. Drizzle's query errors put every bound parameter in their message
 * ("Failed query: … params: <email>,<password hash>,…"), so for an error carrying `params` only
 * the SQL text is kept; the driver's own cause (e.g. "UNIQUE constraint failed: users.email")
 * names columns, not values. Stack frames are kept, the message lines in the stack are not.
 */
export function loggableError(error: unknown, depth = 0): string {
  if (!(error instanceof Error) || depth > 4) return String(error);
  const withParams = "params" in error && "query" in error;
  const message = withParams ? `query failed: ${String((error as { query: unknown }).query)}` : error.message;
  // Only the "at …" lines: the stack starts with the message, which may span several lines.
  const frames = (error.stack ?? "")
    .split("\n")
    .filter((line) => /^\s+at /.test(line))
    .slice(0, 5)
    .join("\n");
  const cause = (error as { cause?: unknown }).cause;
  return `${error.name}: ${message}${frames ? `\n${frames}` : ""}${cause ? `\ncaused by ${loggableError(cause, depth + 1)}` : ""}`;
}
