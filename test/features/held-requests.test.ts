/**
 * A client can hold a request open by sending its body slowly. Were the sign-in checked before the
 * body arrived, such a request, authorised while the sign-in was live, would land after it ended:
 * a staff member disabled meanwhile could still promote an accomplice, a thief signed out by the
 * owner's password reset could still post as the owner. The body is read whole first (JSON
 * bodies are at most 64 KiB), so the sign-in is judged as it is when the request can proceed.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { decodeJwt, harness } from "../helpers";
import { capturingEnv } from "../mail-helpers";

const h = harness();
const mail = capturingEnv();

/** A JSON request with a bearer token, held as `heldRequest` holds it. */
function heldJsonRequest(method: string, path: string, token: string, json: unknown) {
  return heldRequest(method, path, JSON.stringify(json), { authorization: `Bearer ${token}`, "content-type": "application/json" });
}

/** A request whose body is held back until `release()`; `bodyAsked` settles once the worker starts reading it. */
function heldRequest(method: string, path: string, content: string | Uint8Array, headers: Record<string, string>) {
  const body = typeof content === "string" ? new TextEncoder().encode(content) : content;
  let asked!: () => void;
  const bodyAsked = new Promise<void>((resolve) => {
    asked = resolve;
  });
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      asked();
      await released;
      controller.enqueue(body);
      controller.close();
    },
  });
  const response = h.app.fetch(
    new Request(`http://latchkey.test${path}`, {
      method,
      headers: { ...headers, "content-length": String(body.byteLength), "cf-connecting-ip": "203.0.113.77" },
      body: stream,
      // @ts-expect-error: a streamed request body (workerd's Request takes it without `duplex`)
      duplex: "half",
    }),
    env,
  );
  return { bodyAsked, release, response };
}

/** The owner resets the password with an emailed code: every sign-in ends. */
async function resetPassword(email: string) {
  const from = mail.sent.length;
  expect((await h.call("POST", "/api/v1/auth/otp", { email, purpose: "reset_password" }, { env: mail.env })).status).toBe(202);
  const code = mail.sent.slice(from).find((m) => m.purpose === "reset_password")?.code;
  const reset = await h.call("POST", "/api/v1/auth/password/reset", { email, code, new_password: "victims-new-secret-93" });
  expect(reset.status, reset.text).toBe(204);
}

/** The smallest GIF: one transparent pixel. */
const GIF = Uint8Array.from([
  ...new TextEncoder().encode("GIF89a"),
  1,
  0,
  1,
  0,
  0x80,
  0,
  0,
  0,
  0,
  0,
  255,
  255,
  255,
  0x2c,
  0,
  0,
  0,
  0,
  1,
  0,
  1,
  0,
  0,
  2,
  2,
  0x44,
  0x01,
  0,
  0x3b,
]);

async function staffMember() {
  const s = await h.registerVerified();
  await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(s.id).run();
  return { id: s.id, token: (await h.login(s.email, s.password)).access_token };
}

describe("a request held open by a slow body", () => {
  it("from a staff member disabled while it was held, changes nothing", async () => {
    const compromised = await staffMember();
    const defender = await staffMember();
    const accomplice = await h.registerVerified();
    const held = heldJsonRequest("PATCH", `/api/v1/admin/users/${accomplice.id}`, compromised.token, { is_staff: true });
    await held.bodyAsked;
    const disabled = await h.call("PATCH", `/api/v1/admin/users/${compromised.id}`, { is_active: false }, { token: defender.token });
    expect(disabled.status, disabled.text).toBe(200);
    held.release();
    const res = await held.response;
    const row = await env.DB.prepare("SELECT is_staff FROM users WHERE id = ?").bind(accomplice.id).first<{ is_staff: number }>();
    expect({ status: res.status, accompliceIsStaff: row?.is_staff }).toEqual({ status: 401, accompliceIsStaff: 0 });
  });

  // An avatar's body is read after the token check (it may be 2 MiB), so its write checks the sign-in again.
  it.each([
    ["signed out by the owner's password reset", (victim: { email: string }) => resetPassword(victim.email)],
    [
      // Ending that one sign-in moves nothing of the account's (tokens_valid_after): the write
      // looks at the sign-in itself.
      "whose one sign-in the owner ended",
      async (victim: { access_token: string }, thief: { access_token: string }) => {
        const sid = decodeJwt(thief.access_token).payload.sid;
        expect((await h.call("DELETE", `/api/v1/me/sessions/${sid}`, undefined, { token: victim.access_token })).status).toBe(204);
      },
    ],
  ] as const)("of an avatar from a thief %s while it was held, sets nothing and keeps nothing", async (_, endThiefsSignIn) => {
    const victim = await h.signedInUser();
    const thief = await h.login(victim.email, victim.password);
    const held = heldRequest("PUT", "/api/v1/me/avatar", GIF, {
      authorization: `Bearer ${thief.access_token}`,
      "content-type": "image/gif",
    });
    await held.bodyAsked;
    await endThiefsSignIn(victim, thief);
    held.release();
    const res = await held.response;
    const row = await env.DB.prepare("SELECT avatar_key FROM profiles WHERE user_id = ?")
      .bind(victim.id)
      .first<{ avatar_key: string | null }>();
    const objects = (await env.AVATARS.list({ prefix: `avatars/${victim.id}/` })).objects;
    expect({ status: res.status, avatar: row?.avatar_key ?? null, objects: objects.length }).toEqual({
      status: 401,
      avatar: null,
      objects: 0,
    });
  });

  it("from a website form of a thief signed out by the owner's password reset while it was held, publishes nothing", async () => {
    const victim = await h.signedInUser();
    const thief = await h.login(victim.email, victim.password);
    const browser = { cookie: `__Host-lk_access=${thief.access_token}`, "sec-fetch-site": "same-origin" };
    const page = await h.app.fetch(new Request("http://latchkey.test/profilepage", { headers: browser }), env);
    const csrf = /name="_csrf" value="([0-9a-f]{64})"/.exec(await page.text())?.[1];
    expect(csrf).toBeDefined();
    const form = new URLSearchParams({ _csrf: csrf as string, content: "posted by the thief" }).toString();
    const held = heldRequest("POST", "/profilepage/statuses", form, { ...browser, "content-type": "application/x-www-form-urlencoded" });
    await held.bodyAsked;
    await resetPassword(victim.email);
    held.release();
    const res = await held.response;
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM statuses WHERE user_id = ?").bind(victim.id).first<{ n: number }>();
    expect({ status: res.status, statuses: row?.n }).toEqual({ status: 403, statuses: 0 });
  });

  it("from a thief signed out by the owner's password reset while it was held, publishes nothing", async () => {
    const victim = await h.signedInUser();
    const thief = await h.login(victim.email, victim.password);
    const held = heldJsonRequest("POST", "/api/v1/statuses", thief.access_token, { content: "posted by the thief" });
    await held.bodyAsked;
    await resetPassword(victim.email);
    held.release();
    const res = await held.response;
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM statuses WHERE user_id = ?").bind(victim.id).first<{ n: number }>();
    expect({ status: res.status, statuses: row?.n }).toEqual({ status: 401, statuses: 0 });
  });
});
