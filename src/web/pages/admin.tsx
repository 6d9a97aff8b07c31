/** The admin console: configuration, audit trail, accounts. Staff only; the same services as /api/v1/admin. */
import { z } from "@hono/zod-openapi";
import type { Hono } from "hono";
import { CONFIG_KEYS, isConfigKey } from "../../config/config.definitions";
import { listActivity } from "../../features/activity/activity.service";
import { listAudit } from "../../features/admin/admin.audit";
import { getConfig, patchConfig, resetConfigKey } from "../../features/admin/admin.config.service";
import type { AuditEntryView } from "../../features/admin/admin.schemas";
import { adminLogoutAll, getUser, searchUsers, updateUserFlags } from "../../features/admin/admin.users.service";
import { getPublicProfile } from "../../features/profiles/profiles.service";
import { deleteStatus, newestStatusesOf } from "../../features/statuses/statuses.service";
import { AppError } from "../../lib/errors";
import { pageQuery } from "../../lib/pagination";
import type { WebEnv } from "../web.env";
import { attempt, type Problem, page, redirect, text, type WebContext } from "../web.kit";
import { ActivityTable, Form, Pager, StatusList, Time } from "../web.layout";
import { webPage } from "../web.middleware";

const staff = webPage({ access: "staff" });
/** How many of an account's statuses its admin page lists, newest first. */
const USER_PAGE_STATUSES = 20;
const ListQuery = z.object({ q: z.string().max(254).optional(), ...pageQuery });

const AdminNav = () => (
  <nav class="subnav" aria-label="Admin">
    <a href="/admin">Configuration</a> <a href="/admin/users">Users</a> <a href="/admin/audit">Audit trail</a>
  </nav>
);

async function configPage(c: WebContext, problem?: Problem, values: Record<string, string> = {}) {
  const entries = await getConfig(c.var.deps);
  return page(
    c,
    "Admin: configuration",
    <>
      <AdminNav />
      <p>Changes take effect within seconds on every worker. Every value is checked against its bounds first.</p>
      {entries.map((e) => {
        const id = `cfg-${e.key}`;
        const error = problem?.fields[e.key];
        const def = CONFIG_KEYS[e.key];
        return (
          <section class="card config" aria-labelledby={`${id}-title`}>
            <h2 id={`${id}-title`}>
              <code>{e.key}</code>
            </h2>
            <p>{e.description}</p>
            <dl class="facts">
              <dt>In force</dt>
              <dd>
                <strong>{String(e.value)}</strong> ({e.source === "kv" ? "set" : "default"})
              </dd>
              <dt>Default</dt>
              <dd>{String(e.default)}</dd>
              {e.min !== null ? (
                <>
                  <dt>Bounds</dt>
                  <dd>
                    {e.min} to {e.max}
                  </dd>
                </>
              ) : null}
              {!e.valid ? (
                <>
                  <dt>Stored but ignored</dt>
                  <dd>{e.stored}</dd>
                </>
              ) : null}
            </dl>
            <Form action="/admin/config" csrf={c.var.csrf} class="inline-form" label={`Change ${e.key}`}>
              <input type="hidden" name="key" value={e.key} />
              <div class={error ? "field invalid" : "field"}>
                <label for={id}>New value</label>
                {def.type === "boolean" ? (
                  <select id={id} name="value" aria-describedby={error ? `${id}-error` : undefined}>
                    <option value="true" selected={e.value === true}>
                      true
                    </option>
                    <option value="false" selected={e.value === false}>
                      false
                    </option>
                  </select>
                ) : (
                  <input
                    id={id}
                    name="value"
                    inputmode="numeric"
                    value={values[e.key] ?? String(e.value)}
                    required
                    aria-invalid={error ? "true" : undefined}
                    aria-describedby={error ? `${id}-error` : undefined}
                  />
                )}
                {error ? (
                  <p class="field-error" id={`${id}-error`} role="alert">
                    {error}
                  </p>
                ) : null}
              </div>
              <button type="submit">Save</button>
            </Form>
            {e.source === "kv" ? (
              <Form action={`/admin/config/${e.key}/reset`} csrf={c.var.csrf} class="inline" label={`Reset ${e.key}`}>
                <button type="submit" class="secondary small">
                  Reset to default<span class="visually-hidden"> ({e.key})</span>
                </button>
              </Form>
            ) : null}
          </section>
        );
      })}
    </>,
    { status: problem ? problem.status : 200, error: problem?.sentence },
  );
}

/** Who made a change: a staff member, one whose account is gone since (their address then), or the operator's CLI. */
function auditActor(a: AuditEntryView): string {
  if (a.actor_id !== null) return a.actor_email ?? a.actor_id;
  return a.actor_email !== null ? `${a.actor_email} (account deleted)` : "operator (CLI)";
}

function userFlag(label: string, on: boolean) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{on ? "Yes" : "No"}</dd>
    </>
  );
}

export function adminPages(web: Hono<WebEnv>) {
  web.get("/admin", staff, (c) => configPage(c));
  web.post("/admin/config", staff, async (c) => {
    const key = text(c, "key");
    const value = text(c, "value");
    if (!isConfigKey(key)) throw new AppError("not_found");
    const result = await attempt(c, () => patchConfig(c.var.deps, c.var.user, { [key]: value }));
    if (!result.ok) return configPage(c, result.problem, { [key]: value });
    return redirect(c, "/admin", "config_saved");
  });
  web.post("/admin/config/:key/reset", staff, async (c) => {
    await resetConfigKey(c.var.deps, c.var.user, c.req.param("key"));
    return redirect(c, "/admin", "config_reset");
  });

  web.get("/admin/audit", staff, async (c) => {
    const cursor = c.req.query("cursor");
    const result = await attempt(c, () => listAudit(c.var.deps, { limit: 25, cursor }));
    const items = result.ok ? result.value.items : [];
    return page(
      c,
      "Admin: audit trail",
      <>
        <AdminNav />
        <table class="list">
          <caption class="visually-hidden">Staff actions, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Before</th>
              <th scope="col">After</th>
            </tr>
          </thead>
          <tbody>
            {items.map((a) => (
              <tr>
                <td data-label="When">
                  <Time iso={a.created_at} />
                </td>
                <td data-label="Who">{auditActor(a)}</td>
                <td data-label="Action">{a.action}</td>
                <td data-label="Target">{a.target}</td>
                <td data-label="Before">{a.old_value ?? "—"}</td>
                <td data-label="After">{a.new_value ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {result.ok ? <Pager path="/admin/audit" params={{}} next={result.value.next_cursor} first={!cursor} /> : null}
      </>,
      { error: result.ok ? null : result.problem.sentence },
    );
  });

  web.get("/admin/users", staff, async (c) => {
    const parsed = ListQuery.safeParse(c.req.query());
    const q = parsed.success ? parsed.data : { q: undefined, cursor: undefined, limit: 20 };
    const result = await attempt(c, () => searchUsers(c.var.deps, { q: q.q?.trim() || undefined, limit: 25, cursor: q.cursor }));
    const items = result.ok ? result.value.items : [];
    return page(
      c,
      "Admin: users",
      <>
        <AdminNav />
        <form method="get" action="/admin/users" class="filters" aria-label="Search accounts">
          <label for="f-q">Email or username starts with</label>
          <input id="f-q" name="q" type="search" value={q.q ?? ""} maxlength={254} />
          <button type="submit">Search</button>
        </form>
        <table class="list">
          <caption class="visually-hidden">Accounts, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Account</th>
              <th scope="col">Created</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {items.map((u) => (
              <tr>
                <td data-label="Account">
                  <a href={`/admin/users/${encodeURIComponent(u.id)}`}>{u.email}</a>
                  {u.username ? <span class="muted"> @{u.username}</span> : null}
                </td>
                <td data-label="Created">
                  <Time iso={u.created_at} />
                </td>
                <td data-label="State">
                  {[u.is_active ? "enabled" : "disabled", u.is_staff ? "staff" : null, u.email_verified ? "verified" : "unverified"]
                    .filter(Boolean)
                    .join(", ")}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {result.ok ? <Pager path="/admin/users" params={{ q: q.q }} next={result.value.next_cursor} first={!q.cursor} /> : null}
      </>,
      { error: result.ok ? null : result.problem.sentence },
    );
  });

  const userPage = async (c: WebContext, problem?: Problem) => {
    const id = c.req.param("id") ?? "";
    // Four independent reads, in one round of waiting.
    const [account, profile, activity, statuses] = await Promise.all([
      getUser(c.var.deps, id),
      attempt(c, () => getPublicProfile(c.var.deps, id)),
      listActivity(c.var.deps, id, { limit: 20 }),
      newestStatusesOf(c.var.deps, id, USER_PAGE_STATUSES),
    ]);
    const flag = (field: "is_active" | "is_staff" | "email_verified", value: boolean, label: string) => (
      <Form action={`/admin/users/${encodeURIComponent(id)}/flags`} csrf={c.var.csrf} class="inline" label={label}>
        <input type="hidden" name="field" value={field} />
        <input type="hidden" name="value" value={String(value)} />
        <button type="submit" class={value ? "secondary" : "danger"}>
          {label}
        </button>
      </Form>
    );
    return page(
      c,
      `Admin: ${account.email}`,
      <>
        <AdminNav />
        <section class="card" aria-label="Account">
          <dl class="facts">
            <dt>Id</dt>
            <dd>
              <code>{account.id}</code>
            </dd>
            <dt>Username</dt>
            <dd>{account.username ?? "—"}</dd>
            <dt>Created</dt>
            <dd>
              <Time iso={account.created_at} />
            </dd>
            {userFlag("Enabled", account.is_active)}
            {userFlag("Staff", account.is_staff)}
            {userFlag("Email verified", account.email_verified)}
            <dt>Active sessions</dt>
            <dd>{account.active_sessions}</dd>
            {profile.ok ? (
              <>
                <dt>Public name</dt>
                <dd>{[profile.value.name, profile.value.surname].filter(Boolean).join(" ") || "—"}</dd>
                <dt>Profession</dt>
                <dd>{profile.value.profession ?? "—"}</dd>
              </>
            ) : null}
          </dl>
          <div class="actions">
            {account.is_active ? flag("is_active", false, "Disable account") : flag("is_active", true, "Enable account")}
            {account.is_staff ? flag("is_staff", false, "Remove staff") : flag("is_staff", true, "Make staff")}
            {account.email_verified ? null : flag("email_verified", true, "Mark email verified")}
            <Form action={`/admin/users/${encodeURIComponent(id)}/logout-all`} csrf={c.var.csrf} class="inline" label="End every session">
              <button type="submit" class="danger">
                End every session
              </button>
            </Form>
          </div>
          {account.email_verified ? null : (
            <p class="hint">
              Marking the address verified ends the password it was registered with and every sign-in: whoever registered it may not own it.
              The owner then signs in with an emailed code or sets a password with “Forgot your password?”.
            </p>
          )}
        </section>
        <section aria-labelledby="u-statuses">
          <h2 id="u-statuses">Statuses</h2>
          <p class="muted">
            The {USER_PAGE_STATUSES} newest, also while the account is out of public view. Deleting one is recorded in the author's history
            as done by staff.
          </p>
          <StatusList
            items={statuses}
            remove={{
              action: (statusId) => `/admin/users/${encodeURIComponent(id)}/statuses/${encodeURIComponent(statusId)}/delete`,
              csrf: c.var.csrf,
            }}
          />
        </section>
        <section aria-labelledby="u-activity">
          <h2 id="u-activity">Recent activity</h2>
          <ActivityTable items={activity.items} />
        </section>
      </>,
      { status: problem ? problem.status : 200, error: problem?.sentence },
    );
  };

  web.get("/admin/users/:id", staff, (c) => userPage(c));
  web.post("/admin/users/:id/flags", staff, async (c) => {
    const field = text(c, "field");
    const value = text(c, "value");
    if (!["is_active", "is_staff", "email_verified"].includes(field) || !["true", "false"].includes(value)) {
      throw new AppError("validation_failed");
    }
    const result = await attempt(c, () => updateUserFlags(c.var.deps, c.var.user, c.req.param("id"), { [field]: value === "true" }));
    if (!result.ok) return userPage(c, result.problem);
    return redirect(c, `/admin/users/${encodeURIComponent(c.req.param("id"))}`, "user_saved");
  });
  web.post("/admin/users/:id/statuses/:statusId/delete", staff, async (c) => {
    const result = await attempt(c, () => deleteStatus(c.var.deps, c.var.user, c.req.param("statusId")));
    if (!result.ok) return userPage(c, result.problem);
    return redirect(c, `/admin/users/${encodeURIComponent(c.req.param("id"))}`, "status_deleted");
  });
  web.post("/admin/users/:id/logout-all", staff, async (c) => {
    await adminLogoutAll(c.var.deps, c.var.user, c.req.param("id"));
    return redirect(c, `/admin/users/${encodeURIComponent(c.req.param("id"))}`, "user_sessions_ended");
  });
}
