/** The public directory and public profiles: only what the API shows anyone (never email, phone or age). */
import { z } from "@hono/zod-openapi";
import type { Hono } from "hono";
import { countDirectoryRead, findPublicProfile, listDirectory, type PublicProfileView } from "../../features/profiles/profiles.service";
import { listStatuses } from "../../features/statuses/statuses.service";
import { pageQuery } from "../../lib/pagination";
import type { WebEnv } from "../web.env";
import { attempt, page } from "../web.kit";
import { Pager, StatusList } from "../web.layout";
import { webPage } from "../web.middleware";

const anyone = webPage({ access: "any" });
const DirectoryQuery = z.object({ q: z.string().max(100).optional(), ...pageQuery });

const displayName = (p: PublicProfileView) => [p.name, p.surname].filter(Boolean).join(" ") || p.username || "Anonymous";

export function peoplePages(web: Hono<WebEnv>) {
  // Both pages read the directory for anyone, so each counts against the client's allowance first,
  // outside `attempt`: past it the answer is the 429 error page (with Retry-After), not a form error.
  web.get("/people", anyone, async (c) => {
    await countDirectoryRead(c.var.deps);
    const parsed = DirectoryQuery.safeParse(c.req.query());
    const q = parsed.success ? parsed.data : { q: undefined, cursor: undefined, limit: 20 };
    const result = await attempt(c, () => listDirectory(c.var.deps, { q: q.q?.trim() || undefined, limit: 20, cursor: q.cursor }));
    const items = result.ok ? result.value.items : [];
    return page(
      c,
      "People",
      <>
        <form method="get" action="/people" class="filters" aria-label="Search people">
          <label for="f-q">Search by username or name</label>
          <input id="f-q" name="q" type="search" value={q.q ?? ""} maxlength={100} />
          <button type="submit">Search</button>
        </form>
        {items.length === 0 ? <p class="muted">No one found.</p> : null}
        <ul class="people">
          {items.map((p) => (
            <li class="card person">
              {p.avatar_url ? (
                <img class="avatar" src={p.avatar_url} alt="" width={48} height={48} />
              ) : (
                <span class="avatar placeholder small" aria-hidden="true" />
              )}
              <div>
                <a href={`/people/${encodeURIComponent(p.username ?? p.user_id)}`}>{displayName(p)}</a>
                {p.username ? <span class="muted"> @{p.username}</span> : null}
                {p.profession ? <p class="meta">{p.profession}</p> : null}
              </div>
            </li>
          ))}
        </ul>
        {result.ok ? <Pager path="/people" params={{ q: q.q }} next={result.value.next_cursor} first={!q.cursor} /> : null}
      </>,
      { error: result.ok ? null : result.problem.sentence, status: result.ok ? 200 : 400 },
    );
  });

  web.get("/people/:key", anyone, async (c) => {
    await countDirectoryRead(c.var.deps);
    const profile = await findPublicProfile(c.var.deps, c.req.param("key"));
    const cursor = c.req.query("cursor");
    const statuses = await attempt(c, () => listStatuses(c.var.deps, { userId: profile.user_id, limit: 20, cursor }));
    const items = statuses.ok ? statuses.value.items : [];
    return page(
      c,
      displayName(profile),
      <>
        <section class="card profile" aria-label="Profile">
          {profile.avatar_url ? (
            <img class="avatar" src={profile.avatar_url} alt={`Avatar of ${displayName(profile)}`} width={96} height={96} />
          ) : (
            <span class="avatar placeholder" role="img" aria-label="No profile picture" />
          )}
          <dl class="facts">
            {profile.username ? (
              <>
                <dt>Username</dt>
                <dd>@{profile.username}</dd>
              </>
            ) : null}
            {profile.profession ? (
              <>
                <dt>Profession</dt>
                <dd>{profile.profession}</dd>
              </>
            ) : null}
            {profile.about_me ? (
              <>
                <dt>About</dt>
                <dd class="prose">{profile.about_me}</dd>
              </>
            ) : null}
          </dl>
        </section>
        <section aria-labelledby="their-statuses">
          <h2 id="their-statuses">Statuses</h2>
          <StatusList items={items} />
          {statuses.ok ? (
            <Pager
              path={`/people/${encodeURIComponent(c.req.param("key"))}`}
              params={{}}
              next={statuses.value.next_cursor}
              first={!cursor}
            />
          ) : null}
        </section>
      </>,
    );
  });
}
