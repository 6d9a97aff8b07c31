/** The signed-in user's pages: profile with statuses, settings, activity, sessions. */
import { z } from "@hono/zod-openapi";
import type { Hono } from "hono";
import { ACTIVITY_TYPES } from "../../features/activity/activity.record";
import { listActivity } from "../../features/activity/activity.service";
import { EmailSchema, PasswordSchema, UsernameSchema } from "../../features/auth/auth.schemas";
import { logoutAll } from "../../features/auth/tokens.service";
import { EXPORT_DOWNLOAD_HEADERS, exportUserData } from "../../features/export/export.service";
import { changePassword, confirmEmailChange, deleteMe, meView, updateMe } from "../../features/me/me.service";
import { CodeSchema } from "../../features/otp/otp.schemas";
import { requestCode } from "../../features/otp/otp-flows.service";
import { AVATAR_FORMATS, AVATAR_MAX_BYTES, AVATAR_MAX_SIDE } from "../../features/profiles/avatar.image";
import { deleteAvatar, uploadAvatar } from "../../features/profiles/avatar.service";
import { PROFILE_LIMITS, ReplaceProfileSchema } from "../../features/profiles/profiles.schemas";
import { loadOwnProfile, prepareProfileUpdate, updateProfile } from "../../features/profiles/profiles.service";
import { listSessions, revokeSession } from "../../features/sessions/sessions.service";
import { CreateStatusSchema, ReplaceStatusSchema, STATUS_MAX_LENGTH } from "../../features/statuses/statuses.schemas";
import { createStatus, deleteStatus, getStatus, listStatuses, updateStatus } from "../../features/statuses/statuses.service";
import { AppError } from "../../lib/errors";
import { jsonStreamResponse } from "../../lib/json-stream";
import { pageQuery } from "../../lib/pagination";
import { logUnexpectedError } from "../../middleware/request-log";
import type { WebEnv } from "../web.env";
import { attempt, form, formStatus, type Problem, page, parseWith, redirect, text, type WebContext } from "../web.kit";
import { ActivityTable, Field, type FieldErrors, Form, Pager, StatusList, Time } from "../web.layout";
import { ACTIVITY_LABELS, deviceName } from "../web.messages";
import { webPage } from "../web.middleware";
import { clearTokenCookies } from "../web.session";

const user = webPage({ access: "user" });
const upload = webPage({ access: "user", upload: true });
const ListQuery = z.object({ ...pageQuery, type: z.enum(ACTIVITY_TYPES).optional() });

type Me = ReturnType<typeof meView>;

async function loadMe(c: WebContext): Promise<Me> {
  return meView(c.var.user, c.var.profile ?? (await loadOwnProfile(c.var.deps, c.var.user.id)));
}

const Avatar = ({ url, size }: { url: string | null; size: number }) =>
  url ? (
    <img class="avatar" src={url} alt="Your avatar" width={size} height={size} />
  ) : (
    <span class="avatar placeholder" role="img" aria-label="No profile picture" />
  );

const show = (value: string | number | null) => (value === null || value === "" ? <span class="muted">Not set</span> : String(value));

// ---- profile page ------------------------------------------------------------------------

async function profilePage(c: WebContext, statusError?: Problem, draft = "") {
  const me = await loadMe(c);
  const query = ListQuery.safeParse(c.req.query());
  const cursor = query.success ? query.data.cursor : undefined;
  const statuses = await attempt(c, () => listStatuses(c.var.deps, { userId: me.id, limit: 10, cursor }));
  const items = statuses.ok ? statuses.value.items : [];
  const p = me.profile;
  return page(
    c,
    "Your profile",
    <>
      <section class="card profile" aria-labelledby="who">
        <Avatar url={p.avatar_url} size={96} />
        <div>
          <h2 id="who">{[p.name, p.surname].filter(Boolean).join(" ") || me.username || me.email}</h2>
          <dl class="facts">
            <dt>Username</dt>
            <dd>{show(me.username)}</dd>
            <dt>Email</dt>
            <dd>
              {me.email}
              {me.pending_email ? <span class="muted"> (changing to {me.pending_email})</span> : null}
            </dd>
            <dt>Name</dt>
            <dd>{show(p.name)}</dd>
            <dt>Surname</dt>
            <dd>{show(p.surname)}</dd>
            <dt>Age</dt>
            <dd>{show(p.age)}</dd>
            <dt>Phone</dt>
            <dd>{show(p.phone_number)}</dd>
            <dt>Profession</dt>
            <dd>{show(p.profession)}</dd>
            <dt>About me</dt>
            <dd class="prose">{show(p.about_me)}</dd>
            <dt>Member since</dt>
            <dd>
              <Time iso={me.created_at} />
            </dd>
          </dl>
          <p>
            <a href="/settings">Edit your profile</a>
          </p>
        </div>
      </section>
      <section aria-labelledby="statuses">
        <h2 id="statuses">Your statuses</h2>
        <Form action="/profilepage/statuses" csrf={c.var.csrf} label="Post a status">
          <Field
            name="content"
            label="What's on your mind?"
            multiline
            value={draft}
            errors={statusError?.fields}
            hint={`Up to ${STATUS_MAX_LENGTH} characters; everyone can see it.`}
          />
          <button type="submit">Post</button>
        </Form>
        <StatusList
          items={items}
          editHref={(id) => `/profilepage/statuses/${encodeURIComponent(id)}/edit`}
          remove={{ action: (id) => `/profilepage/statuses/${encodeURIComponent(id)}/delete`, csrf: c.var.csrf }}
        />
        {statuses.ok ? <Pager path="/profilepage" params={{}} next={statuses.value.next_cursor} first={!cursor} /> : null}
      </section>
    </>,
    { status: statusError ? formStatus(statusError) : 200, error: statusError?.sentence },
  );
}

function profileRoutes(web: Hono<WebEnv>) {
  web.get("/profilepage", user, (c) => profilePage(c));
  web.post("/profilepage/statuses", user, async (c) => {
    const content = text(c, "content");
    // The API's own schema: the same length, trimming and control-character rules as POST /statuses.
    const result = await attempt(c, () => createStatus(c.var.deps, c.var.user, parseWith(CreateStatusSchema, { content }).content));
    if (!result.ok) return profilePage(c, result.problem, content);
    return redirect(c, "/profilepage", "status_posted");
  });
  const editPage = (c: WebContext, id: string, content: string, problem?: Problem) =>
    page(
      c,
      "Edit status",
      <Form action={`/profilepage/statuses/${encodeURIComponent(id)}`} csrf={c.var.csrf} label="Edit status">
        <Field name="content" label="Status" multiline value={content} errors={problem?.fields} required />
        <button type="submit">Save</button> <a href="/profilepage">Cancel</a>
      </Form>,
      { status: problem ? 400 : 200, error: problem?.sentence },
    );
  web.get("/profilepage/statuses/:id/edit", user, async (c) => {
    const id = c.req.param("id");
    const status = await getStatus(c.var.deps, id);
    if (status.user_id !== c.var.user.id) throw new AppError("not_found");
    return editPage(c, id, status.content);
  });
  web.post("/profilepage/statuses/:id", user, async (c) => {
    const id = c.req.param("id");
    const content = text(c, "content");
    const existing = await getStatus(c.var.deps, id);
    // Staff may edit anyone's status through the API; these pages only ever offer one's own.
    if (existing.user_id !== c.var.user.id) throw new AppError("not_found");
    const result = await attempt(c, () => updateStatus(c.var.deps, c.var.user, id, parseWith(ReplaceStatusSchema, { content }).content));
    if (!result.ok) return editPage(c, id, content, result.problem);
    return redirect(c, "/profilepage", "status_saved");
  });
  web.post("/profilepage/statuses/:id/delete", user, async (c) => {
    const id = c.req.param("id");
    const existing = await getStatus(c.var.deps, id);
    if (existing.user_id !== c.var.user.id) throw new AppError("not_found");
    await deleteStatus(c.var.deps, c.var.user, id);
    return redirect(c, "/profilepage", "status_deleted");
  });
}

// ---- settings ----------------------------------------------------------------------------

interface SettingsState {
  section?: "profile" | "avatar" | "password" | "email" | "email_code" | "delete";
  problem?: Problem;
  values?: Record<string, string>;
}

const ACCEPTED_TYPES = Object.values(AVATAR_FORMATS)
  .map((f) => f.contentType)
  .join(",");

async function settingsPage(c: WebContext, state: SettingsState = {}) {
  const me = await loadMe(c);
  const p = me.profile;
  const err = (section: SettingsState["section"]): FieldErrors => (state.section === section ? (state.problem?.fields ?? {}) : {});
  const v = (name: string, fallback: string | number | null) => (state.values && name in state.values ? state.values[name] : fallback);
  return page(
    c,
    "Settings",
    <>
      <section aria-labelledby="s-profile" class="card">
        <h2 id="s-profile">Profile</h2>
        <Form action="/settings/profile" csrf={c.var.csrf} label="Profile">
          <Field
            name="username"
            label="Username"
            value={v("username", me.username)}
            errors={err("profile")}
            autocomplete="username"
            maxlength={30}
            hint="3–30 letters, digits, '_', '.' or '-'. Shown on your public profile."
          />
          <Field
            name="name"
            label="Name"
            value={v("name", p.name)}
            errors={err("profile")}
            autocomplete="given-name"
            hint={`Up to ${PROFILE_LIMITS.name} characters. Public.`}
          />
          <Field
            name="surname"
            label="Surname"
            value={v("surname", p.surname)}
            errors={err("profile")}
            autocomplete="family-name"
            hint={`Up to ${PROFILE_LIMITS.surname} characters. Public.`}
          />
          <Field
            name="age"
            label="Age"
            type="number"
            value={v("age", p.age)}
            errors={err("profile")}
            min={0}
            max={PROFILE_LIMITS.age}
            inputmode="numeric"
            hint={`A whole number from 0 to ${PROFILE_LIMITS.age}. Private.`}
          />
          <Field
            name="phone_number"
            label="Phone number"
            type="tel"
            value={v("phone_number", p.phone_number)}
            errors={err("profile")}
            autocomplete="tel"
            hint="International form, e.g. +44 20 7946 0958. Private."
          />
          <Field
            name="profession"
            label="Profession"
            value={v("profession", p.profession)}
            errors={err("profile")}
            autocomplete="organization-title"
            hint={`Up to ${PROFILE_LIMITS.profession} characters. Public.`}
          />
          <Field
            name="about_me"
            label="About me"
            multiline
            value={v("about_me", p.about_me)}
            errors={err("profile")}
            hint={`Up to ${PROFILE_LIMITS.about_me} characters. Public.`}
          />
          <button type="submit">Save profile</button>
        </Form>
      </section>

      <section aria-labelledby="s-avatar" class="card">
        <h2 id="s-avatar">Profile picture</h2>
        <div class="avatar-row">
          <Avatar url={p.avatar_url} size={96} />
          <img id="avatar-preview" class="avatar" alt="Preview of the chosen avatar" width={96} height={96} hidden />
        </div>
        <Form action="/settings/avatar" csrf={c.var.csrf} multipart label="Upload a profile picture">
          <Field
            name="profileimg"
            label="Choose a picture"
            type="file"
            accept={ACCEPTED_TYPES}
            errors={err("avatar")}
            required
            hint={`PNG, JPEG, WebP or GIF, at most ${AVATAR_MAX_BYTES / 1024 / 1024} MiB and ${AVATAR_MAX_SIDE}×${AVATAR_MAX_SIDE} pixels.`}
          />
          <button type="submit">Upload picture</button>
        </Form>
        {p.avatar_url ? (
          <Form action="/settings/avatar/delete" csrf={c.var.csrf} label="Remove the profile picture">
            <button type="submit" class="secondary">
              Remove picture
            </button>
          </Form>
        ) : null}
      </section>

      <section aria-labelledby="s-password" class="card">
        <h2 id="s-password">Password</h2>
        {me.has_password ? null : (
          <>
            <p class="hint">
              Your account has no password yet (you signed in with a code). To choose one, ask for a code: we email it to{" "}
              <strong>{me.email}</strong>.
            </p>
            <Form action="/settings/password/code" csrf={c.var.csrf} label="Email me a code to choose a password">
              <button type="submit" class="secondary">
                Email me a code
              </button>
            </Form>
          </>
        )}
        <Form action="/settings/password" csrf={c.var.csrf} label="Change password">
          {me.has_password ? (
            <Field
              name="current_password"
              label="Current password"
              type="password"
              errors={err("password")}
              autocomplete="current-password"
              required
            />
          ) : (
            <Field
              name="code"
              label="Code from the email"
              errors={err("password")}
              autocomplete="one-time-code"
              inputmode="numeric"
              required
              maxlength={12}
            />
          )}
          <Field
            name="new_password"
            label="New password"
            type="password"
            errors={err("password")}
            autocomplete="new-password"
            required
            hint="At least 8 characters; not a common password, and not your email or username. Your other sign-ins will end."
          />
          <Field
            name="new_password_again"
            label="New password again"
            type="password"
            errors={err("password")}
            autocomplete="new-password"
            required
          />
          <button type="submit">Change password</button>
        </Form>
      </section>

      <section aria-labelledby="s-email" class="card">
        <h2 id="s-email">Email address</h2>
        <p>
          Your address is <strong>{me.email}</strong>.
        </p>
        {me.pending_email ? (
          <>
            <p>
              Changing to <strong>{me.pending_email}</strong>: enter the code we emailed there.
            </p>
            <Form action="/settings/email/verify" csrf={c.var.csrf} label="Confirm the new email address">
              <Field
                name="code"
                label="Code"
                errors={err("email_code")}
                autocomplete="one-time-code"
                inputmode="numeric"
                required
                maxlength={12}
              />
              <button type="submit">Confirm new address</button>
            </Form>
            <Form action="/settings/email/cancel" csrf={c.var.csrf} label="Cancel the email change">
              <button type="submit" class="secondary">
                Cancel the change
              </button>
            </Form>
          </>
        ) : null}
        <Form action="/settings/email" csrf={c.var.csrf} label="Change email address">
          <Field
            name="email"
            label="New email address"
            type="email"
            value={v("email", "")}
            errors={err("email")}
            autocomplete="email"
            required
          />
          <Field
            name="current_password"
            label="Current password"
            type="password"
            errors={err("email")}
            autocomplete="current-password"
            required
          />
          <button type="submit">Send a code to the new address</button>
        </Form>
      </section>

      <section aria-labelledby="s-data" class="card">
        <h2 id="s-data">Your data</h2>
        <p>One file with everything stored about you: account, profile, statuses, your whole history and every sign-in.</p>
        <p>
          <a href="/settings/export" download>
            Download your data
          </a>{" "}
          (JSON)
        </p>
      </section>

      <section aria-labelledby="s-delete" class="card danger-zone">
        <h2 id="s-delete">Delete account</h2>
        <p>This deletes your account, profile, statuses and history for good.</p>
        <Form action="/settings/delete" csrf={c.var.csrf} label="Delete account">
          <Field
            name="current_password"
            label="Current password"
            type="password"
            errors={err("delete")}
            autocomplete="current-password"
            required
          />
          <div class={err("delete").confirm ? "field invalid" : "field"}>
            <input
              type="checkbox"
              id="f-confirm"
              name="confirm"
              value="yes"
              required
              aria-describedby={err("delete").confirm ? "f-confirm-error" : undefined}
            />
            <label for="f-confirm">I understand this cannot be undone</label>
            {err("delete").confirm ? (
              <p class="field-error" id="f-confirm-error" role="alert">
                {err("delete").confirm}
              </p>
            ) : null}
          </div>
          <button type="submit" class="danger">
            Delete my account
          </button>
        </Form>
      </section>
    </>,
    {
      status: state.problem ? state.problem.status : 200,
      error: state.problem?.sentence,
      scripts: ["/web/avatar-preview.js"],
    },
  );
}

const optional = (value: string) => (value.trim() === "" ? null : value);

function settingsRoutes(web: Hono<WebEnv>) {
  web.get("/settings", user, (c) => settingsPage(c));

  web.post("/settings/profile", user, async (c) => {
    const names = ["username", "name", "surname", "age", "phone_number", "profession", "about_me"];
    const values = Object.fromEntries(names.map((n) => [n, text(c, n)]));
    const result = await attempt(c, async () => {
      const age = values.age?.trim() ?? "";
      const input = parseWith(ReplaceProfileSchema, {
        name: values.name,
        surname: values.surname,
        age: age === "" ? null : /^-?\d+$/.test(age) ? Number(age) : age,
        phone_number: values.phone_number,
        profession: values.profession,
        about_me: values.about_me,
      });
      const username = optional(values.username ?? "");
      const parsedUsername = username === null ? null : parseWith(z.object({ username: UsernameSchema }), { username }).username;
      if (parsedUsername === c.var.user.username) {
        await updateProfile(c.var.deps, c.var.user, input, "replace");
      } else {
        // One transaction for both: a rename is never saved without the rest of its form.
        const { update } = await prepareProfileUpdate(c.var.deps, c.var.user, input, "replace");
        await updateMe(c.var.deps, c.var.user, { username: parsedUsername }, "patch", update);
      }
    });
    if (!result.ok) return settingsPage(c, { section: "profile", problem: result.problem, values });
    return redirect(c, "/settings", "settings_saved");
  });

  web.post("/settings/avatar", upload, async (c) => {
    const file = form(c).profileimg;
    const result = await attempt(
      c,
      async () => {
        if (!(file instanceof File) || file.size === 0)
          throw new AppError("validation_failed", "profileimg", {
            errors: [{ path: "profileimg", message: "choose a picture to upload" }],
          });
        if (file.size > AVATAR_MAX_BYTES) throw new AppError("payload_too_large");
        return uploadAvatar(c.var.deps, c.var.user, c.var.token.sessionId, new Uint8Array(await file.arrayBuffer()));
      },
      { avatar: "profileimg" },
    );
    if (!result.ok) {
      const problem = result.problem;
      if (!problem.fields.profileimg) problem.fields.profileimg = problem.sentence;
      return settingsPage(c, { section: "avatar", problem });
    }
    return redirect(c, "/settings", "avatar_saved");
  });

  web.post("/settings/avatar/delete", user, async (c) => {
    await deleteAvatar(c.var.deps, c.var.user, c.var.token.sessionId);
    return redirect(c, "/settings", "avatar_removed");
  });

  // An account without a password proves its mailbox to choose one (see changePassword).
  web.post("/settings/password/code", user, async (c) => {
    const result = await attempt(c, () => requestCode(c.var.deps, { email: c.var.user.email, purpose: "reset_password" }));
    if (!result.ok) return settingsPage(c, { section: "password", problem: result.problem });
    return redirect(c, "/settings", "password_code_sent");
  });

  web.post("/settings/password", user, async (c) => {
    const result = await attempt(c, async () => {
      const input = parseWith(
        z.object({
          current_password: PasswordSchema.optional(),
          code: CodeSchema.optional(),
          new_password: PasswordSchema,
          new_password_again: z.string(),
        }),
        {
          current_password: text(c, "current_password") || undefined,
          code: text(c, "code") || undefined,
          new_password: text(c, "new_password"),
          new_password_again: text(c, "new_password_again"),
        },
      );
      if (input.new_password !== input.new_password_again) {
        throw new AppError("validation_failed", "new_password_again", {
          errors: [{ path: "new_password_again", message: "the two passwords do not match" }],
        });
      }
      await changePassword(c.var.deps, c.var.user, c.var.token.sessionId, input);
    });
    if (!result.ok) {
      const problem = result.problem;
      if (problem.code === "invalid_code") problem.fields.code = problem.sentence;
      return settingsPage(c, { section: "password", problem });
    }
    // This sign-in continues: its access token was cut off with every other, and the next page rotates the refresh cookie.
    return redirect(c, "/settings", "password_changed");
  });

  web.post("/settings/email", user, async (c) => {
    const values = { email: text(c, "email") };
    const result = await attempt(c, async () => {
      const input = parseWith(z.object({ email: EmailSchema, current_password: PasswordSchema }), {
        email: values.email,
        current_password: text(c, "current_password"),
      });
      if (input.email === c.var.user.email)
        throw new AppError("validation_failed", "email", { errors: [{ path: "email", message: "this is already your address" }] });
      await updateMe(c.var.deps, c.var.user, input, "patch");
    });
    if (!result.ok) return settingsPage(c, { section: "email", problem: result.problem, values });
    return redirect(c, "/settings", "email_change_started");
  });

  web.post("/settings/email/verify", user, async (c) => {
    const result = await attempt(c, async () => {
      const { code } = parseWith(z.object({ code: CodeSchema }), { code: text(c, "code") });
      await confirmEmailChange(c.var.deps, c.var.user, c.var.token.sessionId, code);
    });
    if (!result.ok) {
      const problem = result.problem;
      if (problem.code === "invalid_code") problem.fields.code = problem.sentence;
      return settingsPage(c, { section: "email_code", problem });
    }
    return redirect(c, "/settings", "email_changed");
  });

  web.post("/settings/email/cancel", user, async (c) => {
    await updateMe(c.var.deps, c.var.user, { email: c.var.user.email }, "patch");
    return redirect(c, "/settings", "email_change_cancelled");
  });

  // The same export as GET /api/v1/me/export, read at the primary like every website page.
  web.get("/settings/export", user, async (c) =>
    jsonStreamResponse(c, await exportUserData(c.var.deps, c.var.user, (error) => logUnexpectedError(c, error)), EXPORT_DOWNLOAD_HEADERS),
  );

  web.post("/settings/delete", user, async (c) => {
    const result = await attempt(c, async () => {
      if (text(c, "confirm") !== "yes") {
        throw new AppError("validation_failed", "confirm", { errors: [{ path: "confirm", message: "tick the box to confirm" }] });
      }
      const { current_password } = parseWith(z.object({ current_password: PasswordSchema }), {
        current_password: text(c, "current_password"),
      });
      await deleteMe(c.var.deps, c.var.user, current_password);
    });
    if (!result.ok) return settingsPage(c, { section: "delete", problem: result.problem });
    clearTokenCookies(c);
    return redirect(c, "/login", "account_deleted");
  });
}

// ---- activity ----------------------------------------------------------------------------

function activityRoutes(web: Hono<WebEnv>) {
  web.get("/activity", user, async (c) => {
    const query = ListQuery.safeParse(c.req.query());
    const q = query.success ? query.data : { limit: 20, cursor: undefined, type: undefined };
    const result = await attempt(c, () => listActivity(c.var.deps, c.var.user.id, { type: q.type, limit: 20, cursor: q.cursor }));
    const items = result.ok ? result.value.items : [];
    return page(
      c,
      "Activity",
      <>
        <form method="get" action="/activity" class="filters" aria-label="Filter activity">
          <label for="f-type">Show</label>
          <select id="f-type" name="type">
            <option value="">Everything</option>
            {ACTIVITY_TYPES.map((t) => (
              <option value={t} selected={q.type === t}>
                {ACTIVITY_LABELS[t] ?? t}
              </option>
            ))}
          </select>
          <button type="submit">Filter</button>
        </form>
        {items.length === 0 ? <p class="muted">Nothing to show.</p> : null}
        <ActivityTable items={items} caption="Your account's history, newest first" />
        {result.ok ? <Pager path="/activity" params={{ type: q.type }} next={result.value.next_cursor} first={!q.cursor} /> : null}
      </>,
      { error: result.ok ? null : result.problem.sentence },
    );
  });
}

// ---- sessions ----------------------------------------------------------------------------

function sessionRoutes(web: Hono<WebEnv>) {
  web.get("/sessions", user, async (c) => {
    const sessions = await listSessions(c.var.deps, c.var.user.id, c.var.token.sessionId);
    return page(
      c,
      "Sessions",
      <>
        <p>Every browser and app signed in to your account.</p>
        <ul class="sessions">
          {sessions.map((s) => (
            <li class={s.current ? "card current" : "card"}>
              <p>
                <strong>{deviceName(s.user_agent)}</strong>
                {s.current ? <span class="badge">This browser</span> : null}
              </p>
              <p class="meta">
                Signed in <Time iso={s.created_at} /> · last active <Time iso={s.last_used_at} /> · IP {s.ip ?? "unknown"}
              </p>
              {s.current ? null : (
                <Form action={`/sessions/${encodeURIComponent(s.id)}/end`} csrf={c.var.csrf} class="inline" label="Sign out this session">
                  <button type="submit" class="secondary small">
                    Sign out<span class="visually-hidden"> {deviceName(s.user_agent)}</span>
                  </button>
                </Form>
              )}
            </li>
          ))}
        </ul>
        {sessions.length > 1 ? (
          <Form action="/sessions/end-others" csrf={c.var.csrf} label="Sign out every other session">
            <button type="submit" class="danger">
              Sign out every other session
            </button>
          </Form>
        ) : null}
      </>,
    );
  });
  web.post("/sessions/:id/end", user, async (c) => {
    const result = await attempt(c, () => revokeSession(c.var.deps, c.var.user.id, c.req.param("id")));
    // Already ended (another tab): the list shows the truth either way.
    return redirect(c, "/sessions", result.ok ? "session_ended" : undefined);
  });
  web.post("/sessions/end-others", user, async (c) => {
    await logoutAll(c.var.deps, c.var.user, c.var.token.sessionId);
    return redirect(c, "/sessions", "others_ended");
  });
}

export function mePages(web: Hono<WebEnv>) {
  profileRoutes(web);
  settingsRoutes(web);
  activityRoutes(web);
  sessionRoutes(web);
}
