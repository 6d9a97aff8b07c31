import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BIDI_CONTROLS, codePoint, harness, unique, ZERO_WIDTH } from "../helpers";

const PASSWORD = "Tr0ub4dor&3-horse";
const REGISTER = "/api/v1/auth/register";

/** Full-width forms of ASCII letters and digits (U+FF01..U+FF5E): NFKC folds them back. */
const fullWidth = (s: string) => s.replace(/[!-~]/g, (ch) => String.fromCharCode(ch.charCodeAt(0) + 0xfee0));

async function userCount(email: string) {
  const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM users WHERE email = ?").bind(email).first<{ n: number }>();
  return row?.n ?? 0;
}

describe("POST /auth/register", () => {
  const h = harness();

  it("creates an account and answers 201 with the public user view", async () => {
    const email = `${unique("reg")}@example.com`;
    const username = unique("r");
    const res = await h.call("POST", REGISTER, { email, password: PASSWORD, password_confirm: PASSWORD, username });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(Object.keys(res.json)).toEqual(["user"]);
    const user = res.json.user;
    expect(user).toEqual({
      id: expect.any(String),
      email,
      username,
      is_active: true,
      is_staff: false,
      email_verified: expect.any(Boolean),
      created_at: expect.any(String),
    });
    expect(new Date(user.created_at).toISOString()).toBe(user.created_at);
    expect(res.text).not.toMatch(/password|hash/i);

    const row = await env.DB.prepare("SELECT password_hash FROM users WHERE id = ?").bind(user.id).first<{ password_hash: string }>();
    expect(row?.password_hash).toMatch(/^\$argon2id\$/);
    expect(row?.password_hash).not.toContain(PASSWORD);
    const profile = await env.DB.prepare("SELECT user_id FROM profiles WHERE user_id = ?").bind(user.id).first();
    expect(profile).not.toBeNull();
  });

  it("names the account in Location: /api/v1/me, where its owner reads it once signed in", async () => {
    const u = await h.registerVerified();
    const res = await h.call("POST", REGISTER, { email: `${unique("loc")}@example.com`, password: PASSWORD });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe("/api/v1/me");
    const tokens = await h.login(u.email, u.password);
    const me = await h.call("GET", "/api/v1/me", undefined, { token: tokens.access_token });
    expect(Object.keys(me.json.user)).toEqual(expect.arrayContaining(Object.keys(res.json.user)));
  });

  it("registers without a username", async () => {
    const res = await h.call("POST", REGISTER, { email: `${unique("nouser")}@example.com`, password: PASSWORD });
    expect(res.status).toBe(201);
    expect(res.json.user.username).toBeNull();
  });

  it("stores the email trimmed and lower-cased", async () => {
    const local = unique("Trim");
    const res = await h.call("POST", REGISTER, { email: `  ${local.toUpperCase()}@Example.COM  `, password: PASSWORD });
    expect(res.status).toBe(201);
    expect(res.json.user.email).toBe(`${local.toLowerCase()}@example.com`);
  });

  it("refuses a second account for the same email however it is cased or spaced", async () => {
    const email = `${unique("dup")}@example.com`;
    expect((await h.call("POST", REGISTER, { email, password: PASSWORD })).status).toBe(201);
    for (const variant of [email, email.toUpperCase(), ` ${email} `, `${email[0]?.toUpperCase()}${email.slice(1)}`]) {
      const res = await h.call("POST", REGISTER, { email: variant, password: PASSWORD });
      expect(res.status).toBe(409);
      expect(res.json.code).toBe("email_taken");
    }
    expect(await userCount(email)).toBe(1);
  });

  it("treats a full-width look-alike email as the same address (NFKC)", async () => {
    const email = `${unique("nfkc")}@example.com`;
    expect((await h.call("POST", REGISTER, { email, password: PASSWORD })).status).toBe(201);
    const lookAlike = fullWidth(email.toUpperCase());
    expect(lookAlike).not.toBe(email);
    const res = await h.call("POST", REGISTER, { email: lookAlike, password: PASSWORD });
    expect(res.status).toBe(409);
    expect(res.json.code).toBe("email_taken");
    expect(await userCount(email)).toBe(1);
  });

  it("stores a full-width email in its canonical form", async () => {
    const local = unique("wide");
    const res = await h.call("POST", REGISTER, { email: fullWidth(`${local}@example.com`), password: PASSWORD });
    expect(res.status).toBe(201);
    expect(res.json.user.email).toBe(`${local}@example.com`);
  });

  it("rejects an invalid email with a 400 naming the field", async () => {
    for (const email of ["not-an-email", "", "a@", `${"x".repeat(400)}@example.com`]) {
      const res = await h.call("POST", REGISTER, { email, password: PASSWORD });
      expect(res.status).toBe(400);
      expect(res.json.code).toBe("validation_failed");
      expect(res.json.errors.map((e: { path: string }) => e.path)).toContain("email");
    }
  });

  it("accepts usernames of letters, digits, '_', '.' and '-' between 3 and 30 characters", async () => {
    const base = unique("");
    for (const username of [`a.b-c_${base}`.slice(0, 30), `x${base}`.slice(0, 3)]) {
      const res = await h.call("POST", REGISTER, { email: `${unique("un")}@example.com`, password: PASSWORD, username });
      expect(res.status, username).toBe(201);
    }
  });

  it("rejects usernames that are too short, too long or use other characters", async () => {
    for (const username of ["ab", "a".repeat(31), "has space", "bang!", "slash/x", "émile", "<script>"]) {
      const res = await h.call("POST", REGISTER, { email: `${unique("bad")}@example.com`, password: PASSWORD, username });
      expect(res.status, username).toBe(400);
      expect(res.json.errors.map((e: { path: string }) => e.path)).toContain("username");
    }
  });

  it("rejects usernames that do not start and end with a letter or digit", async () => {
    for (const username of ["...", "-_-", ".ada", "ada.", "_x_", "ada-"]) {
      const res = await h.call("POST", REGISTER, { email: `${unique("edge")}@example.com`, password: PASSWORD, username });
      expect(res.status, username).toBe(400);
      expect(res.json.errors, username).toEqual([{ path: "username", message: "must start and end with a letter or digit" }]);
    }
  });

  it("rejects names that would pass for the service or its staff, however cased or separated", async () => {
    for (const username of [
      "admin",
      "Administrator",
      "ad-min",
      "s.u.p.p.o.r.t",
      "root",
      "security",
      "moderator",
      "latchkey",
      "latchkey-team",
    ]) {
      const res = await h.call("POST", REGISTER, { email: `${unique("res")}@example.com`, password: PASSWORD, username });
      expect(res.status, username).toBe(400);
      expect(res.json.errors, username).toEqual([{ path: "username", message: "is reserved" }]);
    }
    // Words that merely contain one are fine.
    const ok = await h.call("POST", REGISTER, { email: `${unique("ok")}@example.com`, password: PASSWORD, username: unique("badminton") });
    expect(ok.status).toBe(201);
  });

  it("rejects usernames with a zero-width or bidi control character inside", async () => {
    for (const ch of [...ZERO_WIDTH, ...BIDI_CONTROLS]) {
      const username = `ad${ch}${unique("z")}`.slice(0, 20);
      const res = await h.call("POST", REGISTER, { email: `${unique("zw")}@example.com`, password: PASSWORD, username });
      expect(res.status, codePoint(ch)).toBe(400);
      expect(res.json.errors.map((e: { path: string }) => e.path)).toContain("username");
    }
  });

  it("keeps usernames unique case-insensitively and across full-width forms", async () => {
    const username = unique("dupname");
    const first = await h.call("POST", REGISTER, {
      email: `${unique("a")}@example.com`,
      password: PASSWORD,
      username: username.toUpperCase(),
    });
    expect(first.status).toBe(201);
    expect(first.json.user.username).toBe(username.toLowerCase());
    for (const variant of [username, fullWidth(username)]) {
      const res = await h.call("POST", REGISTER, { email: `${unique("b")}@example.com`, password: PASSWORD, username: variant });
      expect(res.status).toBe(409);
      expect(res.json.code).toBe("username_taken");
    }
  });

  it("rejects a password_confirm that does not match", async () => {
    const email = `${unique("confirm")}@example.com`;
    const res = await h.call("POST", REGISTER, { email, password: PASSWORD, password_confirm: `${PASSWORD}x` });
    expect(res.status).toBe(400);
    expect(res.json.errors).toEqual([{ path: "password_confirm", message: expect.stringMatching(/match/) }]);
    expect(await userCount(email)).toBe(0);
  });

  it.each([
    ["a common password", "password123", /common/],
    ["an all-digit password", "8392017465", /numeric/],
    ["one short pattern repeated", "kitekitekite", /pattern repeated/],
    ["a run of consecutive characters", "lmnopqrstu", /consecutive/],
    ["a short password", "xQ3$vb", /at least 8/],
    ["a password over 128 characters", `${"Zq9!".repeat(32)}x`, /at most 128/],
  ])("rejects %s", async (_name, password, message) => {
    const email = `${unique("pol")}@example.com`;
    const res = await h.call("POST", REGISTER, { email, password });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.errors.some((e: { path: string; message: string }) => e.path === "password" && message.test(e.message))).toBe(true);
    expect(await userCount(email)).toBe(0);
  });

  it("rejects a password too similar to the email", async () => {
    const local = `marguerite${unique("").slice(-4)}`;
    const res = await h.call("POST", REGISTER, { email: `${local}@example.com`, password: `${local}!` });
    expect(res.status).toBe(400);
    expect(res.json.errors.some((e: { message: string }) => /similar to the email/.test(e.message))).toBe(true);
  });

  it("rejects a password too similar to the username", async () => {
    const username = `bartholomew${unique("").slice(-4)}`;
    const res = await h.call("POST", REGISTER, { email: `${unique("sim")}@example.com`, password: `${username}#9`, username });
    expect(res.status).toBe(400);
    expect(res.json.errors.some((e: { message: string }) => /similar to the username/.test(e.message))).toBe(true);
  });

  it.each([
    ["is_staff", true],
    ["is_active", false],
    ["id", "attacker-chosen"],
    ["email_verified", true],
    ["created_at", 0],
  ])("rejects mass assignment of %s with 400", async (field, value) => {
    const email = `${unique("mass")}@example.com`;
    const res = await h.call("POST", REGISTER, { email, password: PASSWORD, [field]: value });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.errors.map((e: { path: string }) => e.path).join(",")).toContain(field);
    expect(await userCount(email)).toBe(0);
  });

  it("creates exactly one account from twenty parallel registrations of one email, without a 500", async () => {
    const email = `${unique("race")}@example.com`;
    const results = await Promise.all(Array.from({ length: 20 }, () => h.call("POST", REGISTER, { email, password: PASSWORD })));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    for (const r of results.filter((x) => x.status === 409)) expect(r.json.code).toBe("email_taken");
    expect(await userCount(email)).toBe(1);
  });

  it("limits registrations per client IP", async () => {
    const ip = "198.51.100.77";
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) {
      const res = await h.call(
        "POST",
        REGISTER,
        { email: `${unique("ip")}@example.com`, password: PASSWORD },
        { headers: { "cf-connecting-ip": ip } },
      );
      statuses.push(res.status);
    }
    expect(statuses.slice(0, 20).every((s) => s === 201)).toBe(true);
    expect(statuses[20]).toBe(429);
  });
});
