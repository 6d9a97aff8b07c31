import type { MiddlewareHandler } from "hono";
import { editResponseHeaders } from "./response-headers";

/** The CSP for JSON: nothing may load or run if a response is ever rendered as a document. */
const JSON_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * The hardening headers. Routes that serve HTML (the docs page) or images set their own
 * Content-Security-Policy before this runs, and it is kept. HSTS only when the request came over
 * https (`secure`): a host MUST NOT send it over plain http (RFC 6797 §7.2), where a man in the
 * middle could forge or strip it, and a browser ignores it (§8.1). Also used by the benchmark's
 * floor of the work every response carries (bench/floor).
 */
export function setSecurityHeaders(headers: Headers, secure: boolean): void {
  headers.set("X-Content-Type-Options", "nosniff");
  if (secure) headers.set("Strict-Transport-Security", "max-age=63072000; includeSubDomains");
  headers.set("Referrer-Policy", "no-referrer");
  headers.set("X-Frame-Options", "DENY");
  if (!headers.has("Content-Security-Policy")) headers.set("Content-Security-Policy", JSON_CSP);
}

/**
 * Hardening headers on every response, errors included. An answer to a request that carried
 * credentials (`Authorization`) is someone's own data, a staff view or a refusal of their token:
 * unless its route chose a policy, no cache may keep it (OWASP ASVS 8.2.1), a browser's disk cache
 * on a shared machine included, which RFC 9111 §3.5 leaves free to store it. The website's pages
 * (cookies) say `no-store` themselves.
 */
export function securityHeaders(): MiddlewareHandler {
  return async function securityHeaders(c, next) {
    await next();
    const personal = c.req.header("authorization") !== undefined;
    const secure = c.req.url.startsWith("https:");
    editResponseHeaders(c, (headers) => {
      setSecurityHeaders(headers, secure);
      if (personal && !headers.has("Cache-Control")) headers.set("Cache-Control", "no-store");
    });
  };
}
