import { env } from "cloudflare:test";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MemoryMailer } from "../../src/features/mail/mailer";
import { probeD1 } from "../d1-wrap";
import { harness, setConfig, unique } from "../helpers";
import { capturingEnv, codeInMail, deliver, mailsFor } from "../mail-helpers";

const ME = "/api/v1/me";
const REFRESH = "/api/v1/auth/refresh";
const LOGIN = "/api/v1/auth/login";

async function countRows(table: string, userId: string) {
  const row = await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE ${table === "users" ? "id" : "user_id"} = ?`)
    .bind(userId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

describe("GET /me", () => {
  const h = harness();

  it("returns the signed-in account", async () => {
    const u = await h.signedInUser();
    const res = await h.call("GET", ME, undefined, { token: u.access_token });
    expect(res.status).toBe(200);
    expect(res.json.user).toMatchObject({
      id: u.id,
      email: u.email,
      username: u.username,
      is_active: true,
      is_staff: false,
      email_verified: true,
      created_at: expect.any(String),
      pending_email: null,
      has_password: true,
      profile: expect.objectContaining({ name: null }),
    });
    expect(res.text).not.toMatch(/password_hash|hash|tokens_valid_after/i);
  });

  it("answers 401 for a disabled user's still-unexpired token", async () => {
    const u = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(u.id).run();
    const res = await h.call("GET", ME, undefined, { token: u.access_token });
    expect(res.status).toBe(401);
  });
});

describe("PUT and PATCH /me", () => {
  const h = harness();

  afterEach(async () => {
    await setConfig("require_email_verification", undefined);
  });

  it("PATCH changes only the username when only the username is given", async () => {
    const u = await h.signedInUser();
    const username = unique("renamed");
    const res = await h.call("PATCH", ME, { username: username.toUpperCase() }, { token: u.access_token });
    expect(res.status).toBe(200);
    expect(res.json.user).toMatchObject({ id: u.id, email: u.email, username });
    const me = await h.call("GET", ME, undefined, { token: u.access_token });
    expect(me.json.user.username).toBe(username);
    // One envelope for the account everywhere: PATCH answers what GET answers.
    expect(res.json).toEqual(me.json);
  });

  it("PATCH renames nothing for a request whose sign-in was ended (logout-all) while it was under way: 409", async () => {
    const u = await h.signedInUser();
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/^update "users" set "username"/, async () => {
      const owner = await h.login(u.email, u.password);
      expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: owner.access_token })).status).toBe(204);
    });
    const res = await h.call("PATCH", ME, { username: unique("thief") }, { token: u.access_token, env: { ...env, DB: probe.db } });
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(409);
    expect((await env.DB.prepare("SELECT username FROM users WHERE id = ?").bind(u.id).first())?.username).toBe(u.username);
  });

  it("PATCH refuses a reserved name to a user, not to staff, and keeps a name already held", async () => {
    const u = await h.signedInUser();
    const refused = await h.call("PATCH", ME, { username: "support" }, { token: u.access_token });
    expect(refused.status).toBe(400);
    expect(refused.json.errors).toEqual([{ path: "username", message: "is reserved" }]);
    expect((await env.DB.prepare("SELECT username FROM users WHERE id = ?").bind(u.id).first())?.username).toBe(u.username);

    const staff = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(staff.id).run();
    expect((await h.call("PATCH", ME, { username: "Support" }, { token: staff.access_token })).status).toBe(200);
    // A name held from before the rule (here: given by hand) stays usable: saving it again changes nothing.
    await env.DB.prepare("UPDATE users SET username = ? WHERE id = ?").bind("admin", u.id).run();
    const kept = await h.call("PATCH", ME, { username: "admin" }, { token: u.access_token });
    expect(kept.status, kept.text).toBe(200);
  });

  it("PATCH can clear the username with null", async () => {
    const u = await h.signedInUser();
    const res = await h.call("PATCH", ME, { username: null }, { token: u.access_token });
    expect(res.status).toBe(200);
    expect(res.json.user.username).toBeNull();
  });

  it("PUT replaces both fields, clearing an omitted username", async () => {
    const u = await h.signedInUser();
    const res = await h.call("PUT", ME, { email: u.email }, { token: u.access_token });
    expect(res.status).toBe(200);
    expect(res.json.user).toMatchObject({ email: u.email, username: null });
  });

  it("PUT requires the email", async () => {
    const u = await h.signedInUser();
    const res = await h.call("PUT", ME, { username: unique("x") }, { token: u.access_token });
    expect(res.status).toBe(400);
    expect(res.json.errors.map((e: { path: string }) => e.path)).toContain("email");
  });

  it("normalises a new email and answers 409 when another account has it", async () => {
    const a = await h.signedInUser();
    const b = await h.signedInUser();
    const res = await h.call("PATCH", ME, { email: ` ${b.email.toUpperCase()} `, current_password: a.password }, { token: a.access_token });
    expect(res.status).toBe(409);
    expect(res.json.code).toBe("email_taken");
  });

  it("answers 409 when the username is taken, in any case", async () => {
    const a = await h.signedInUser();
    const b = await h.signedInUser();
    const res = await h.call("PATCH", ME, { username: b.username.toUpperCase() }, { token: a.access_token });
    expect(res.status).toBe(409);
    expect(res.json.code).toBe("username_taken");
    expect((await h.call("GET", ME, undefined, { token: a.access_token })).json.user.username).toBe(a.username);
  });

  it("keeping one's own username is not a conflict", async () => {
    const u = await h.signedInUser();
    const res = await h.call("PUT", ME, { email: u.email, username: u.username }, { token: u.access_token });
    expect(res.status).toBe(200);
    expect(res.json.user.username).toBe(u.username);
  });

  it("rejects an invalid username with 400", async () => {
    const u = await h.signedInUser();
    const res = await h.call("PATCH", ME, { username: "no spaces allowed" }, { token: u.access_token });
    expect(res.status).toBe(400);
  });

  it.each([
    ["is_staff", true],
    ["is_active", false],
    ["id", "someone-else"],
    ["password", "N3w-Secret-horse"],
    ["password_hash", "$argon2id$x"],
    ["created_at", "2020-01-01T00:00:00Z"],
    ["updated_at", 0],
    ["email_verified", true],
    ["tokens_valid_after", 0],
  ])("rejects %s with 400 and changes nothing (mass assignment)", async (field, value) => {
    const u = await h.signedInUser();
    for (const method of ["PATCH", "PUT"]) {
      const res = await h.call(method, ME, { email: u.email, [field]: value }, { token: u.access_token });
      expect(res.status).toBe(400);
      expect(res.json.code).toBe("validation_failed");
    }
    const row = await env.DB.prepare("SELECT is_staff, is_active, id FROM users WHERE id = ?").bind(u.id).first();
    expect(row).toEqual({ is_staff: 0, is_active: 1, id: u.id });
  });

  it("needs a bearer token", async () => {
    expect((await h.call("PATCH", ME, { username: unique("x") })).status).toBe(401);
  });
});

describe("POST /me/password", () => {
  const h = harness();
  const NEW_PASSWORD = "Brand-new-passw0rd-42";

  it("changes the password and cuts off every other session", async () => {
    const u = await h.signedInUser();
    const otherSession = await h.login(u.email, u.password);
    h.clock.advance(1000);

    const res = await h.call(
      "POST",
      "/api/v1/me/password",
      { current_password: u.password, new_password: NEW_PASSWORD },
      { token: u.access_token },
    );
    expect(res.status).toBe(204);

    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(401);
    expect((await h.call("POST", LOGIN, { email: u.email, password: NEW_PASSWORD })).status).toBe(200);

    // Access tokens issued before the change are dead, this session's included.
    expect((await h.call("GET", ME, undefined, { token: u.access_token })).status).toBe(401);
    expect((await h.call("GET", ME, undefined, { token: otherSession.access_token })).status).toBe(401);
    // The other session cannot refresh; this session can, and gets a working access token.
    expect((await h.call("POST", REFRESH, { refresh_token: otherSession.refresh_token })).status).toBe(401);
    const refreshed = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(refreshed.status).toBe(200);
    expect((await h.call("GET", ME, undefined, { token: refreshed.json.access_token })).status).toBe(200);
  });

  it("answers 401 for a wrong current password and keeps the old one", async () => {
    const u = await h.signedInUser();
    const res = await h.call(
      "POST",
      "/api/v1/me/password",
      { current_password: "wrong-password-1", new_password: NEW_PASSWORD },
      { token: u.access_token },
    );
    expect(res.status).toBe(401);
    expect(res.json.code).toBe("invalid_current_password");
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
  });

  it("applies the password policy to the new password", async () => {
    const u = await h.signedInUser();
    for (const new_password of ["password", "12345678901", "short"]) {
      const res = await h.call("POST", "/api/v1/me/password", { current_password: u.password, new_password }, { token: u.access_token });
      expect(res.status).toBe(400);
      expect(res.json.errors.some((e: { path: string }) => e.path === "new_password")).toBe(true);
    }
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);
  });
});

describe("POST /me/password with a code from the mailbox", () => {
  const h = harness();
  const cap = capturingEnv();
  const NEW_PASSWORD = "Brand-new-passw0rd-42";

  // The tests move the clock past the one-code-a-minute limit; keep access tokens alive meanwhile.
  beforeAll(() => setConfig("access_token_ttl", "3600"));
  afterAll(() => setConfig("access_token_ttl", undefined));

  /** The code the account's mailbox gets for `purpose` (POST /auth/otp). */
  async function mailedCode(email: string, purpose: "login" | "reset_password") {
    const from = cap.sent.length;
    expect((await h.call("POST", "/api/v1/auth/otp", { email, purpose }, { env: cap.env })).status).toBe(202);
    const [mail] = await mailsFor(cap.sent.slice(from), h.clock);
    return codeInMail(mail as { text: string });
  }

  /** A verified account without a password, signed in twice by code (its address claimed that way). */
  async function passwordless() {
    const u = await h.registerVerified();
    await env.DB.prepare("UPDATE users SET password_hash = '!' WHERE id = ?").bind(u.id).run();
    const signIn = async () => {
      h.clock.advance(61_000); // one code a minute per address and purpose
      const res = await h.call("POST", "/api/v1/auth/login/otp", { email: u.email, code: await mailedCode(u.email, "login") });
      expect(res.status).toBe(200);
      return res.json as { access_token: string; refresh_token: string };
    };
    const me = await signIn();
    const other = await signIn();
    expect((await h.call("GET", ME, undefined, { token: me.access_token })).json.user.has_password).toBe(false);
    return { ...u, me, other };
  }

  it("sets an account's first password with a reset code mailed to its address: this sign-in continues, the others end", async () => {
    const u = await passwordless();
    const code = await mailedCode(u.email, "reset_password");
    const res = await h.call("POST", "/api/v1/me/password", { new_password: NEW_PASSWORD, code }, { token: u.me.access_token });
    expect(res.status).toBe(204);

    expect((await h.call("POST", LOGIN, { email: u.email, password: NEW_PASSWORD })).status).toBe(200);
    expect((await h.call("POST", REFRESH, { refresh_token: u.other.refresh_token })).status).toBe(401);
    const refreshed = await h.call("POST", REFRESH, { refresh_token: u.me.refresh_token });
    expect(refreshed.status).toBe(200);
    const me = await h.call("GET", ME, undefined, { token: refreshed.json.access_token });
    expect(me.json.user.has_password).toBe(true);
    const activity = await h.call("GET", "/api/v1/me/activity", undefined, { token: refreshed.json.access_token });
    expect(activity.json.items.map((a: { type: string }) => a.type)).toContain("password_changed");
    // The code is spent.
    const again = await h.call(
      "POST",
      "/api/v1/me/password",
      { new_password: "Another-passw0rd-43", code },
      { token: refreshed.json.access_token },
    );
    expect(again.status).toBe(400);
    expect(again.json.code).toBe("invalid_code");
  });

  it("refuses a code of another purpose or another account's, and asks for one when none is given", async () => {
    const u = await passwordless();
    const stranger = await h.registerVerified();
    const theirs = await mailedCode(stranger.email, "reset_password");
    h.clock.advance(61_000);
    const login = await mailedCode(u.email, "login");
    for (const code of [theirs, login]) {
      const res = await h.call("POST", "/api/v1/me/password", { new_password: NEW_PASSWORD, code }, { token: u.me.access_token });
      expect(res.status).toBe(400);
      expect(res.json.code).toBe("invalid_code");
    }
    const none = await h.call("POST", "/api/v1/me/password", { new_password: NEW_PASSWORD }, { token: u.me.access_token });
    expect(none.status).toBe(400);
    expect(none.json.errors).toEqual([expect.objectContaining({ path: "code", message: expect.stringMatching(/reset_password/) })]);
    expect((await h.call("POST", LOGIN, { email: u.email, password: NEW_PASSWORD })).status).toBe(401);
    // The stranger's code still works for the stranger.
    const reset = await h.call("POST", "/api/v1/auth/password/reset", { email: stranger.email, code: theirs, new_password: NEW_PASSWORD });
    expect(reset.status).toBe(204);
  });

  it("takes a reset code instead of the current password from an account that has one", async () => {
    const u = await h.signedInUser();
    const code = await mailedCode(u.email, "reset_password");
    const res = await h.call("POST", "/api/v1/me/password", { new_password: NEW_PASSWORD, code }, { token: u.access_token });
    expect(res.status).toBe(204);
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(401);
    expect((await h.call("POST", LOGIN, { email: u.email, password: NEW_PASSWORD })).status).toBe(200);
  });
});

describe("DELETE /me", () => {
  const h = harness();

  it("answers 401 for a wrong password and keeps the account", async () => {
    const u = await h.signedInUser();
    const res = await h.call("DELETE", ME, { current_password: "wrong-password-1" }, { token: u.access_token });
    expect(res.status).toBe(401);
    expect(await countRows("users", u.id)).toBe(1);
  });

  it("needs the current password in the body", async () => {
    const u = await h.signedInUser();
    expect((await h.call("DELETE", ME, {}, { token: u.access_token })).status).toBe(400);
    expect((await h.call("DELETE", ME, undefined, { token: u.access_token })).status).toBe(400);
    expect(await countRows("users", u.id)).toBe(1);
  });

  it("tells the account's address it was deleted (as an email change does), and only when it was", async () => {
    const cap = capturingEnv();
    const u = await h.signedInUser();
    const wrong = await h.call("DELETE", ME, { current_password: "wrong-password-1" }, { token: u.access_token, env: cap.env });
    expect(wrong.status).toBe(401);
    expect(cap.notices).toEqual([]);
    const res = await h.call("DELETE", ME, { current_password: u.password }, { token: u.access_token, env: cap.env });
    expect(res.status).toBe(204);
    expect(cap.notices).toMatchObject([{ kind: "notice", notice: "account_deleted", to: u.email }]);
    // It outlives the account until it is sent: the consumer's send removes it.
    const pending = () =>
      env.DB.prepare("SELECT COUNT(*) AS n FROM pending_notices WHERE message LIKE ?").bind(`%${u.email}%`).first<{ n: number }>();
    expect((await pending())?.n).toBe(1);
    const mailer = MemoryMailer();
    await deliver(cap.notices, { clock: h.clock, mailer });
    expect(mailer.outbox).toMatchObject([{ to: u.email, subject: "Your Latchkey account was deleted" }]);
    expect(mailer.outbox[0]?.text).toContain("If this wasn't you");
    expect((await pending())?.n).toBe(0);
  });

  it("sends no deletion notice to an address the account never proved: its owner may not be whoever registered it", async () => {
    await setConfig("require_email_verification", "false");
    try {
      const cap = capturingEnv();
      const u = await h.signedInUser();
      await env.DB.prepare("UPDATE users SET email_verified = 0 WHERE id = ?").bind(u.id).run();
      expect((await h.call("DELETE", ME, { current_password: u.password }, { token: u.access_token, env: cap.env })).status).toBe(204);
      expect(cap.notices).toEqual([]);
    } finally {
      await setConfig("require_email_verification", undefined);
    }
  });

  it("deletes the account and everything it owns; its tokens stop working", async () => {
    const u = await h.signedInUser();
    const second = await h.login(u.email, u.password);
    expect(await countRows("refresh_tokens", u.id)).toBe(2);
    expect(await countRows("profiles", u.id)).toBe(1);
    expect(await countRows("activity", u.id)).toBeGreaterThan(0);

    const res = await h.call("DELETE", ME, { current_password: u.password }, { token: u.access_token });
    expect(res.status).toBe(204);

    for (const table of ["users", "refresh_tokens", "profiles", "activity", "otp_codes", "statuses"]) {
      expect(await countRows(table, u.id), table).toBe(0);
    }
    expect((await h.call("GET", ME, undefined, { token: u.access_token })).status).toBe(401);
    expect((await h.call("GET", ME, undefined, { token: second.access_token })).status).toBe(401);
    expect((await h.call("POST", REFRESH, { refresh_token: second.refresh_token })).status).toBe(401);
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(401);

    // The email is free again.
    const again = await h.call("POST", "/api/v1/auth/register", { email: u.email, password: u.password });
    expect(again.status).toBe(201);
  });
});

describe("a released username", () => {
  const h = harness();
  const DAY = 86_400_000;
  const register = (username: string) =>
    h.call("POST", "/api/v1/auth/register", { email: `${unique("heir")}@example.com`, password: "analytical-engine-1843", username });

  /** Signed in again after `days`: the access tokens of the day before have long expired. */
  const later = async <U extends { email: string; password: string }>(user: U, days: number) => {
    h.clock.advance(days * DAY);
    return { ...user, ...(await h.login(user.email, user.password)) };
  };

  it("is held for 30 days after a rename: others get 409, the previous owner may take it back", async () => {
    // Kept for a week (USERNAME_TENURE_MS): links to it may exist.
    let owner = await later(await h.signedInUser(), 8);
    const name = owner.username as string;
    expect((await h.call("PATCH", ME, { username: unique("moved") }, { token: owner.access_token })).status).toBe(200);
    // Every link to /people/<name> would otherwise show whoever took it next.
    const taken = await register(name);
    expect(taken.status).toBe(409);
    expect(taken.json.code).toBe("username_taken");
    const other = await h.signedInUser();
    expect((await h.call("PATCH", ME, { username: name }, { token: other.access_token })).json.code).toBe("username_taken");
    expect((await h.call("PATCH", ME, { username: name }, { token: owner.access_token })).status).toBe(200);

    // Kept another week and released again; 30 days on, it is anyone's.
    owner = await later(owner, 8);
    expect((await h.call("PATCH", ME, { username: null }, { token: owner.access_token })).status).toBe(200);
    h.clock.advance(30 * DAY - 1000);
    expect((await register(name)).status).toBe(409);
    h.clock.advance(2000);
    expect((await register(name)).status).toBe(201);
  });

  it("is not held when given up within a week of taking it: renaming again and again squats nothing", async () => {
    const squatter = await h.signedInUser();
    const names = [unique("sq"), unique("sq"), unique("sq")];
    for (const username of names) {
      expect((await h.call("PATCH", ME, { username }, { token: squatter.access_token })).status).toBe(200);
    }
    expect((await h.call("PATCH", ME, { username: null }, { token: squatter.access_token })).status).toBe(200);
    for (const username of [squatter.username as string, ...names]) expect((await register(username)).status, username).toBe(201);
  });

  it("is held for 30 days after the account is deleted, for no one", async () => {
    const owner = await later(await h.signedInUser(), 8);
    const name = owner.username as string;
    expect((await h.call("DELETE", ME, { current_password: owner.password }, { token: owner.access_token })).status).toBe(204);
    expect((await register(name)).status).toBe(409);
    // The hold names no account: nothing of the deleted one is kept.
    expect((await env.DB.prepare("SELECT user_id FROM released_usernames WHERE username = ?").bind(name).first())?.user_id).toBeNull();
    h.clock.advance(30 * DAY + 1000);
    expect((await register(name)).status).toBe(201);
  });
});
