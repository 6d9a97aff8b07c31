/**
 * The frame of every server-rendered HTML page, the website's and the worker's own documentation
 * pages alike: doctype, language, character set, viewport, title and favicon. `head` adds what a
 * page loads besides (a stylesheet, scripts); the caller's CSP decides what may load at all.
 */
import { raw } from "hono/html";
import type { Child, FC } from "hono/jsx";

export const HtmlDocument: FC<{ title: string; head?: Child; children?: Child }> = ({ title, head, children }) => (
  <>
    {/* A constant, never user text: standards mode needs the doctype before <html>. */}
    {raw("<!doctype html>")}
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${title} · Latchkey`}</title>
        <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
        {head}
      </head>
      {children}
    </html>
  </>
);
