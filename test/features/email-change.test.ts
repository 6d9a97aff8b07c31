/**
 * Email change: the new address stays pending until the code mailed to it comes back, the old
 * address is told, and completing it voids every code and ends every other sign-in.
 */
import { env } from "cloudflare:test";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createBackgroundDeps } from "../../src/deps";
import { MAIL_MAX_RETRIES } from "../../src/features/mail/mail.consumer";
import type { MailMessage, NoticeMail } from "../../src/features/mail/mail.messages";
import { MemoryMailer } from "../../src/features/mail/mailer";
import { abandonStaleNotices, NOTICE_GIVE_UP_MS, NOTICE_LEASE_MS, sendPendingNotices } from "../../src/features/mail/notices";
import { RATE_LIMITS } from "../../src/lib/rate-limit";
import { probeD1 } from "../d1-wrap";
import { harness, setConfig, unique } from "../helpers";
import { capturingEnv, codeInMail, deliver, mailsFor } from "../mail-helpers";

const ME = "/api/v1/me";
const VERIFY = "/api/v1/me/email/verify";
const LOGIN = "/api/v1/auth/login";

describe("email change is pending until the new address proves itself", () => {
  const h = harness();
  const cap = capturingEnv();

  beforeAll(() => setConfig("access_token_ttl", "3600"));
  afterAll(() => setConfig("access_token_ttl", undefined));

  /** A signed-in user whose registration-code minute has passed. */
  async function user() {
    const u = await h.signedInUser();
    h.clock.advance(61_000);
    return u;
  }

  /** Asks to move `u` to `email`; returns the response and the code as read in the new mailbox. */
  async function requestChange(u: { access_token: string; password: string }, email: string) {
    const from = cap.sent.length;
    const notices = cap.notices.length;
    const res = await h.call("PATCH", ME, { email, current_password: u.password }, { token: u.access_token, env: cap.env });
    const mails = await mailsFor(cap.sent.slice(from), h.clock);
    const code = mails[0] ? codeInMail(mails[0]) : null;
    return { res, mails, code, notices: cap.notices.slice(notices) };
  }

  const activityTypes = async (userId: string) =>
    (
      await env.DB.prepare("SELECT type FROM activity WHERE user_id = ? ORDER BY created_at, rowid").bind(userId).all<{ type: string }>()
    ).results.map((r) => r.type);

  it("needs the current password, and changes nothing without it", async () => {
    const u = await user();
    const email = `${unique("new")}@example.com`;
    const missing = await h.call("PATCH", ME, { email }, { token: u.access_token, env: cap.env });
    expect(missing.status).toBe(401);
    expect(missing.json.code).toBe("invalid_current_password");
    const wrong = await h.call("PATCH", ME, { email, current_password: "not-it-at-all-1" }, { token: u.access_token, env: cap.env });
    expect(wrong.status).toBe(401);
    const me = await h.call("GET", ME, undefined, { token: u.access_token });
    expect(me.json.user).toMatchObject({ email: u.email, pending_email: null });
  });

  it("mails a code to the new address and a notice to the old one; completes with the code", async () => {
    const u = await user();
    const other = await h.login(u.email, u.password);
    const email = `${unique("moved")}@example.com`;

    const { res, mails, code, notices } = await requestChange(u, email);
    expect(res.status).toBe(200);
    expect(res.json.user).toMatchObject({ email: u.email, pending_email: email, email_verified: true });
    expect(mails.map((m) => m.to)).toEqual([email]);
    expect(mails[0]?.subject).toMatch(/new .*email address/i);
    expect(notices).toEqual([expect.objectContaining({ kind: "notice", notice: "email_change_requested", to: u.email, new_email: email })]);
    const noticeMails = await mailsFor(notices, h.clock);
    expect(noticeMails[0]?.text).toContain(email);
    expect(noticeMails[0]?.text).toMatch(/if this wasn't you/i);

    // Until the code comes back the account keeps its old, verified address.
    expect((await h.call("GET", ME, undefined, { token: u.access_token })).json.user.pending_email).toBe(email);
    expect((await h.call("POST", LOGIN, { email, password: u.password })).status).toBe(401);
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(200);

    const wrongCode = code === "000000" ? "111111" : "000000";
    expect((await h.call("POST", VERIFY, { code: wrongCode }, { token: u.access_token })).status).toBe(400);
    const done = await h.call("POST", VERIFY, { code }, { token: u.access_token, env: cap.env });
    expect(done.status).toBe(200);
    expect(done.json.user).toMatchObject({ email, pending_email: null, email_verified: true });
    expect(cap.notices.at(-1)).toMatchObject({ notice: "email_changed", to: u.email, new_email: email });

    // Every other sign-in ended, its access token with it; this one goes on.
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: other.refresh_token })).status).toBe(401);
    expect((await h.call("GET", ME, undefined, { token: other.access_token })).status).toBe(401);
    expect((await h.call("GET", ME, undefined, { token: u.access_token })).json.user.email).toBe(email);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token })).status).toBe(200);
    expect((await h.call("POST", LOGIN, { email: u.email, password: u.password })).status).toBe(401);
    expect((await h.call("POST", LOGIN, { email, password: u.password })).status).toBe(200);
    expect(await activityTypes(u.id)).toEqual(expect.arrayContaining(["email_change_requested", "email_changed"]));
    // The code worked once.
    expect((await h.call("POST", VERIFY, { code }, { token: u.access_token })).status).toBe(400);
  });

  it("voids every outstanding code of the account when the address changes", async () => {
    const u = await user();
    const from = cap.sent.length;
    expect((await h.call("POST", "/api/v1/auth/otp", { email: u.email, purpose: "login" }, { env: cap.env })).status).toBe(202);
    const [loginMail] = await mailsFor(cap.sent.slice(from), h.clock);
    const loginCode = codeInMail(loginMail as { text: string });
    h.clock.advance(61_000);

    const email = `${unique("moved")}@example.com`;
    const { code } = await requestChange(u, email);
    expect((await h.call("POST", VERIFY, { code }, { token: u.access_token })).status).toBe(200);
    expect((await h.call("POST", "/api/v1/auth/login/otp", { email: u.email, code: loginCode })).status).toBe(400);
    expect((await h.call("POST", "/api/v1/auth/login/otp", { email, code: loginCode })).status).toBe(400);
    const live = await env.DB.prepare("SELECT COUNT(*) AS n FROM otp_codes WHERE user_id = ? AND consumed_at IS NULL")
      .bind(u.id)
      .first<{ n: number }>();
    expect(live?.n).toBe(0);
  });

  it("answers 409 and changes nothing when another account took the address in between", async () => {
    const u = await user();
    const email = `${unique("raced")}@example.com`;
    const { code } = await requestChange(u, email);
    // The pending address reserved nothing: its owner registers it meanwhile.
    expect((await h.call("POST", "/api/v1/auth/register", { email, password: "someone-elses-pass-1" })).status).toBe(201);
    const res = await h.call("POST", VERIFY, { code }, { token: u.access_token });
    expect(res.status).toBe(409);
    expect(res.json.code).toBe("email_taken");
    const me = await h.call("GET", ME, undefined, { token: u.access_token });
    expect(me.json.user).toMatchObject({ email: u.email, pending_email: email });
  });

  it("giving the current address again cancels a pending change and kills its code", async () => {
    const u = await user();
    const { code } = await requestChange(u, `${unique("cancel")}@example.com`);
    const cancel = await h.call("PATCH", ME, { email: u.email }, { token: u.access_token });
    expect(cancel.status).toBe(200);
    expect(cancel.json.user.pending_email).toBeNull();
    expect((await h.call("POST", VERIFY, { code }, { token: u.access_token })).status).toBe(400);
  });

  it("mails at most one code a minute to an address (429 to the signed-in requester)", async () => {
    const u = await user();
    const email = `${unique("spam")}@example.com`;
    expect((await requestChange(u, email)).res.status).toBe(200);
    const again = await requestChange(u, email);
    expect(again.res.status).toBe(429);
    expect(again.mails).toHaveLength(0);
  });

  it("mails codes for at most five new addresses an hour per account, whatever the addresses", async () => {
    const u = await user();
    const limit = RATE_LIMITS.emailChangesPerAccount.limit;
    for (let i = 0; i < limit; i++) {
      const change = await requestChange(u, `victim+${unique("n")}@example.net`);
      expect(change.res.status).toBe(200);
      expect(change.mails).toHaveLength(1);
    }
    const over = await requestChange(u, `victim+${unique("n")}@example.net`);
    expect(over.res.status).toBe(429);
    expect(over.mails).toHaveLength(0);
    h.clock.advance(RATE_LIMITS.emailChangesPerAccount.windowMs);
    const again = { ...u, access_token: (await h.login(u.email, u.password)).access_token };
    expect((await requestChange(again, `victim+${unique("n")}@example.net`)).res.status).toBe(200);
  });

  it("tells whether an address has an account only to its password, at the pace of email changes", async () => {
    const u = await user();
    const taken = (await h.registerVerified()).email;
    const free = `${unique("free")}@example.com`;
    // Without the password (or with a wrong one) a registered address and a free one get the same
    // answer: before, 409 email_taken against 401 was a registration check without any limit.
    for (const current_password of [undefined, "not-it-at-all-1"]) {
      const answers = [];
      for (const email of [taken, free]) {
        const res = await h.call("PATCH", ME, { email, current_password }, { token: u.access_token, env: cap.env });
        answers.push([res.status, res.json.code]);
      }
      expect(answers).toEqual([
        [401, "invalid_current_password"],
        [401, "invalid_current_password"],
      ]);
    }
    // With it, each answer about a registered address counts as an email change asked.
    const limit = RATE_LIMITS.emailChangesPerAccount.limit;
    for (let i = 0; i < limit; i++) {
      const probe = await requestChange(u, taken);
      expect(probe.res.status).toBe(409);
      expect(probe.res.json.code).toBe("email_taken");
      expect(probe.mails).toHaveLength(0);
    }
    expect((await requestChange(u, taken)).res.status).toBe(429);
    // A right password that met a registered address was no failed guess: it locks nothing.
    expect((await h.call("POST", "/api/v1/auth/login", { email: u.email, password: u.password })).status).toBe(200);
  });

  describe("its security notices are never lost, only delayed", () => {
    // Notices of the changes made above stay pending until sent (they were not): start from none.
    beforeEach(async () => {
      await env.DB.prepare("DELETE FROM pending_notices").run();
    });
    const pendingNotices = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM pending_notices").first<{ n: number }>())?.n ?? 0;
    /** A queue that refuses notices (codes still go through to `cap`). */
    const refusingNotices = () => {
      const queue = {
        send: async (body: MailMessage) => {
          if (body.kind === "notice") throw new Error("Queue send failed: 503");
          await cap.env.MAIL_QUEUE.send(body);
        },
      } as unknown as Queue;
      return { ...cap.env, MAIL_QUEUE: queue } as Env;
    };
    const sendLater = async () => {
      h.clock.advance(NOTICE_LEASE_MS + 1);
      return sendPendingNotices(createBackgroundDeps(cap.env, h.clock));
    };
    /** The consumer sends `notices` (with `mailer`, or a memory one); returns the outcomes. */
    const consume = async (notices: NoticeMail[], options: { mailer?: ReturnType<typeof MemoryMailer>; attempts?: number } = {}) =>
      (await deliver(notices, { clock: h.clock, env: cap.env, mailer: options.mailer ?? MemoryMailer(), attempts: options.attempts }))
        .outcomes;
    const consumeWith = async (notices: NoticeMail[], bindings: Env) =>
      (await deliver(notices, { clock: h.clock, env: bindings, mailer: MemoryMailer() })).outcomes;
    /** A provider that refuses every mail. */
    const downProvider = () => Object.assign(MemoryMailer(), { send: async () => Promise.reject(new Error("provider answered 503")) });

    it("keeps each notice until the consumer has sent it", async () => {
      const before = await pendingNotices();
      const u = await user();
      const { res, code, notices } = await requestChange(u, `${unique("ok")}@example.com`);
      expect(res.status).toBe(200);
      expect(notices.map((n) => n.notice)).toEqual(["email_change_requested"]);
      const from = cap.notices.length;
      expect((await h.call("POST", `${ME}/email/verify`, { code }, { token: u.access_token, env: cap.env })).status).toBe(200);
      expect(cap.notices.slice(from).map((n) => n.notice)).toEqual(["email_changed"]);
      expect(await pendingNotices()).toBe(before + 2); // on the queue, not yet sent
      expect(await consume([...notices, ...cap.notices.slice(from)])).toEqual(["sent", "sent"]);
      expect(await pendingNotices()).toBe(before);
      expect((await sendLater()).sent).toBe(0);
    });

    it("sends them later when the queue refused them", async () => {
      vi.spyOn(console, "error").mockImplementation(() => {});
      const u = await user();
      const email = `${unique("flaky")}@example.com`;
      const from = cap.notices.length;
      const res = await h.call("PATCH", ME, { email, current_password: u.password }, { token: u.access_token, env: refusingNotices() });
      expect(res.status).toBe(200);
      const [mail] = await mailsFor(cap.sent.slice(-1), h.clock);
      const done = await h.call(
        "POST",
        `${ME}/email/verify`,
        { code: codeInMail(mail!) },
        { token: u.access_token, env: refusingNotices() },
      );
      expect(done.status).toBe(200);
      expect(cap.notices.length).toBe(from);
      await sendLater();
      const sent = cap.notices.slice(from).filter((n) => n.to === u.email);
      expect(sent.map((n) => n.notice).sort()).toEqual(["email_change_requested", "email_changed"]);
      expect(sent.every((n) => n.new_email === email)).toBe(true);
      expect(await consume(sent)).toEqual(["sent", "sent"]);
      expect((await sendLater()).sent).toBe(0); // each once
    });

    it("sends a notice again when the provider failed it past the queue's retries (dead-lettered)", async () => {
      vi.spyOn(console, "error").mockImplementation(() => {});
      vi.spyOn(console, "warn").mockImplementation(() => {});
      const u = await user();
      const { notices } = await requestChange(u, `${unique("outage")}@example.com`);
      const [notice] = notices as [NoticeMail];
      const outcomes = [];
      for (let attempt = 1; attempt <= MAIL_MAX_RETRIES + 1; attempt++) {
        outcomes.push(...(await consume([notice], { mailer: downProvider(), attempts: attempt })));
      }
      expect(outcomes.at(-1)).toBe("dead_letter");
      // The provider is back: the notice comes off the table again, and this time it is sent.
      const from = cap.notices.length;
      expect((await sendLater()).sent).toBe(1);
      const again = cap.notices.slice(from);
      expect(again).toEqual([notice]);
      const mailer = MemoryMailer();
      expect(await consume(again, { mailer })).toEqual(["sent"]);
      expect(mailer.outbox.map((m) => m.to)).toEqual([u.email]);
      expect((await sendLater()).sent).toBe(0);
    });

    it("enqueues a due notice once when two runs meet, and, while it cannot be forgotten, again only each time its lease is over", async () => {
      vi.spyOn(console, "warn").mockImplementation(() => {});
      const u = await user();
      const { notices } = await requestChange(u, `${unique("stuck")}@example.com`);
      const [notice] = notices as [NoticeMail];
      h.clock.advance(NOTICE_LEASE_MS + 1);
      const from = cap.notices.length;
      const deps = createBackgroundDeps(cap.env, h.clock);
      await Promise.all([sendPendingNotices(deps), sendPendingNotices(deps)]);
      expect(cap.notices.slice(from)).toEqual([notice]);
      // The provider takes it, but its row cannot be deleted: it goes again once per lease, not once per batch.
      const probe = probeD1(env.DB);
      probe.failWhen(/^delete from "pending_notices"/i);
      const stuck = { ...cap.env, DB: probe.db } as Env;
      const run = async () => {
        await sendPendingNotices(createBackgroundDeps(stuck, h.clock));
        return cap.notices.splice(from);
      };
      const queued = cap.notices.splice(from);
      expect(await consumeWith(queued, stuck)).toEqual(["sent"]);
      expect(await run()).toEqual([]);
      expect(await run()).toEqual([]);
      h.clock.advance(NOTICE_LEASE_MS); // its first lease is over
      expect(await run()).toEqual([notice]);
      h.clock.advance(NOTICE_LEASE_MS); // the second is twice as long
      expect(await run()).toEqual([]);
      h.clock.advance(NOTICE_LEASE_MS);
      expect(await run()).toEqual([notice]);
    });

    it("gives a notice up after three days, in the daily cron, with an error in the log", async () => {
      const lines: string[] = [];
      vi.spyOn(console, "error").mockImplementation((line: unknown) => void lines.push(String(line)));
      const u = await user();
      await requestChange(u, `${unique("never")}@example.com`);
      expect(await pendingNotices()).toBe(1);
      const deps = createBackgroundDeps(cap.env, h.clock);
      h.clock.advance(NOTICE_GIVE_UP_MS);
      expect(await abandonStaleNotices(deps)).toBe(0);
      h.clock.advance(1);
      // A mail batch leaves that to the cron: it only enqueues again.
      await sendPendingNotices(deps);
      expect(await pendingNotices()).toBe(1);
      expect(await abandonStaleNotices(deps)).toBe(1);
      expect(await pendingNotices()).toBe(0);
      expect(lines.map((l) => JSON.parse(l)).find((l) => l.event === "mail.notice_abandoned")).toMatchObject({ level: "error" });
    });

    it("sends the email_changed notice later when the change committed but its reply was lost", async () => {
      vi.spyOn(console, "error").mockImplementation(() => {});
      const u = await user();
      const email = `${unique("lost")}@example.com`;
      const { code, notices } = await requestChange(u, email);
      expect(await consume(notices)).toEqual(["sent"]);
      const probe = probeD1(env.DB);
      probe.loseReplyWhen(/update "users" set "email"/i);
      const from = cap.notices.length;
      const lost = await h.call("POST", `${ME}/email/verify`, { code }, { token: u.access_token, env: { ...cap.env, DB: probe.db } });
      expect(lost.status).toBe(500);
      expect((await env.DB.prepare("SELECT email FROM users WHERE id = ?").bind(u.id).first<{ email: string }>())?.email).toBe(email);
      expect(cap.notices.slice(from)).toEqual([]);
      await sendLater();
      expect(cap.notices.slice(from).map((n) => [n.notice, n.to, n.new_email])).toEqual([["email_changed", u.email, email]]);
    });
  });

  describe("securing the account cancels a pending change, so a thief's code no longer completes it", () => {
    /** A thief who knows the password asks to move the account to their own address. */
    async function stolenChange() {
      const u = await user();
      const thief = await h.login(u.email, u.password);
      const { res, code } = await requestChange(
        { access_token: thief.access_token, password: u.password },
        `${unique("thief")}@example.com`,
      );
      expect(res.status).toBe(200);
      return { u, code };
    }

    async function expectCancelled(token: string, code: string | null) {
      expect((await h.call("GET", ME, undefined, { token })).json.user.pending_email).toBeNull();
      const verify = await h.call("POST", VERIFY, { code }, { token });
      expect(verify.status).toBe(400);
      expect(verify.json.code).toBe("invalid_code");
    }

    it("by a password change", async () => {
      const { u, code } = await stolenChange();
      const changed = await h.call(
        "POST",
        `${ME}/password`,
        { current_password: u.password, new_password: "a-fresh-secret-value-58" },
        { token: u.access_token },
      );
      expect(changed.status, changed.text).toBe(204);
      h.clock.advance(1000);
      await expectCancelled((await h.login(u.email, "a-fresh-secret-value-58")).access_token, code);
    });

    it("by logout-all", async () => {
      const { u, code } = await stolenChange();
      expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: u.access_token })).status).toBe(204);
      h.clock.advance(1000);
      await expectCancelled((await h.login(u.email, u.password)).access_token, code);
    });

    it("by a password reset", async () => {
      const { u, code } = await stolenChange();
      h.clock.advance(61_000);
      const from = cap.sent.length;
      expect((await h.call("POST", "/api/v1/auth/otp", { email: u.email, purpose: "reset_password" }, { env: cap.env })).status).toBe(202);
      const [mail] = await mailsFor(cap.sent.slice(from), h.clock);
      const newPassword = "a-fresh-secret-value-59";
      const reset = await h.call("POST", "/api/v1/auth/password/reset", {
        email: u.email,
        code: mail ? codeInMail(mail) : null,
        new_password: newPassword,
      });
      expect(reset.status, reset.text).toBe(204);
      h.clock.advance(1000);
      await expectCancelled((await h.login(u.email, newPassword)).access_token, code);
    });
  });

  describe("a rename in flight writes back only the username", () => {
    const RENAME = /^update "users" set .*"username"/;

    it("and does not bring back a pending change that a password reset cancelled meanwhile: the reset ended its sign-in, so it lands nowhere (409)", async () => {
      const { u } = await (async () => {
        const owner = await user();
        const thief = await h.login(owner.email, owner.password);
        const change = await requestChange(
          { access_token: thief.access_token, password: owner.password },
          `${unique("thief")}@example.com`,
        );
        expect(change.res.status).toBe(200);
        return { u: { ...owner, thiefToken: thief.access_token } };
      })();
      const probe = probeD1(env.DB);
      const staged = probe.onceBefore(RENAME, async () => {
        h.clock.advance(61_000);
        const from = cap.sent.length;
        expect((await h.call("POST", "/api/v1/auth/otp", { email: u.email, purpose: "reset_password" }, { env: cap.env })).status).toBe(
          202,
        );
        const [mail] = await mailsFor(cap.sent.slice(from), h.clock);
        const reset = await h.call("POST", "/api/v1/auth/password/reset", {
          email: u.email,
          code: mail ? codeInMail(mail) : null,
          new_password: "a-fresh-secret-value-61",
        });
        expect(reset.status, reset.text).toBe(204);
      });
      const renamed = unique("renamed");
      const rename = await h.call("PATCH", ME, { username: renamed }, { token: u.thiefToken, env: { ...env, DB: probe.db } });
      expect(staged.done).toBe(true);
      expect(rename.status, rename.text).toBe(409);
      const row = await env.DB.prepare("SELECT pending_email, username FROM users WHERE id = ?").bind(u.id).first();
      expect(row).toEqual({ pending_email: null, username: u.username });
    });

    it("and a confirmation that lost its pending address to it records no change, ends no sign-in and sends no notice", async () => {
      const u = await user();
      const otherDevice = await h.login(u.email, u.password);
      const email = `${unique("moved")}@example.com`;
      const { code } = await requestChange(u, email);
      // The rename read the account while the change was still pending, and writes after the
      // owner cancelled it by asking for the current address back.
      const probe = probeD1(env.DB);
      const staged = probe.onceBefore(RENAME, async () => {
        const cancel = await h.call("PATCH", ME, { email: u.email }, { token: u.access_token, env: cap.env });
        expect(cancel.status, cancel.text).toBe(200);
      });
      const rename = await h.call("PATCH", ME, { username: unique("tab") }, { token: u.access_token, env: { ...env, DB: probe.db } });
      expect(staged.done).toBe(true);
      expect(rename.status, rename.text).toBe(200);
      const notices = cap.notices.length;
      const confirm = await h.call("POST", VERIFY, { code }, { token: u.access_token, env: cap.env });
      expect(confirm.status).toBe(400);
      expect(confirm.json.code).toBe("invalid_code");
      const row = await env.DB.prepare("SELECT email, pending_email FROM users WHERE id = ?").bind(u.id).first();
      expect(row).toEqual({ email: u.email, pending_email: null });
      expect(await activityTypes(u.id)).not.toContain("email_changed");
      expect(cap.notices.slice(notices)).toEqual([]);
      expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: otherDevice.refresh_token })).status).toBe(200);
    });
  });

  it("without a pending change, any code is refused", async () => {
    const u = await user();
    const res = await h.call("POST", VERIFY, { code: "123456" }, { token: u.access_token });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("invalid_code");
  });
});
