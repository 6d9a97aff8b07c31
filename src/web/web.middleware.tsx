/**
 * What runs before every page: its headers, who is signed in, the CSRF checks of a POST, and the
 * page's access rule. Registered per page path (not `*`), so the API never passes through it.
 */
import type { MiddlewareHandler } from "hono";
import { deleteCookie, getCookie } from "hono/cookie";
import { AVATAR_MAX_BYTES } from "../features/profiles/avatar.image";
import { MULTIPART_OVERHEAD_BYTES } from "../features/profiles/avatar.service";
import { discardRest } from "../lib/drain";
import { setupGate } from "../middleware/readiness";
import type { WebEnv } from "./web.env";
import { page, redirect } from "./web.kit";
import { isFlashKey } from "./web.messages";
import { COOKIE, clearTokenCookies, csrfToken, csrfValid, loadSession, safeNext, sameOrigin } from "./web.session";

/**
 * Only this worker's own assets; no inline script or style; no framing; forms post only here.
 * `blob:` images are the avatar preview the page's own script makes from the chosen file.
 */
export const PAGE_CSP =
  "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/** A form without a file is small; an avatar upload may be the image limit plus the multipart framing. */
const FORM_MAX_BYTES = 64 * 1024;
const UPLOAD_MAX_BYTES = AVATAR_MAX_BYTES + MULTIPART_OVERHEAD_BYTES;

/**
 * The submitted form, read with a byte limit: the declared length is checked first, then the
 * bytes are counted as they arrive (a chunked body has no declared length). Anything that is not
 * a form parses as an empty one, which then fails the CSRF check.
 */
async function readForm(request: Request, limit: number): Promise<Record<string, string | File> | "too_large"> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limit) return "too_large";
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body?.getReader();
  for (;;) {
    const read = await reader?.read();
    if (!read || read.done) break;
    total += read.value.byteLength;
    if (total > limit) {
      if (reader) await discardRest(reader); // not just cancel: see lib/drain.ts
      return "too_large";
    }
    chunks.push(read.value);
  }
  const fields: Record<string, string | File> = {};
  const type = request.headers.get("content-type") ?? "";
  if (!/^(application\/x-www-form-urlencoded|multipart\/form-data)\b/i.test(type)) return fields;
  try {
    const form = await new Response(new Blob(chunks), { headers: { "content-type": type } }).formData();
    // One value per name: a repeated field keeps its first value.
    for (const [key, value] of form) if (!(key in fields)) fields[key] = value;
  } catch {
    // an unparseable body is an empty form
  }
  return fields;
}

export interface PageRule {
  /** "user": signed in (else /login and back); "staff": signed-in staff (else a 403 page); "any": either. */
  access: "any" | "user" | "staff";
  upload?: boolean;
  /** A POST whose token no longer matches because the sign-in already ended (signing out): let it through. */
  lenientWhenSignedOut?: boolean;
}

/**
 * The page a form's action belongs to (`/settings/password` → `/settings`), for links back and
 * for a GET of an action path (a bookmark, a reload after an error), which is sent there.
 */
export function pageOf(path: string): string {
  const rules: [RegExp, string | ((m: RegExpExecArray) => string)][] = [
    [/^\/settings\//, "/settings"],
    [/^\/profilepage\/statuses\/[^/]+\/edit$/, (m) => m[0]],
    [/^\/profilepage\//, "/profilepage"],
    [/^\/sessions\//, "/sessions"],
    [/^\/admin\/config(\/|$)/, "/admin"],
    [/^(\/admin\/users\/[^/]+)\//, (m) => m[1] as string],
    [/^\/login\/code\/send$/, "/login/code"],
    [/^\/verify\/resend$/, "/verify"],
  ];
  for (const [pattern, target] of rules) {
    const m = pattern.exec(path);
    if (m) return typeof target === "string" ? target : target(m);
  }
  return path;
}

function refusal(c: Parameters<MiddlewareHandler<WebEnv>>[0], status: 403 | 413, reason: string) {
  return page(
    c,
    status === 413 ? "Too large" : "Request refused",
    <>
      <p>{reason}</p>
      <p>
        <a href={pageOf(c.req.path)}>Go back to the page</a> and try again from there.
      </p>
    </>,
    { status },
  );
}

/** A POST whose `_csrf` does not belong to this browser's sign-in or nonce. */
async function expiredForm(c: Parameters<MiddlewareHandler<WebEnv>>[0]) {
  c.set("csrf", await csrfToken(c));
  return refusal(c, 403, "This form has expired or did not come from this site, so it was not accepted.");
}

/**
 * The pages key codes, form tokens and cursors with the API's secrets: until those are set up, they
 * answer a 503 page (web.routes' error handler), as the API answers 503 problem documents.
 */
const setUp = setupGate();

export function webPage(rule: PageRule): MiddlewareHandler<WebEnv> {
  return async function webPage(c, next) {
    c.header("Content-Security-Policy", PAGE_CSP);
    c.header("Cache-Control", "no-store");
    if (!setUp.passed(c.env)) await setUp.check(c.env, () => c.var.deps.setup);
    const isPost = c.req.method === "POST";
    // A form (at most 64 KiB) is read whole before the sign-in is looked at, as the API reads a
    // JSON body before the token: a form held open by a slowly sent body is then judged by the
    // sign-in as it is once the body is in, not as it was when the request began (a thief signed
    // out by the owner's password reset meanwhile would otherwise still post). An upload's 2 MiB
    // are read only for a signed-in browser (below).
    const early = isPost && !rule.upload && sameOrigin(c) ? await readForm(c.req.raw, FORM_MAX_BYTES) : undefined;

    const outcome = await loadSession(c);
    if (outcome === "retry") {
      // A concurrent page load may just have rotated this browser's refresh token: ask again,
      // by when its new cookies are in place. A POST's form cannot be replayed; its page is loaded instead.
      const url = new URL(c.req.url);
      return c.redirect(isPost ? pageOf(url.pathname) : `${url.pathname}${url.search}`, isPost ? 303 : 302);
    }
    c.set("signedIn", outcome === "signed_in");
    c.set("flash", null);
    c.set("form", {});

    if (isPost) {
      if (!sameOrigin(c)) return refusal(c, 403, "This form was sent from another website, so it was not accepted.");
      // Whether anyone is signed in is known from the cookies alone, so an upload that needs a
      // sign-in is refused before a byte of its body is read: otherwise anyone could have the worker
      // buffer and parse 2 MiB for nothing. Its answer is the one the token check gave it (a
      // page's token belongs to a sign-in, and this request has none).
      if (rule.access !== "any" && !c.var.signedIn) return expiredForm(c);
      const fields = early ?? (await readForm(c.req.raw, UPLOAD_MAX_BYTES));
      if (fields === "too_large") {
        return refusal(c, 413, rule.upload ? "The picture is larger than 2 MiB." : "The form is larger than this page accepts.");
      }
      c.set("form", fields);
      if (!(await csrfValid(c, fields._csrf))) {
        if (rule.lenientWhenSignedOut && !c.var.signedIn) {
          clearTokenCookies(c);
          return redirect(c, "/login", "signed_out");
        }
        return expiredForm(c);
      }
    } else {
      const flash = getCookie(c, COOKIE.flash);
      if (flash !== undefined) {
        deleteCookie(c, COOKIE.flash, { path: "/", secure: true });
        if (isFlashKey(flash)) c.set("flash", flash);
      }
    }
    c.set("csrf", await csrfToken(c));

    if (rule.access !== "any" && !c.var.signedIn) {
      const url = new URL(c.req.url);
      const back = safeNext(`${url.pathname}${url.search}`, "/profilepage");
      return c.redirect(`/login?next=${encodeURIComponent(back)}`, 303);
    }
    if (rule.access === "staff" && !c.var.user.isStaff) {
      return page(c, "Not allowed", <p>This part of the site is for staff only.</p>, { status: 403 });
    }
    await next();
  };
}
