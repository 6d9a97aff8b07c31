/**
 * A password sign-in reads the account, spends tens of milliseconds verifying the password, then
 * writes its session. Whatever ends the account's sign-ins meanwhile — a password change or
 * reset, logout-all, disabling — must end this one too: someone who knows the old password and
 * keeps logins in flight must not come out of the victim's "sign out everywhere" with a session.
 * The concurrent action runs just before the sign-in's write batch is sent.
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { probeD1 } from "../d1-wrap";
import { harness } from "../helpers";

const h = harness();
const probe = probeD1(env.DB);
const probed = { ...env, DB: probe.db } as Env;

afterEach(() => probe.beforeBatch(null));

/** Signs in as `user` with the account changed by `meanwhile` between the read and the write. */
async function loginWhile(user: { email: string; password: string }, meanwhile: () => Promise<void>) {
  let done = false;
  probe.beforeBatch(async (statements) => {
    if (done || !statements.some((sql) => sql.startsWith('insert into "refresh_tokens"'))) return;
    done = true;
    await meanwhile();
  });
  const res = await h.call("POST", "/api/v1/auth/login", { email: user.email, password: user.password }, { env: probed });
  expect(done, "the concurrent change ran before the sign-in's write").toBe(true);
  return res;
}

async function state(userId: string) {
  const row = await env.DB.prepare(
    `SELECT (SELECT COUNT(*) FROM refresh_tokens WHERE user_id = ?1 AND revoked_at IS NULL) AS live,
            (SELECT COUNT(*) FROM activity WHERE user_id = ?1 AND type = 'login') AS logins`,
  )
    .bind(userId)
    .first<{ live: number; logins: number }>();
  return row as { live: number; logins: number };
}

describe("a password sign-in racing what ends every sign-in", () => {
  it("gets no session when the password changes meanwhile", async () => {
    const victim = await h.signedInUser();
    h.clock.advance(1500);
    const before = await state(victim.id);
    const res = await loginWhile(victim, async () => {
      const changed = await h.call(
        "POST",
        "/api/v1/me/password",
        { current_password: victim.password, new_password: "a-brand-new-secret-71" },
        { token: victim.access_token },
      );
      expect(changed.status, changed.text).toBe(204);
    });
    expect(res.status, res.text).toBe(401);
    expect(await state(victim.id)).toEqual(before); // the victim's own session only; no sign-in recorded
  });

  it("gets no session when every sign-in ends meanwhile (logout-all)", async () => {
    const victim = await h.signedInUser();
    h.clock.advance(1500);
    const res = await loginWhile(victim, async () => {
      expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: victim.access_token })).status).toBe(204);
    });
    expect(res.status, res.text).toBe(401);
    expect((await state(victim.id)).live).toBe(0);
  });

  it("gets no session when staff disable the account meanwhile", async () => {
    const victim = await h.signedInUser();
    const staff = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(staff.id).run();
    h.clock.advance(1500);
    const res = await loginWhile(victim, async () => {
      const disabled = await h.call("PATCH", `/api/v1/admin/users/${victim.id}`, { is_active: false }, { token: staff.access_token });
      expect(disabled.status, disabled.text).toBe(200);
    });
    expect(res.status, res.text).toBe(401);
    expect((await state(victim.id)).live).toBe(0);
  });

  it("still signs in when nothing changed meanwhile", async () => {
    const user = await h.registerVerified();
    const res = await loginWhile(user, async () => {});
    expect(res.status, res.text).toBe(200);
    expect((await state(user.id)).live).toBe(1);
  });
});
