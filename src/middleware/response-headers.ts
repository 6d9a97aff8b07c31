import type { Context } from "hono";

/**
 * Changes the headers of the response a handler made, in place. A response whose headers are
 * immutable (`Response.redirect()`, or one passed through from `fetch` or the Cache API) is
 * copied once first; setting them directly would throw, and the request would answer 500.
 * Hono's `c.header()` after the handler copies every response instead, in case; no difference
 * in CPU per request showed in `npm run bench -- --only health` (README, Performance).
 */
export function editResponseHeaders(c: Context, edit: (headers: Headers) => void): void {
  try {
    edit(c.res.headers);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    c.res = new Response(c.res.body, c.res);
    edit(c.res.headers);
  }
}
