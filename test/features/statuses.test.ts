import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { probeD1 } from "../d1-wrap";
import { BIDI_FORMATTING, codePoint, harness, STANDARD_PASSWORD, setConfig, unique } from "../helpers";
import { capturingEnv } from "../mail-helpers";

const h = harness();

async function makeStaff(userId: string) {
  await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(userId).run();
}

async function post(token: string, content: unknown) {
  return h.call("POST", "/api/v1/statuses", { content }, { token });
}

async function activityOf(userId: string, type: string) {
  const { results } = await env.DB.prepare("SELECT * FROM activity WHERE user_id = ? AND type = ? ORDER BY created_at, id")
    .bind(userId, type)
    .all<{ details: string; ip: string | null; user_agent: string | null }>();
  return results.map((r) => ({ ...r, details: JSON.parse(r.details) }));
}

/** Admin audit entries about the status `id`, oldest first. */
async function auditOf(id: string) {
  const { results } = await env.DB.prepare(
    "SELECT actor_id, action, old_value, new_value FROM admin_audit WHERE target = ? ORDER BY created_at, id",
  )
    .bind(id)
    .all<{ actor_id: string; action: string; old_value: string | null; new_value: string | null }>();
  return results.map((r) => ({
    ...r,
    old_value: r.old_value && JSON.parse(r.old_value),
    new_value: r.new_value && JSON.parse(r.new_value),
  }));
}

async function statusCount(userId: string) {
  const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM statuses WHERE user_id = ?").bind(userId).first<{ n: number }>();
  return row?.n ?? 0;
}

describe("POST /statuses", () => {
  it("publishes a status with its author's username and records status_created", async () => {
    const u = await h.signedInUser();
    const res = await post(u.access_token, "  Hello, world!  ");
    expect(res.status).toBe(201);
    const status = res.json.status;
    expect(status).toMatchObject({ user_id: u.id, username: u.username, content: "Hello, world!" });
    expect(Object.keys(status).sort()).toEqual(["content", "created_at", "id", "updated_at", "user_id", "username"]);
    expect(status.created_at).toBe(new Date(h.clock.now()).toISOString());
    expect(status.updated_at).toBe(status.created_at);
    const entries = await activityOf(u.id, "status_created");
    expect(entries).toHaveLength(1);
    expect(entries[0]?.details).toEqual({ status_id: status.id });
  });

  it("names the new status in Location (RFC 9110 §15.3.2), where GET reads it", async () => {
    const u = await h.signedInUser();
    const res = await post(u.access_token, "located");
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`/api/v1/statuses/${res.json.status.id}`);
    const read = await h.call("GET", res.headers.get("location") as string);
    expect(read.json.status).toEqual(res.json.status);
  });

  it("accepts exactly 500 characters after trimming, counting code points, and keeps line breaks", async () => {
    const u = await h.signedInUser();
    const emoji = "😀".repeat(500);
    expect((await post(u.access_token, `   ${emoji}\n `)).status).toBe(201);
    const multiline = await post(u.access_token, "line one\nline two\tend");
    expect(multiline.status).toBe(201);
    expect(multiline.json.status.content).toBe("line one\nline two\tend");
  });

  it.each([
    ["empty", ""],
    ["whitespace only", "   \n\t "],
    ["501 characters", "a".repeat(501)],
    ["a control character", "hello\u0007there"],
    ["a bidi override", "abc\u202Edef"],
    ["a lone high surrogate (stored as U+FFFD: 500 of them read back as 1,500 characters)", "\uD800".repeat(500)],
    ["a lone low surrogate", "abc\uDC00"],
    ["a number", 42],
    ["null", null],
  ])("refuses content that is %s with 400 and writes nothing", async (_label, content) => {
    const u = await h.signedInUser();
    const res = await post(u.access_token, content);
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.errors[0].path).toBe("content");
    expect(await statusCount(u.id)).toBe(0);
    expect(await activityOf(u.id, "status_created")).toHaveLength(0);
  });

  it("refuses every bidi formatting character, and keeps the marks and zero-width joiners writers, emoji and scripts need", async () => {
    const u = await h.signedInUser();
    for (const ch of BIDI_FORMATTING) {
      const res = await post(u.access_token, `abc ${ch}def`);
      expect(res.status, codePoint(ch)).toBe(400);
      expect(res.json.errors[0].path).toBe("content");
    }
    expect(await statusCount(u.id)).toBe(0);
    // A right-to-left mark keeps the exclamation mark at the end of the Persian sentence.
    const content = "می\u200Cخواهم 👩\u200D💻 🏳️\u200D🌈 سلام!\u200F \u061C٣";
    const res = await post(u.access_token, content);
    expect(res.status).toBe(201);
    expect(res.json.status.content).toBe(content);
  });

  it("refuses more than 16 marks stacked on one character (Zalgo text, drawn over the statuses around it), counted across the zero-width characters between them", async () => {
    const u = await h.signedInUser();
    for (const content of [`x${"\u0301\u0316".repeat(240)}`, `x${"\u0301".repeat(17)}`, `Hi x${`${"\u0301".repeat(6)}\u200b`.repeat(3)}`]) {
      const res = await post(u.access_token, content);
      expect(res.status).toBe(400);
      expect(res.json.errors).toEqual([
        expect.objectContaining({ path: "content", message: "must not stack more than 16 marks on one character" }),
      ]);
    }
    expect(await statusCount(u.id)).toBe(0);
    // Prose may carry more than a name: sixteen marks on one character, and a mark or two on every letter.
    for (const content of [`x${"\u0301\u0316".repeat(8)}`, "Nguyê\u0303n".normalize("NFD").repeat(20), "בְּרֵאשִׁ֖ית בָּרָ֣א"]) {
      expect((await post(u.access_token, content)).status, content).toBe(201);
    }
  });

  it("stores a line or paragraph separator as a newline, the one line break statuses hold", async () => {
    const u = await h.signedInUser();
    const res = await post(u.access_token, "Shipping today.\u2028Really.\u2029New paragraph.");
    expect(res.status).toBe(201);
    expect(res.json.status.content).toBe("Shipping today.\nReally.\nNew paragraph.");
  });

  it("publishes nothing for a request whose sign-in was ended (logout-all) while it was under way: 401", async () => {
    const u = await h.signedInUser();
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/insert into "statuses"/, async () => {
      const owner = await h.login(u.email, u.password);
      expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: owner.access_token })).status).toBe(204);
    });
    const res = await h.call(
      "POST",
      "/api/v1/statuses",
      { content: "posted by a thief" },
      { token: u.access_token, env: { ...env, DB: probe.db } },
    );
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(401);
    expect(await statusCount(u.id)).toBe(0);
    expect(await activityOf(u.id, "status_created")).toHaveLength(0);
  });

  it("refuses a user_id in the body (the author is always the caller)", async () => {
    const u = await h.signedInUser();
    const other = await h.registerVerified();
    const res = await h.call("POST", "/api/v1/statuses", { content: "hi", user_id: other.id }, { token: u.access_token });
    expect(res.status).toBe(400);
    expect(res.json.errors[0].path).toBe("user_id");
    expect(await statusCount(other.id)).toBe(0);
    expect(await statusCount(u.id)).toBe(0);
  });

  it("needs a token", async () => {
    const res = await h.call("POST", "/api/v1/statuses", { content: "anonymous" });
    expect(res.status).toBe(401);
  });

  it("allows 30 statuses a minute per user, then answers 429 with Retry-After until the window ends", async () => {
    const u = await h.signedInUser();
    const other = await h.signedInUser();
    for (let i = 0; i < 30; i++) expect((await post(u.access_token, `post ${i}`)).status).toBe(201);
    h.clock.advance(20_000);
    const refused = await post(u.access_token, "one too many");
    expect(refused.status).toBe(429);
    expect(refused.json.code).toBe("rate_limited");
    expect(refused.headers.get("retry-after")).toBe("40");
    expect(await statusCount(u.id)).toBe(30);
    expect(await activityOf(u.id, "status_created")).toHaveLength(30);
    // The limit is per user: someone else still posts.
    expect((await post(other.access_token, "unaffected")).status).toBe(201);
    h.clock.advance(40_000);
    // The access token (30 s by default) has expired meanwhile; sign in again.
    const again = await h.login(u.email, u.password);
    expect((await post(again.access_token, "next minute")).status).toBe(201);
  });
});

describe("GET /statuses", () => {
  it("lists newest first across pages with no repeats, ties broken by id, without a token", async () => {
    const u = await h.signedInUser();
    const created: string[] = [];
    for (let i = 0; i < 3; i++) {
      created.push((await post(u.access_token, `spaced ${i}`)).json.status.id);
      h.clock.advance(1);
    }
    // Three more in the same millisecond: the cursor must not skip or repeat any of them.
    for (let i = 0; i < 3; i++) created.push((await post(u.access_token, `same instant ${i}`)).json.status.id);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `/api/v1/statuses?user_id=${u.id}&limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const res = await h.call("GET", query);
      expect(res.status).toBe(200);
      expect(res.json.items.length).toBeLessThanOrEqual(2);
      seen.push(...res.json.items.map((s: { id: string }) => s.id));
      cursor = res.json.next_cursor;
      pages++;
    } while (cursor && pages < 10);

    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(6);
    expect(seen.sort()).toEqual([...created].sort());
    const all = await h.call("GET", `/api/v1/statuses?user_id=${u.id}&limit=100`);
    const times = all.json.items.map((s: { created_at: string }) => s.created_at);
    expect(times).toEqual([...times].sort().reverse());
    expect(all.json.items.slice(0, 3).map((s: { content: string }) => s.content.startsWith("same instant"))).toEqual([true, true, true]);
    expect(all.json.next_cursor).toBeNull();
  });

  it("shows everyone's statuses without a filter and only one author's with user_id", async () => {
    const a = await h.signedInUser();
    const b = await h.signedInUser();
    h.clock.advance(1000);
    const fromA = (await post(a.access_token, "from a")).json.status.id;
    h.clock.advance(1);
    const fromB = (await post(b.access_token, "from b")).json.status.id;
    const all = await h.call("GET", "/api/v1/statuses?limit=2");
    expect(all.json.items.map((s: { id: string }) => s.id)).toEqual([fromB, fromA]);
    const onlyA = await h.call("GET", `/api/v1/statuses?user_id=${a.id}`);
    expect(onlyA.json.items.map((s: { id: string }) => s.id)).toEqual([fromA]);
    const nobody = await h.call("GET", "/api/v1/statuses?user_id=no-such-user");
    expect(nobody.json).toEqual({ items: [], next_cursor: null });
  });

  it.each([
    ["limit=0", "validation_failed"],
    ["limit=101", "validation_failed"],
    ["limit=abc", "validation_failed"],
    ["cursor=not-a-cursor", "invalid_cursor"],
    [`cursor=${btoa(JSON.stringify({ t: "x", id: 1 }))}`, "invalid_cursor"],
  ])("refuses %s with 400", async (query, code) => {
    const res = await h.call("GET", `/api/v1/statuses?${query}`);
    expect(res.status).toBe(400);
    expect(res.json.code).toBe(code);
  });

  it("reads one status publicly and answers 404 for an unknown id", async () => {
    const u = await h.signedInUser();
    const id = (await post(u.access_token, "readable")).json.status.id;
    const res = await h.call("GET", `/api/v1/statuses/${id}`);
    expect(res.status).toBe(200);
    expect(res.json.status).toMatchObject({ id, user_id: u.id, username: u.username, content: "readable" });
    const missing = await h.call("GET", "/api/v1/statuses/doesnotexist");
    expect(missing.status).toBe(404);
    expect(missing.json.code).toBe("not_found");
  });

  it("drops a disabled account's statuses from the public list and the public read", async () => {
    const u = await h.signedInUser();
    const id = (await post(u.access_token, "soon hidden")).json.status.id;
    expect((await h.call("GET", `/api/v1/statuses?user_id=${u.id}`)).json.items).toHaveLength(1);
    await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(u.id).run();
    expect((await h.call("GET", `/api/v1/statuses?user_id=${u.id}`)).json.items).toHaveLength(0);
    expect((await h.call("GET", `/api/v1/statuses/${id}`)).status).toBe(404);
  });

  it("tells a stranger nothing more by PATCH, PUT or DELETE than GET does about a status out of public view", async () => {
    const author = await h.signedInUser();
    const stranger = await h.signedInUser();
    const staff = await h.signedInUser();
    await makeStaff(staff.id);
    const id = (await post(author.access_token, "before the ban")).json.status.id;
    await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(author.id).run();
    for (const [method, body] of [
      ["PATCH", { content: "x" }],
      ["PUT", { content: "x" }],
      ["DELETE", undefined],
    ] as const) {
      const hidden = await h.call(method, `/api/v1/statuses/${id}`, body, { token: stranger.access_token });
      const unknown = await h.call(method, "/api/v1/statuses/no-such-status", body, { token: stranger.access_token });
      expect([method, hidden.status, hidden.json.code]).toEqual([method, unknown.status, unknown.json.code]);
    }
    // Staff still reach it, to moderate.
    expect((await h.call("PATCH", `/api/v1/statuses/${id}`, { content: "edited" }, { token: staff.access_token })).status).toBe(200);
  });

  it("drops the statuses of an account staff marked unverified, as its profile leaves public view", async () => {
    const u = await h.signedInUser();
    const id = (await post(u.access_token, "soon hidden too")).json.status.id;
    await env.DB.prepare("UPDATE users SET email_verified = 0 WHERE id = ?").bind(u.id).run();
    expect((await h.call("GET", `/api/v1/statuses?user_id=${u.id}`)).json.items).toHaveLength(0);
    expect((await h.call("GET", `/api/v1/statuses/${id}`)).status).toBe(404);
    expect((await h.call("GET", `/api/v1/profiles/${u.id}`)).status).toBe(404);
  });
});

describe("GET /statuses: what hidden authors cost", () => {
  /** `count` statuses by `userId`, newer than anything else in this file (seeded in one statement: the API allows 30 a minute). */
  async function seedStatuses(userId: string, count: number) {
    const base = h.clock.now() + 10 * 365 * 86_400_000;
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
       INSERT INTO statuses (id, user_id, content, created_at, updated_at) SELECT ? || '-' || i, ?, 'spam ' || i, ? + i, ? + i FROM n`,
    )
      .bind(count, userId, userId, base, base)
      .run();
  }

  /** Rows D1 read for the first page of the timeline (`query`), measured by running its statement again with the same values. */
  async function rowsReadForPage(query: string) {
    const probe = probeD1(env.DB);
    const res = await h.call("GET", `/api/v1/statuses${query}`, undefined, { env: { ...env, DB: probe.db } });
    expect(res.status, res.text).toBe(200);
    const [page, ...more] = probe.executed.filter((s) => /from "statuses"/.test(s.sql));
    if (!page || more.length > 0) throw new Error("expected the page in one statement");
    const { meta } = await env.DB.prepare(page.sql)
      .bind(...page.values)
      .all();
    return { items: res.json.items as { user_id: string }[], rowsRead: meta.rows_read };
  }

  async function staff() {
    const admin = await h.signedInUser();
    await makeStaff(admin.id);
    return admin;
  }

  it("reads about a page of rows, not every newer status of an author staff disabled", async () => {
    const author = await h.signedInUser();
    for (let i = 0; i < 3; i++) await post(author.access_token, `public ${i}`);
    const spammer = await h.signedInUser();
    await seedStatuses(spammer.id, 600);
    const admin = await staff();
    const disabled = await h.call("PATCH", `/api/v1/admin/users/${spammer.id}`, { is_active: false }, { token: admin.access_token });
    expect(disabled.status, disabled.text).toBe(200);

    for (const query of ["", `?user_id=${spammer.id}`]) {
      const { items, rowsRead } = await rowsReadForPage(query);
      expect(items.some((s) => s.user_id === spammer.id)).toBe(false);
      expect(rowsRead, query).toBeLessThan(100);
    }
  });

  it("reads about a page of rows for one quiet author's list, however many newer statuses others posted", async () => {
    const quiet = await h.signedInUser();
    await post(quiet.access_token, "once");
    const busy = await h.signedInUser();
    await seedStatuses(busy.id, 600);
    const { items, rowsRead } = await rowsReadForPage(`?user_id=${quiet.id}`);
    expect(items.map((s) => s.user_id)).toEqual([quiet.id]);
    expect(rowsRead).toBeLessThan(100);
    // They would head everyone's timeline in the tests that follow.
    await env.DB.prepare("DELETE FROM statuses WHERE user_id = ?").bind(busy.id).run();
  });

  it("brings an author's statuses back when staff enable the account again or mark its address verified", async () => {
    const admin = await staff();
    const author = await h.signedInUser();
    const id = (await post(author.access_token, "back again")).json.status.id;
    for (const [hide, show] of [
      [{ is_active: false }, { is_active: true }],
      [{ email_verified: false }, { email_verified: true }],
    ]) {
      expect((await h.call("PATCH", `/api/v1/admin/users/${author.id}`, hide, { token: admin.access_token })).status).toBe(200);
      expect((await h.call("GET", `/api/v1/statuses/${id}`)).status).toBe(404);
      expect((await h.call("PATCH", `/api/v1/admin/users/${author.id}`, show, { token: admin.access_token })).status).toBe(200);
      expect((await rowsReadForPage(`?user_id=${author.id}`)).items).toHaveLength(1);
      expect((await h.call("GET", "/api/v1/statuses")).json.items.map((s: { id: string }) => s.id)).toContain(id);
    }
  });
});

describe("GET /statuses: an author's statuses join the timeline when the address is verified", () => {
  const cap = capturingEnv();
  afterEach(() => setConfig("require_email_verification", undefined));

  /**
   * A signed-in account whose address is not verified, with one status out of public view: it
   * registered while verification was required, and signed in after the operator stopped requiring it.
   */
  async function unverifiedAuthor() {
    const email = `${unique("unverified")}@example.com`;
    const from = cap.sent.length;
    const registered = await h.call("POST", "/api/v1/auth/register", { email, password: STANDARD_PASSWORD }, { env: cap.env });
    expect(registered.status, registered.text).toBe(201);
    await setConfig("require_email_verification", "false");
    const tokens = await h.login(email, STANDARD_PASSWORD);
    const id = (await post(tokens.access_token, "not public yet")).json.status.id;
    expect((await h.call("GET", `/api/v1/statuses/${id}`)).status).toBe(404);
    return { email, userId: registered.json.user.id as string, tokens, id, activationCode: cap.sent[from]?.code as string };
  }

  /** A fresh code of `purpose` mailed to `email` (one a minute per address). */
  async function codeFor(email: string, purpose: string) {
    h.clock.advance(61_000);
    const from = cap.sent.length;
    expect((await h.call("POST", "/api/v1/auth/otp", { email, purpose }, { env: cap.env })).status).toBe(202);
    return cap.sent[from]?.code as string;
  }

  const ways: [string, (a: Awaited<ReturnType<typeof unverifiedAuthor>>) => Promise<{ status: number; text: string }>][] = [
    [
      "the registration's code",
      (a) => h.call("POST", "/api/v1/auth/verify-email", { email: a.email, code: a.activationCode, password: STANDARD_PASSWORD }),
    ],
    ["a code sign-in", async (a) => h.call("POST", "/api/v1/auth/login/otp", { email: a.email, code: await codeFor(a.email, "login") })],
    [
      "a password reset",
      async (a) =>
        h.call("POST", "/api/v1/auth/password/reset", {
          email: a.email,
          code: await codeFor(a.email, "reset_password"),
          new_password: "An0ther-Horse-Staple",
        }),
    ],
    [
      "moving to a new address",
      async (a) => {
        const from = cap.sent.length;
        const moved = await h.call(
          "PATCH",
          "/api/v1/me",
          { email: `${unique("moved")}@example.com`, current_password: STANDARD_PASSWORD },
          { token: a.tokens.access_token, env: cap.env },
        );
        expect(moved.status, moved.text).toBe(200);
        return h.call("POST", "/api/v1/me/email/verify", { code: cap.sent[from]?.code }, { token: a.tokens.access_token });
      },
    ],
  ];
  for (const [way, verify] of ways) {
    it(`by ${way}`, async () => {
      const author = await unverifiedAuthor();
      expect((await h.call("GET", `/api/v1/statuses?user_id=${author.userId}`)).json.items).toHaveLength(0);
      const verified = await verify(author);
      expect(verified.status, verified.text).toBeLessThan(300);
      expect((await h.call("GET", `/api/v1/statuses/${author.id}`)).status).toBe(200);
      expect((await h.call("GET", `/api/v1/statuses?user_id=${author.userId}`)).json.items).toHaveLength(1);
    });
  }
});

describe("changing and deleting statuses: owner, other, staff, anonymous", () => {
  async function cast() {
    const owner = await h.signedInUser();
    const other = await h.signedInUser();
    const staff = await h.signedInUser();
    await makeStaff(staff.id);
    const id = (await post(owner.access_token, "original")).json.status.id as string;
    return { owner, other, staff, id };
  }

  for (const method of ["PUT", "PATCH"] as const) {
    it(`${method}: the author changes the content and updated_at moves, created_at stays`, async () => {
      const { owner, id } = await cast();
      const before = (await h.call("GET", `/api/v1/statuses/${id}`)).json.status;
      h.clock.advance(5000);
      const res = await h.call(method, `/api/v1/statuses/${id}`, { content: " edited " }, { token: owner.access_token });
      expect(res.status).toBe(200);
      expect(res.json.status).toMatchObject({ id, user_id: owner.id, content: "edited", created_at: before.created_at });
      expect(res.json.status.updated_at).toBe(new Date(h.clock.now()).toISOString());
      expect((await h.call("GET", `/api/v1/statuses/${id}`)).json.status.content).toBe("edited");
    });

    it(`${method}: another user gets 403 and nothing changes`, async () => {
      const { other, id } = await cast();
      const res = await h.call(method, `/api/v1/statuses/${id}`, { content: "hijacked" }, { token: other.access_token });
      expect(res.status).toBe(403);
      expect(res.json.code).toBe("forbidden");
      expect((await h.call("GET", `/api/v1/statuses/${id}`)).json.status.content).toBe("original");
    });

    it(`${method}: staff may change someone else's status; the author stays the author`, async () => {
      const { owner, staff, id } = await cast();
      const res = await h.call(method, `/api/v1/statuses/${id}`, { content: "moderated" }, { token: staff.access_token });
      expect(res.status).toBe(200);
      expect(res.json.status).toMatchObject({ content: "moderated", user_id: owner.id, username: owner.username });
    });

    it(`${method}: staff changing someone else's status is in the admin audit trail, the content before and after`, async () => {
      const { owner, staff, id } = await cast();
      expect((await h.call(method, `/api/v1/statuses/${id}`, { content: "moderated" }, { token: staff.access_token })).status).toBe(200);
      expect(await auditOf(id)).toEqual([
        {
          actor_id: staff.id,
          action: "status.update",
          old_value: { user_id: owner.id, content: "original" },
          new_value: { content: "moderated" },
        },
      ]);
      // The author's own edit, and staff editing their own status, are no staff action on someone else.
      expect((await h.call(method, `/api/v1/statuses/${id}`, { content: "mine again" }, { token: owner.access_token })).status).toBe(200);
      const own = (await post(staff.access_token, "staff's own")).json.status.id as string;
      expect((await h.call(method, `/api/v1/statuses/${own}`, { content: "edited" }, { token: staff.access_token })).status).toBe(200);
      expect(await auditOf(id)).toHaveLength(1);
      expect(await auditOf(own)).toEqual([]);
    });

    it(`${method}: the audit trail records the content staff replaced, also when the author edited it after staff read it`, async () => {
      const { owner, staff, id } = await cast();
      const probe = probeD1(env.DB);
      const staged = probe.onceBefore(/^insert into "admin_audit"/, async () => {
        expect(
          (await h.call("PATCH", `/api/v1/statuses/${id}`, { content: "edited meanwhile" }, { token: owner.access_token })).status,
        ).toBe(200);
      });
      const res = await h.call(
        method,
        `/api/v1/statuses/${id}`,
        { content: "moderated" },
        { token: staff.access_token, env: { ...env, DB: probe.db } },
      );
      expect(staged.done).toBe(true);
      expect(res.status).toBe(200);
      expect((await auditOf(id)).map((e) => e.old_value)).toEqual([{ user_id: owner.id, content: "edited meanwhile" }]);
    });

    it(`${method}: no token gets 401`, async () => {
      const { id } = await cast();
      const res = await h.call(method, `/api/v1/statuses/${id}`, { content: "anon" });
      expect(res.status).toBe(401);
      expect((await h.call("GET", `/api/v1/statuses/${id}`)).json.status.content).toBe("original");
    });

    it(`${method}: an unknown id gets 404`, async () => {
      const { owner } = await cast();
      const res = await h.call(method, "/api/v1/statuses/nope", { content: "x" }, { token: owner.access_token });
      expect(res.status).toBe(404);
    });

    it(`${method}: user_id in the body is refused with 400, even from staff`, async () => {
      const { owner, staff, other, id } = await cast();
      for (const token of [owner.access_token, staff.access_token]) {
        const res = await h.call(method, `/api/v1/statuses/${id}`, { content: "x", user_id: other.id }, { token });
        expect(res.status).toBe(400);
        expect(res.json.errors[0].path).toBe("user_id");
      }
      const status = (await h.call("GET", `/api/v1/statuses/${id}`)).json.status;
      expect(status).toMatchObject({ user_id: owner.id, content: "original" });
    });

    it(`${method}: invalid content is refused with 400`, async () => {
      const { owner, id } = await cast();
      const res = await h.call(method, `/api/v1/statuses/${id}`, { content: "bad\u0000byte" }, { token: owner.access_token });
      expect(res.status).toBe(400);
      expect((await h.call("GET", `/api/v1/statuses/${id}`)).json.status.content).toBe("original");
    });
  }

  it("PUT requires content; an empty PATCH changes nothing", async () => {
    const { owner, id } = await cast();
    expect((await h.call("PUT", `/api/v1/statuses/${id}`, {}, { token: owner.access_token })).status).toBe(400);
    const patched = await h.call("PATCH", `/api/v1/statuses/${id}`, {}, { token: owner.access_token });
    expect(patched.status).toBe(200);
    expect(patched.json.status.content).toBe("original");
  });

  it("DELETE: the author deletes; status_deleted is recorded with the request's IP", async () => {
    const { owner, id } = await cast();
    const res = await h.call("DELETE", `/api/v1/statuses/${id}`, undefined, {
      token: owner.access_token,
      headers: { "cf-connecting-ip": "198.51.100.7" },
    });
    expect(res.status).toBe(204);
    expect((await h.call("GET", `/api/v1/statuses/${id}`)).status).toBe(404);
    const entries = await activityOf(owner.id, "status_deleted");
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ ip: "198.51.100.7", details: { status_id: id } });
    // Gone means gone: a second delete is a 404 and records nothing more.
    expect((await h.call("DELETE", `/api/v1/statuses/${id}`, undefined, { token: owner.access_token })).status).toBe(404);
    expect(await activityOf(owner.id, "status_deleted")).toHaveLength(1);
  });

  it("DELETE: another user gets 403 and the status stays", async () => {
    const { other, owner, id } = await cast();
    const res = await h.call("DELETE", `/api/v1/statuses/${id}`, undefined, { token: other.access_token });
    expect(res.status).toBe(403);
    expect((await h.call("GET", `/api/v1/statuses/${id}`)).status).toBe(200);
    expect(await activityOf(owner.id, "status_deleted")).toHaveLength(0);
    expect(await activityOf(other.id, "status_deleted")).toHaveLength(0);
  });

  it("an edit is in the author's history: by the author with their IP, by staff as such, without the moderator's IP", async () => {
    const { owner, staff, id } = await cast();
    const headers = { "cf-connecting-ip": "192.0.2.98", "user-agent": "Owner/1.0" };
    expect(
      (await h.call("PATCH", `/api/v1/statuses/${id}`, { content: "fixed a typo" }, { token: owner.access_token, headers })).status,
    ).toBe(200);
    h.clock.advance(1000);
    const modHeaders = { "cf-connecting-ip": "192.0.2.99", "user-agent": "ModTool/1.0" };
    expect(
      (await h.call("PUT", `/api/v1/statuses/${id}`, { content: "moderated" }, { token: staff.access_token, headers: modHeaders })).status,
    ).toBe(200);
    // Unchanged content is no edit.
    expect((await h.call("PATCH", `/api/v1/statuses/${id}`, { content: "moderated" }, { token: owner.access_token })).status).toBe(200);
    const entries = await activityOf(owner.id, "status_updated");
    expect(entries).toEqual([
      expect.objectContaining({ ip: "192.0.2.98", user_agent: "Owner/1.0", details: { status_id: id } }),
      expect.objectContaining({ ip: null, user_agent: null, details: { status_id: id, by: "staff" } }),
    ]);
    expect(await activityOf(staff.id, "status_updated")).toHaveLength(0);
    expect(JSON.stringify(entries)).not.toContain("moderated");
  });

  it("DELETE: staff deletes someone else's status; the author's history says by staff, without the moderator's IP", async () => {
    const { owner, staff, id } = await cast();
    const res = await h.call("DELETE", `/api/v1/statuses/${id}`, undefined, {
      token: staff.access_token,
      headers: { "cf-connecting-ip": "192.0.2.99", "user-agent": "ModTool/1.0" },
    });
    expect(res.status).toBe(204);
    const entries = await activityOf(owner.id, "status_deleted");
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ ip: null, user_agent: null, details: { status_id: id, by: "staff" } });
    expect(await activityOf(staff.id, "status_deleted")).toHaveLength(0);
  });

  it("a staff member demoted while their edit or deletion of someone else's status was under way changes nothing (403)", async () => {
    const { staff, id } = await cast();
    const probe = probeD1(env.DB);
    for (const [method, body] of [
      ["PATCH", { content: "moderated" }],
      ["PUT", { content: "moderated" }],
      ["DELETE", undefined],
    ] as const) {
      await makeStaff(staff.id);
      const staged = probe.onceBefore(/insert into "admin_audit"/, async () => {
        await env.DB.prepare("UPDATE users SET is_staff = 0 WHERE id = ?").bind(staff.id).run();
      });
      const res = await h.call(method, `/api/v1/statuses/${id}`, body, { token: staff.access_token, env: { ...env, DB: probe.db } });
      expect(staged.done, method).toBe(true);
      expect(res.status, `${method} ${res.text}`).toBe(403);
    }
    expect((await h.call("GET", `/api/v1/statuses/${id}`)).json.status.content).toBe("original");
    expect(await auditOf(id)).toEqual([]);
  });

  it("DELETE: the audit trail records what the status said when staff deleted it, also after an edit since staff read it", async () => {
    const { owner, staff, id } = await cast();
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/insert into "admin_audit"/, async () => {
      expect((await h.call("PATCH", `/api/v1/statuses/${id}`, { content: "edited meanwhile" }, { token: owner.access_token })).status).toBe(
        200,
      );
    });
    const res = await h.call("DELETE", `/api/v1/statuses/${id}`, undefined, { token: staff.access_token, env: { ...env, DB: probe.db } });
    expect(staged.done).toBe(true);
    expect(res.status).toBe(204);
    expect((await auditOf(id)).map((e) => e.old_value)).toEqual([{ user_id: owner.id, content: "edited meanwhile" }]);
  });

  it("DELETE: staff deleting someone else's status is in the admin audit trail with what it said; the author's own delete is not", async () => {
    const { owner, staff, id } = await cast();
    expect((await h.call("DELETE", `/api/v1/statuses/${id}`, undefined, { token: staff.access_token })).status).toBe(204);
    const entry = { actor_id: staff.id, action: "status.delete", old_value: { user_id: owner.id, content: "original" }, new_value: null };
    expect(await auditOf(id)).toEqual([entry]);
    // Already gone: a 404 that records nothing more.
    expect((await h.call("DELETE", `/api/v1/statuses/${id}`, undefined, { token: staff.access_token })).status).toBe(404);
    expect(await auditOf(id)).toEqual([entry]);
    const own = (await post(owner.access_token, "mine")).json.status.id as string;
    expect((await h.call("DELETE", `/api/v1/statuses/${own}`, undefined, { token: owner.access_token })).status).toBe(204);
    expect(await auditOf(own)).toEqual([]);
  });

  it("DELETE: a staff user deleting their own status is an ordinary author delete", async () => {
    const staff = await h.signedInUser();
    await makeStaff(staff.id);
    const id = (await post(staff.access_token, "mine")).json.status.id;
    expect((await h.call("DELETE", `/api/v1/statuses/${id}`, undefined, { token: staff.access_token })).status).toBe(204);
    expect((await activityOf(staff.id, "status_deleted"))[0]?.details).toEqual({ status_id: id });
    expect(await auditOf(id)).toEqual([]);
  });

  it("DELETE: no token gets 401, an unknown id 404", async () => {
    const { owner, id } = await cast();
    expect((await h.call("DELETE", `/api/v1/statuses/${id}`)).status).toBe(401);
    expect((await h.call("DELETE", "/api/v1/statuses/unknown-id", undefined, { token: owner.access_token })).status).toBe(404);
    expect((await h.call("GET", `/api/v1/statuses/${id}`)).status).toBe(200);
  });

  it("shows the author's current username after they rename", async () => {
    const { owner, id } = await cast();
    const renamed = `r${owner.username}`.slice(0, 30);
    expect((await h.call("PATCH", "/api/v1/me", { username: renamed }, { token: owner.access_token })).status).toBe(200);
    expect((await h.call("GET", `/api/v1/statuses/${id}`)).json.status.username).toBe(renamed);
  });
});
