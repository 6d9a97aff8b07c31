/** Helpers the page handlers share: rendering in the frame, redirects with a flash, form input, service errors as field messages. */
import type { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { setCookie } from "hono/cookie";
import type { Child } from "hono/jsx";
import { AppError, retryAfter } from "../lib/errors";
import { validationError } from "../lib/openapi";
import type { WebEnv } from "./web.env";
import { type FieldErrors, Layout, type LayoutProps } from "./web.layout";
import { ERROR_SENTENCES, type FlashKey } from "./web.messages";
import { COOKIE } from "./web.session";

export type WebContext = Context<WebEnv>;

/** Renders `body` in the page frame with the signed-in user, the CSRF token and any flash. */
export function page(
  c: WebContext,
  title: string,
  body: Child,
  options: {
    status?: 200 | 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;
    error?: string | null;
    scripts?: string[];
  } = {},
) {
  const user = c.var.signedIn ? { username: c.var.user.username, email: c.var.user.email, isStaff: c.var.user.isStaff } : null;
  const props: LayoutProps = { title, user, csrf: c.var.csrf, flash: c.var.flash, error: options.error, scripts: options.scripts };
  return c.html(<Layout {...props}>{body}</Layout>, options.status ?? 200);
}

/** 303 See Other (a POST's answer is fetched with GET), with a message for the next page. */
export function redirect(c: WebContext, location: string, flash?: FlashKey) {
  if (flash) setCookie(c, COOKIE.flash, flash, { path: "/", secure: true, httpOnly: true, sameSite: "Lax", maxAge: 60 });
  return c.redirect(location, 303);
}

/** The submitted form (parsed once by the CSRF check). */
export function form(c: WebContext): Record<string, string | File> {
  return c.var.form ?? {};
}

/**
 * A text field of the submitted form ("" when absent or a file). Browsers send a textarea's line
 * breaks as CRLF (HTML, "converting newlines" in form submission); they come back as the \n the
 * API's schemas accept, which refuse a bare carriage return as a control character.
 */
export function text(c: WebContext, name: string): string {
  const value = form(c)[name];
  return typeof value === "string" ? value.replace(/\r\n?/g, "\n") : "";
}

/** A failure the page shows: the sentence for the whole form, and messages per field. */
export interface Problem {
  status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;
  sentence: string;
  fields: FieldErrors;
  code: string;
}

/**
 * The status of a form page showing `problem`: the problem's own when it is one of `kept` (what
 * that page tells apart), a 429 or a 503 — each sent with the API's Retry-After (`attempt`), which
 * a 400 would contradict by blaming the form — and 400 for anything else wrong with the input.
 */
export function formStatus(problem: Problem, ...kept: Problem["status"][]): Problem["status"] {
  return problem.status === 429 || problem.status === 503 || kept.includes(problem.status) ? problem.status : 400;
}

const FIELD_SENTENCE: Partial<Record<string, [string, string]>> = {
  email_taken: ["email", "An account with this email address already exists."],
  username_taken: ["username", "This username is taken; please choose another."],
  invalid_current_password: ["current_password", "Your current password is not correct."],
};

/** Turns an expected service error into what the page shows; anything else is rethrown. */
export function problemOf(error: unknown, rename: Record<string, string> = {}): Problem {
  if (!(error instanceof AppError)) throw error;
  const fields: FieldErrors = {};
  for (const e of error.extra.errors ?? []) {
    const name = rename[e.path] ?? e.path;
    const message = e.message.charAt(0).toUpperCase() + e.message.slice(1);
    fields[name] = fields[name] ? `${fields[name]} ${message}.` : `${message}.`;
  }
  const fieldSentence = FIELD_SENTENCE[error.code];
  if (fieldSentence) fields[rename[fieldSentence[0]] ?? fieldSentence[0]] = fieldSentence[1];
  let sentence = ERROR_SENTENCES[error.code];
  // A conflict's detail is written for people (e.g. "you cannot demote yourself") and safe to show.
  if (error.code === "conflict" && error.detail) sentence = error.detail;
  if (error.code === "validation_failed" && Object.keys(fields).length === 0 && error.detail) sentence = error.detail;
  return { status: error.status as Problem["status"], sentence, fields, code: error.code };
}

/** Runs a service call; an expected failure comes back as a Problem instead of a thrown error. */
export async function attempt<T>(
  c: WebContext,
  run: () => Promise<T>,
  rename?: Record<string, string>,
): Promise<{ ok: true; value: T } | { ok: false; problem: Problem }> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    const problem = problemOf(error, rename);
    // A rate limit's page says when to try again the way the API does (RFC 9110 §10.2.3).
    const wait = retryAfter(error as AppError);
    if (wait !== null) c.header("Retry-After", wait);
    return { ok: false, problem };
  }
}

/** Parses form input with the API's own zod schema, so a page and the API accept exactly the same. */
export function parseWith<S extends z.ZodTypeAny>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw validationError(result.error);
  return result.data;
}
