/**
 * The documentation a problem document's `type` leads to (RFC 9457 §3.1.1: the type URI should
 * resolve to human-readable documentation): `GET /problems/{code}`, one plain page per public error
 * code with its HTTP status, title and what a client should do, and `GET /problems`, the list.
 * Made from the one error table (lib/errors.ts), so a new code is documented where it is defined.
 * Served before setup like the index page: documentation needs no secret.
 */
import type { Child, FC, PropsWithChildren } from "hono/jsx";
import { AppError, ERRORS, type ErrorCode, PROBLEMS_PATH, problemTypePath } from "../../lib/errors";
import { HtmlDocument } from "../../lib/html-document";
import { createRouter } from "../../lib/openapi";
import { PLAIN_PAGE_CSP } from "./meta.routes";

const CODES = Object.keys(ERRORS) as ErrorCode[];
/** Each code by its page's path; only these paths answer, so no spelling or inherited name does. */
const BY_PATH = new Map(CODES.map((code) => [problemTypePath(code), code]));

/** Text with `backticked` parts set as code. */
function withCode(text: string): Child[] {
  return text.split("`").map((part, i) => (i % 2 === 1 ? <code>{part}</code> : part));
}

const Page: FC<PropsWithChildren<{ title: string }>> = ({ title, children }) => (
  <HtmlDocument title={title}>
    <body>{children}</body>
  </HtmlDocument>
);

export const problemRoutes = createRouter()
  .get(PROBLEMS_PATH, (c) =>
    c.html(
      <Page title="Problem types">
        <h1>Problem types</h1>
        <p>
          Every error of the API is a problem document (RFC 9457, <code>application/problem+json</code>) whose <code>type</code> is one of
          these pages and whose <code>code</code> names it.
        </p>
        <ul>
          {CODES.map((code) => (
            <li>
              <a href={problemTypePath(code)}>
                <code>{code}</code>
              </a>{" "}
              ({ERRORS[code].status}): {ERRORS[code].title}
            </li>
          ))}
        </ul>
        <p>
          <a href="/docs">API reference</a>
        </p>
      </Page>,
      200,
      { "Content-Security-Policy": PLAIN_PAGE_CSP },
    ),
  )
  .get(`${PROBLEMS_PATH}/:code`, (c) => {
    const code = BY_PATH.get(c.req.path);
    if (code === undefined) throw new AppError("not_found", `No such problem type; ${PROBLEMS_PATH} lists them.`);
    const spec = ERRORS[code];
    return c.html(
      <Page title={code}>
        <h1>
          Problem type <code>{code}</code>
        </h1>
        <dl>
          <dt>HTTP status</dt>
          <dd>{spec.status}</dd>
          <dt>Title</dt>
          <dd>{spec.title}</dd>
        </dl>
        <h2>What to do</h2>
        <p>{withCode(spec.advice)}</p>
        <p>
          A problem document of this type has <code>"code": "{code}"</code>, and its <code>detail</code> says more about the case at hand.
        </p>
        <p>
          <a href={PROBLEMS_PATH}>All problem types</a> · <a href="/docs">API reference</a>
        </p>
      </Page>,
      200,
      { "Content-Security-Policy": PLAIN_PAGE_CSP },
    );
  });
