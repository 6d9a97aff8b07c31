/** The page frame and the form pieces every page uses. hono/jsx escapes every string it renders. */
import type { Child, FC, PropsWithChildren } from "hono/jsx";
import { HtmlDocument } from "../lib/html-document";
import { ACTIVITY_LABELS, deviceName, FLASH, type FlashKey } from "./web.messages";

export interface PageUser {
  username: string | null;
  email: string;
  isStaff: boolean;
}

export interface LayoutProps {
  title: string;
  user?: PageUser | null;
  csrf: string;
  flash?: FlashKey | null;
  /** A sentence for the whole form (announced), e.g. wrong credentials. */
  error?: string | null;
  /** Pages that load the avatar preview script. */
  scripts?: string[];
}

const NAV_SIGNED_IN: [string, string][] = [
  ["/profilepage", "Profile"],
  ["/settings", "Settings"],
  ["/activity", "Activity"],
  ["/sessions", "Sessions"],
  ["/people", "People"],
];

export const Layout: FC<PropsWithChildren<LayoutProps>> = ({ title, user, csrf, flash, error, scripts, children }) => (
  <HtmlDocument
    title={title}
    head={
      <>
        <link rel="stylesheet" href="/web/site.css" />
        {(scripts ?? []).map((src) => (
          <script src={src} defer />
        ))}
      </>
    }
  >
    <body>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={user ? "/profilepage" : "/login"}>
          Latchkey
        </a>
        <nav aria-label="Main">
          <ul>
            {user ? (
              <>
                {NAV_SIGNED_IN.map(([href, label]) => (
                  <li>
                    <a href={href}>{label}</a>
                  </li>
                ))}
                {user.isStaff ? (
                  <li>
                    <a href="/admin">Admin</a>
                  </li>
                ) : null}
                <li>
                  <form method="post" action="/logout" class="inline">
                    <input type="hidden" name="_csrf" value={csrf} />
                    <button type="submit" class="link">
                      Sign out
                    </button>
                  </form>
                </li>
              </>
            ) : (
              <>
                <li>
                  <a href="/login">Sign in</a>
                </li>
                <li>
                  <a href="/registration">Create account</a>
                </li>
                <li>
                  <a href="/people">People</a>
                </li>
              </>
            )}
          </ul>
        </nav>
      </header>
      <main id="main" tabindex={-1}>
        <h1>{title}</h1>
        {flash ? <output class="flash">{FLASH[flash]}</output> : null}
        {error ? (
          <p class="error-summary" role="alert" id="form-error">
            {error}
          </p>
        ) : null}
        {children}
      </main>
    </body>
  </HtmlDocument>
);

export type FieldErrors = Record<string, string | undefined>;

interface FieldProps {
  name: string;
  label: string;
  type?: string;
  value?: string | number | null;
  errors?: FieldErrors;
  hint?: Child;
  autocomplete?: string;
  required?: boolean;
  multiline?: boolean;
  /**
   * For values whose limit counts UTF-16 units or ASCII, as a browser's maxlength does. None where
   * the API counts characters (code points, after NFC and trimming): an emoji is two units, so any
   * number would refuse a name the API accepted or promise a limit the API does not keep. The hint
   * states the limit, and the API's message shows beside the field.
   */
  maxlength?: number;
  min?: number;
  max?: number;
  inputmode?: "numeric" | "email" | "tel" | "text";
  autofocus?: boolean;
  pattern?: string;
  accept?: string;
}

/** A labelled field whose hint and error are tied to it (aria-describedby) and whose error is announced. */
export const Field: FC<FieldProps> = (p) => {
  const id = `f-${p.name}`;
  const error = p.errors?.[p.name];
  const describedBy = [p.hint ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean).join(" ") || undefined;
  const common = {
    id,
    name: p.name,
    "aria-describedby": describedBy,
    "aria-invalid": error ? "true" : undefined,
    required: p.required,
    autocomplete: p.autocomplete,
    maxlength: p.maxlength,
    // After a failed submission the first field with an error takes focus (the browser honours the first autofocus).
    autofocus: p.autofocus || error !== undefined || undefined,
  };
  return (
    <div class={error ? "field invalid" : "field"}>
      <label for={id}>{p.label}</label>
      {p.hint ? (
        <p class="hint" id={`${id}-hint`}>
          {p.hint}
        </p>
      ) : null}
      {p.multiline ? (
        <textarea {...common} rows={5}>
          {p.value ?? ""}
        </textarea>
      ) : (
        <input
          {...common}
          type={p.type ?? "text"}
          value={p.type === "password" || p.type === "file" ? undefined : (p.value ?? undefined)}
          min={p.min}
          max={p.max}
          inputmode={p.inputmode}
          pattern={p.pattern}
          accept={p.accept}
        />
      )}
      {error ? (
        <p class="field-error" id={`${id}-error`} role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
};

/** A POST form with its CSRF token. */
export const Form: FC<PropsWithChildren<{ action: string; csrf: string; multipart?: boolean; class?: string; label?: string }>> = (p) => (
  <form
    method="post"
    action={p.action}
    enctype={p.multipart ? "multipart/form-data" : undefined}
    class={p.class ?? "stack"}
    aria-label={p.label}
    novalidate
  >
    <input type="hidden" name="_csrf" value={p.csrf} />
    {p.children}
  </form>
);

/** A `<time>` a person can read, with the machine-readable instant in `datetime`. */
export const Time: FC<{ iso: string }> = ({ iso }) => <time datetime={iso}>{`${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`}</time>;

/** Links to the next page, keeping the filters. */
export const Pager: FC<{ path: string; params: Record<string, string | undefined>; next: string | null; first: boolean }> = (p) => {
  const query = (extra: Record<string, string | undefined>) => {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...p.params, ...extra })) if (v) search.set(k, v);
    const text = search.toString();
    return text ? `${p.path}?${text}` : p.path;
  };
  if (!p.next && p.first) return null;
  return (
    <nav class="pager" aria-label="Pages">
      {p.first ? null : <a href={query({ cursor: undefined })}>First page</a>}
      {p.next ? (
        <a href={query({ cursor: p.next })} rel="next">
          Next page
        </a>
      ) : null}
    </nav>
  );
};

/**
 * Statuses, newest first: the text and when it was posted (and whether it was edited). The author
 * gets an edit link (`editHref`), the author or staff a delete button (`remove`: where its form
 * posts, with the page's CSRF token).
 */
export const StatusList: FC<{
  items: { id: string; content: string; created_at: string; updated_at: string }[];
  editHref?: (id: string) => string;
  remove?: { action: (id: string) => string; csrf: string };
}> = ({ items, editHref, remove }) => (
  <>
    {items.length === 0 ? <p class="muted">No statuses yet.</p> : null}
    <ol class="statuses">
      {items.map((s) => (
        <li class="status">
          <p class="prose">{s.content}</p>
          <p class="meta">
            <Time iso={s.created_at} />
            {s.updated_at !== s.created_at ? " (edited)" : ""}
          </p>
          {editHref || remove ? (
            <div class="actions">
              {editHref ? <a href={editHref(s.id)}>Edit</a> : null}
              {remove ? (
                <Form action={remove.action(s.id)} csrf={remove.csrf} class="inline" label="Delete status">
                  <button type="submit" class="danger small">
                    Delete<span class="visually-hidden"> this status</span>
                  </button>
                </Form>
              ) : null}
            </div>
          ) : null}
        </li>
      ))}
    </ol>
  </>
);

/** An account's activity entries as a table: what, when, from which address and device (the account page and the admin's user page). */
export const ActivityTable: FC<{
  items: { type: string; created_at: string; ip: string | null; user_agent: string | null; details: Record<string, unknown> }[];
  caption?: string;
}> = ({ items, caption }) => (
  <table class="list">
    {caption ? <caption class="visually-hidden">{caption}</caption> : null}
    <thead>
      <tr>
        <th scope="col">What</th>
        <th scope="col">When</th>
        <th scope="col">IP address</th>
        <th scope="col">Device</th>
      </tr>
    </thead>
    <tbody>
      {items.map((e) => (
        <tr>
          <td data-label="What">
            {ACTIVITY_LABELS[e.type] ?? e.type}
            {typeof e.details.method === "string" ? <span class="muted"> ({e.details.method.replace("_", " ")})</span> : null}
          </td>
          <td data-label="When">
            <Time iso={e.created_at} />
          </td>
          <td data-label="IP address">{e.ip ?? "—"}</td>
          <td data-label="Device" title={e.user_agent ?? undefined}>
            {deviceName(e.user_agent)}
          </td>
        </tr>
      ))}
    </tbody>
  </table>
);
