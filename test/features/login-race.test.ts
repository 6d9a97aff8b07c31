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
import { capturingEnv } from "../mail-helpers";

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

  it("forgives none of the address's wrong passwords when it gets no session", async () => {
    const victim = await h.signedInUser();
    const failures = () =>
      env.DB.prepare("SELECT count AS n FROM rate_limits WHERE key = ?")
        .bind(`loginFailuresPerIdentifier:email:${victim.email}`)
        .first<{ n: number }>();
    for (let i = 0; i < 3; i++)
      expect((await h.call("POST", "/api/v1/auth/login", { email: victim.email, password: "not-the-password-1" })).status).toBe(401);
    expect((await failures())?.n).toBe(3);
    h.clock.advance(1500);
    const res = await loginWhile(victim, async () => {
      expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: victim.access_token })).status).toBe(204);
    });
    expect(res.status, res.text).toBe(401);
    // A sign-in that ended in 401 is a failed try like any other: its reservation stays too.
    expect((await failures())?.n).toBe(4);
  });

  it("still signs in when nothing changed meanwhile", async () => {
    const user = await h.registerVerified();
    const res = await loginWhile(user, async () => {});
    expect(res.status, res.text).toBe(200);
    expect((await state(user.id)).live).toBe(1);
  });
});

describe("a code sign-in racing what ends every sign-in", () => {
  const mail = capturingEnv();

  async function mailedLoginCode(email: string) {
    h.clock.advance(61_000);
    const from = mail.sent.length;
    expect((await h.call("POST", "/api/v1/auth/otp", { email, purpose: "login" }, { env: mail.env })).status).toBe(202);
    return mail.sent.slice(from).find((m) => m.purpose === "login")?.code;
  }

  /** Signs in with `code`, `meanwhile` running just before the spend's batch. */
  async function codeLoginWhile(email: string, code: string | undefined, meanwhile: () => Promise<void>) {
    let done = false;
    probe.beforeBatch(async (statements) => {
      if (done || !statements.some((sql) => sql.startsWith('insert into "refresh_tokens"'))) return;
      done = true;
      await meanwhile();
    });
    const res = await h.call("POST", "/api/v1/auth/login/otp", { email, code }, { env: probed });
    expect(done, "the concurrent change ran before the sign-in's write").toBe(true);
    return res;
  }

  it("gets no session when every sign-in ends meanwhile (logout-all)", async () => {
    const victim = await h.registerVerified();
    const code = await mailedLoginCode(victim.email);
    const session = await h.login(victim.email, victim.password);
    h.clock.advance(1500);
    const res = await codeLoginWhile(victim.email, code, async () => {
      expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: session.access_token })).status).toBe(204);
    });
    expect(res.status).toBe(400);
    expect((await state(victim.id)).live).toBe(0);
  });

  it("gets no session that re-enabling the account would bring back, when staff disable it meanwhile", async () => {
    const victim = await h.registerVerified();
    const code = await mailedLoginCode(victim.email);
    const staff = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(staff.id).run();
    const res = await codeLoginWhile(victim.email, code, async () => {
      const disabled = await h.call("PATCH", `/api/v1/admin/users/${victim.id}`, { is_active: false }, { token: staff.access_token });
      expect(disabled.status, disabled.text).toBe(200);
    });
    expect(res.status).toBe(400);
    expect((await state(victim.id)).live).toBe(0);
  });
});

/**
 * The same race for what a signed-in caller does with the current password: a password change,
 * an email change, deleting the account. Each checks the password against the account as it was
 * read, then writes; a reset or password change that commits in between must win, or someone who
 * knows the old password keeps a change in flight and takes the account back after every reset.
 */
describe("a change authorised by the old password, racing what ends every sign-in", () => {
  const mail = capturingEnv();
  const THIEF_PASSWORD = "thiefs-own-secret-58";
  const VICTIM_PASSWORD = "victims-new-secret-93";
  const login = (email: string, password: string) => h.call("POST", "/api/v1/auth/login", { email, password });

  /** Runs the thief's request with `meanwhile` just before its write batch (the one matching `batch`). */
  async function whileWriting(batch: RegExp, thief: () => Promise<{ status: number }>, meanwhile: () => Promise<void>) {
    let done = false;
    probe.beforeBatch(async (statements) => {
      if (done || !statements.some((sql) => batch.test(sql))) return;
      done = true;
      await meanwhile();
    });
    const res = await thief();
    expect(done, "the victim's change ran before the thief's write").toBe(true);
    return res;
  }

  /** The victim resets the password with a code mailed to the address. */
  async function resetPassword(email: string) {
    h.clock.advance(61_000); // one code a minute per address
    const from = mail.sent.length;
    expect((await h.call("POST", "/api/v1/auth/otp", { email, purpose: "reset_password" }, { env: mail.env })).status).toBe(202);
    const code = mail.sent.slice(from).find((m) => m.purpose === "reset_password")?.code;
    const reset = await h.call("POST", "/api/v1/auth/password/reset", { email, code, new_password: VICTIM_PASSWORD });
    expect(reset.status, reset.text).toBe(204);
  }

  /** POST /me/password with `token`, from `current` to `next`. */
  const changePassword = (token: string, current: string, next: string, env?: Env) =>
    h.call("POST", "/api/v1/me/password", { current_password: current, new_password: next }, { token, env });

  it.each([
    ["a password reset", (victim: { email: string }) => resetPassword(victim.email)],
    [
      "the owner's own password change",
      async (victim: { password: string; access_token: string }) => {
        const changed = await changePassword(victim.access_token, victim.password, VICTIM_PASSWORD);
        expect(changed.status, changed.text).toBe(204);
      },
    ],
  ] as const)("a password change loses to %s", async (_what, meanwhile) => {
    const victim = await h.signedInUser();
    const thief = await h.login(victim.email, victim.password);
    h.clock.advance(1500);
    const res = await whileWriting(
      /^update "refresh_tokens"/,
      () => changePassword(thief.access_token, victim.password, THIEF_PASSWORD, probed),
      () => meanwhile(victim),
    );
    expect(res.status).toBe(409);
    expect((await login(victim.email, THIEF_PASSWORD)).status).toBe(401);
    expect((await login(victim.email, VICTIM_PASSWORD)).status).toBe(200);
  });

  it("an email change loses to a password reset: no pending address, no live code", async () => {
    const victim = await h.signedInUser();
    const thief = await h.login(victim.email, victim.password);
    const res = await whileWriting(
      /^insert into "otp_codes"/,
      () =>
        h.call(
          "PATCH",
          "/api/v1/me",
          { email: "thief@example.com", current_password: victim.password },
          { token: thief.access_token, env: { ...probed, MAIL_QUEUE: mail.env.MAIL_QUEUE } },
        ),
      () => resetPassword(victim.email),
    );
    expect(res.status).toBe(409);
    const row = await env.DB.prepare(
      `SELECT pending_email, (SELECT COUNT(*) FROM otp_codes WHERE user_id = ?1 AND purpose = 'change_email' AND consumed_at IS NULL) AS live
         FROM users WHERE id = ?1`,
    )
      .bind(victim.id)
      .first<{ pending_email: string | null; live: number }>();
    expect(row).toEqual({ pending_email: null, live: 0 });
  });

  it("deleting the account loses to a password reset", async () => {
    const victim = await h.signedInUser();
    const thief = await h.login(victim.email, victim.password);
    const res = await whileWriting(
      /^delete from "profiles"/,
      () => h.call("DELETE", "/api/v1/me", { current_password: victim.password }, { token: thief.access_token, env: probed }),
      () => resetPassword(victim.email),
    );
    expect(res.status).toBe(409);
    expect((await login(victim.email, VICTIM_PASSWORD)).status).toBe(200);
  });

  it("each still goes through when nothing changed meanwhile", async () => {
    const user = await h.signedInUser();
    const changed = await whileWriting(
      /^update "refresh_tokens"/,
      () => changePassword(user.access_token, user.password, THIEF_PASSWORD, probed),
      async () => {},
    );
    expect(changed.status).toBe(204);
    const deleted = await whileWriting(
      /^delete from "profiles"/,
      () => h.call("DELETE", "/api/v1/me", { current_password: THIEF_PASSWORD }, { token: user.access_token, env: probed }),
      async () => {},
    );
    expect(deleted.status).toBe(204);
  });
});
