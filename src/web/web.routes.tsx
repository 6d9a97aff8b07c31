/**
 * The account website and the admin console: server-rendered pages over the same services as
 * /api/v1, working without JavaScript. Each page path carries its own middleware (web.middleware.tsx),
 * so nothing here runs for the API. Errors a page does not handle itself become an HTML page.
 */
import { Hono } from "hono";
import { type ErrorCode, retryAfter } from "../lib/errors";
import { answerFor } from "../middleware/problems";
import { accountPages } from "./pages/account";
import { adminPages } from "./pages/admin";
import { mePages } from "./pages/me";
import { peoplePages } from "./pages/people";
import type { WebEnv } from "./web.env";
import { page } from "./web.kit";
import { ERROR_SENTENCES } from "./web.messages";
import { PAGE_CSP, pageOf } from "./web.middleware";

/** The title of an error page, where there is something more precise to say than that it failed. */
const PAGE_TITLES: Partial<Record<ErrorCode, string>> = {
  not_found: "Not found",
  forbidden: "Not allowed",
  rate_limited: "Too many requests",
  database_unavailable: "Temporarily unavailable",
};

export function webRoutes() {
  const web = new Hono<WebEnv>();
  accountPages(web);
  mePages(web);
  peoplePages(web);
  adminPages(web);
  // A GET of a path that only takes a form (a bookmark, a reload) goes to the page the form is on.
  // From the path as the router matched it (decoded: `/login/code/%73end` is the form's path too,
  // and sent back as it came it would redirect to itself), encoded again for `Location`, where a
  // decoded line break would make the header invalid (a 500).
  const getPaths = new Set(web.routes.filter((r) => r.method === "GET").map((r) => r.path));
  const postOnly = [...new Set(web.routes.filter((r) => r.method === "POST" && !getPaths.has(r.path)).map((r) => r.path))];
  for (const path of postOnly) web.get(path, (c) => c.redirect(encodeURI(pageOf(c.req.path)), 303));
  web.onError((error, c) => {
    c.header("Content-Security-Policy", PAGE_CSP);
    c.header("Cache-Control", "no-store");
    // The API's mapping and error line: the request id, the route's pattern (paths carry usernames and ids).
    const appError = answerFor(c, error);
    if (appError.code === "unauthorized") return c.redirect("/login", 303);
    const wait = retryAfter(appError);
    if (wait !== null) c.header("Retry-After", wait);
    const code = appError.code;
    const title = PAGE_TITLES[code] ?? "Something went wrong";
    const status = appError.status as 400 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;
    return page(c, title, <p>{ERROR_SENTENCES[code]}</p>, { status });
  });
  return web;
}
