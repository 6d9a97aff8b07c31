/**
 * The one error model. Services throw `AppError(code)`; `app.onError` renders it as an RFC 9457
 * problem document. Public titles are deliberately generic where detail would help an attacker
 * (login, codes); the `detail` given at the throw site is for cases where telling is safe.
 */

import type { Context } from "hono";

/**
 * Every public error code: its status, its title, and `advice` — what a client should do about it,
 * shown on the code's documentation page (`GET /problems/{code}`, features/meta/problems.tsx), which
 * a problem document's `type` names.
 */
export const ERRORS = {
  validation_failed: {
    status: 400,
    title: "The request is not valid.",
    advice: "Correct the fields that `errors` names (each with its `path` and a message) and send the request again.",
  },
  malformed_json: {
    status: 400,
    title: "The request body is not valid JSON.",
    advice: "Send the body as one JSON object, encoded as UTF-8; a body that does not parse, or is not UTF-8, is refused whole.",
  },
  invalid_token: {
    status: 400,
    title: "The token is malformed.",
    advice: "Send the token exactly as this service issued it; if it was cut or changed, sign in again for a new one.",
  },
  invalid_code: {
    status: 400,
    title: "The code is invalid or has expired.",
    advice:
      "Check the emailed code and the address it was sent to; if it expired or was replaced, ask for a new one (POST /api/v1/auth/otp).",
  },
  invalid_cursor: {
    status: 400,
    title: "The pagination cursor is not valid.",
    advice: "Pass back the `next_cursor` of a previous page of the same list unchanged, or start again from the first page.",
  },
  unauthorized: {
    status: 401,
    title: "Authentication is required.",
    advice:
      'Send a valid access token as `Authorization: Bearer …`. When `WWW-Authenticate` says `error="invalid_token"`, refresh it (POST /api/v1/auth/refresh) or sign in again.',
  },
  invalid_credentials: {
    status: 401,
    title: "The credentials are not valid.",
    advice:
      "Ask the person for their email or username and password again; do not retry the same ones, as failures count towards a lockout.",
  },
  invalid_refresh_token: {
    status: 401,
    title: "The refresh token is not valid.",
    advice: "The sign-in has ended (signed out, expired, or the token was already used): sign in again.",
  },
  invalid_current_password: {
    status: 401,
    title: "The current password is not correct.",
    advice: "Ask the person for their current password again and resend the change with it.",
  },
  forbidden: {
    status: 403,
    title: "You are not allowed to do this.",
    advice: "This account may not do this (it needs staff, or to be the author): do not retry with the same token.",
  },
  email_not_verified: {
    status: 403,
    title: "The email address has not been verified.",
    advice: "Confirm the address with the emailed code (POST /api/v1/auth/verify-email), or ask for a new code (POST /api/v1/auth/otp).",
  },
  not_found: {
    status: 404,
    title: "Not found.",
    advice: "Check the path and the id in it; a thing that was deleted, or is out of public view, is not found either.",
  },
  method_not_allowed: {
    status: 405,
    title: "Method not allowed.",
    advice: "Use one of the methods the `Allow` header lists for this path.",
  },
  email_taken: {
    status: 409,
    title: "An account with this email already exists.",
    advice: "Sign in to that account instead, or reset its password if it is forgotten; or use another address.",
  },
  username_taken: {
    status: 409,
    title: "This username is taken.",
    advice: "Choose another username.",
  },
  conflict: {
    status: 409,
    title: "The request conflicts with the current state.",
    advice:
      "Something changed meanwhile, or the change is not possible as asked (`detail` says which): read the current state and decide again.",
  },
  last_staff: {
    status: 409,
    title: "No active staff account would remain.",
    advice: "Make another account active staff first, then repeat the change.",
  },
  payload_too_large: {
    status: 413,
    title: "The request body is too large.",
    advice: "Send a smaller body: JSON bodies are at most 64 KiB, avatar images at most 2 MiB.",
  },
  unsupported_media_type: {
    status: 415,
    title: "The content type is not supported.",
    advice:
      "Send JSON as `Content-Type: application/json` (see `Accept-Patch` for a PATCH), an avatar as a PNG, JPEG, WebP or GIF image, and no body with a `Content-Encoding` (see `Accept-Encoding`).",
  },
  unprocessable_image: {
    status: 422,
    title: "The image cannot be accepted.",
    advice:
      "Send another image: 1 to 4096 pixels a side, readable, and not an animation or a progressive JPEG too heavy to show (`detail` says which limit it broke).",
  },
  rate_limited: {
    status: 429,
    title: "Too many requests.",
    advice: "Wait the number of seconds `Retry-After` gives before sending this request again.",
  },
  internal_error: {
    status: 500,
    title: "An unexpected error occurred.",
    advice: "Try again later; if it persists, report it with the `request_id` of the answer.",
  },
  service_unavailable: {
    status: 503,
    title: "A dependency is unavailable; nothing was changed.",
    advice:
      "Send the request again after the seconds `Retry-After` gives. Without `Retry-After` the service is not set up, and waiting will not help: tell its operator, with the `request_id`.",
  },
  database_unavailable: {
    status: 503,
    title: "The database did not answer; try again in a moment.",
    advice:
      "Send the request again after the seconds `Retry-After` gives; a write may have landed even so, so a retry can meet its result (a 409, a used code).",
  },
} as const satisfies Record<string, { status: number; title: string; advice: string }>;

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

/** The path under which problem types are documented (features/meta/problems.tsx). */
export const PROBLEMS_PATH = "/problems";

/**
 * A problem document's `type`: where the documentation of `code` is served, as a relative
 * reference with the full path, which a client resolves against the request's URL to this
 * deployment's own page (RFC 9457 §3.1.1 recommends the full path for a relative `type`). An
 * absolute URI would need a host that every deployment serves, and there is none.
 */
export function problemTypePath(code: ErrorCode): string {
  return `${PROBLEMS_PATH}/${code.replace(/_/g, "-")}`;
}

export function problemBody(error: AppError): ProblemDocument {
  const spec = ERRORS[error.code];
  return {
    type: problemTypePath(error.code),
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
