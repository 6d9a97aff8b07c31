/**
 * `GET /dev/mail`: the development inbox (see dev-inbox.ts). JSON with `Accept: application/json`
 * or `?format=json`, a plain HTML page otherwise; `?to=<email>` keeps one recipient's mails,
 * `?limit=` caps the count and `?wait=<seconds>` (at most 10) waits for a first matching mail, so
 * a script can ask right after the request that queued it (delivery takes about a second). Outside development (or with a real mail driver) everything under
 * `/dev/` is a 404, as if it did not exist; it is not in the OpenAPI document either.
 *
 * The inbox shows every code, so it answers only requests addressed to a loopback name or an IP
 * address. A web page the developer opens elsewhere could otherwise read it through DNS
 * rebinding: its own name, pointed at 127.0.0.1, makes a request to the dev server same-origin
 * for the browser, which then sends that name as the Host. Dev servers guard the same way
 * (webpack-dev-server's and Vite's allowed-hosts check, which also let IP addresses through:
 * a rebinding page is always reached by a name).
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../../env";
import { AppError, problemResponse } from "../../lib/errors";
import { createRouter } from "../../lib/openapi";
import { DEV_INBOX_MAX, type DevMail, devInboxEnabled, KvDevInbox } from "./dev-inbox";
import { escapeHtml } from "./mail.templates";

export const DEV_PATH_PREFIX = "/dev";
const DEFAULT_LIMIT = 20;
const MAX_WAIT_SECONDS = 10;
const POLL_MS = 200;
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** `localhost`, a name under it, or an IPv4 or IPv6 literal (a URL's hostname brackets IPv6). */
const LOCAL_HOST = /^(?:(?:[a-z0-9-]+\.)*localhost\.?|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])$/i;

/**
 * Hides every `/dev/*` path unless the development inbox is on, and refuses it at any other name
 * than a local one (see above); mount it before any route lookup.
 */
export function devOnly(): MiddlewareHandler<AppEnv> {
  return async function devOnly(c, next) {
    if (!devInboxEnabled(c.env)) return problemResponse(c, new AppError("not_found", "No such route."));
    // wrangler dev passes the browser's Host through as the request URL's host (checked in test/e2e/api.test.ts).
    if (!LOCAL_HOST.test(new URL(c.req.url).hostname)) {
      const detail = "The development inbox answers only at localhost or an IP address, never at another name (DNS rebinding).";
      return problemResponse(c, new AppError("forbidden", detail));
    }
    return next();
  };
}

function wantsJson(format: string | undefined, accept: string | undefined): boolean {
  if (format) return format === "json";
  return (accept ?? "").toLowerCase().includes("application/json");
}

function renderPage(mails: DevMail[]): string {
  const rows = mails
    .map(
      (m) =>
        `<tr><td>${escapeHtml(m.sent_at)}</td><td>${escapeHtml(m.to)}</td><td>${escapeHtml(m.purpose ?? "")}</td>` +
        `<td><code>${escapeHtml(m.code ?? "")}</code></td><td><details><summary>${escapeHtml(m.subject)}</summary>` +
        `<pre>${escapeHtml(m.text)}</pre></details></td></tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Latchkey development inbox</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}code{font-size:1.3em}</style></head>
<body>
<h1>Development inbox</h1>
<p>Mails the console driver sent in the last hour, newest first. JSON: <a href="?format=json">?format=json</a>.</p>
${mails.length ? `<table><tr><th>sent</th><th>to</th><th>purpose</th><th>code</th><th>mail</th></tr>\n${rows}\n</table>` : "<p>No mail yet.</p>"}
</body>
</html>
`;
}

export const devInboxRoutes = createRouter().get(`${DEV_PATH_PREFIX}/mail`, async (c) => {
  const requested = Number.parseInt(c.req.query("limit") ?? "", 10);
  const limit = Number.isFinite(requested) ? Math.min(Math.max(requested, 1), DEV_INBOX_MAX) : DEFAULT_LIMIT;
  const wait = Math.min(Math.max(Number.parseFloat(c.req.query("wait") ?? "") || 0, 0), MAX_WAIT_SECONDS);
  const inbox = KvDevInbox(c.env.CONFIG, c.var.deps.clock);
  const query = { limit, to: c.req.query("to") };
  let mails = await inbox.latest(query);
  // Real time, not the injected clock: this waits for the queue consumer, another invocation.
  for (const deadline = Date.now() + wait * 1000; mails.length === 0 && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    mails = await inbox.latest(query);
  }
  c.header("Cache-Control", "no-store");
  if (wantsJson(c.req.query("format"), c.req.header("accept"))) return c.json({ items: mails }, 200);
  return c.html(renderPage(mails), 200, { "Content-Security-Policy": PAGE_CSP });
});
