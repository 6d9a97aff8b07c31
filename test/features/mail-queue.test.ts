import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RETRY_MAX_SECONDS, retryDelaySeconds } from "../../src/features/mail/mail.consumer";
import { escapeHtml, renderOtpMail } from "../../src/features/mail/mail.templates";
import { CloudflareMailer, ConsoleMailer, HttpMailer, MemoryMailer } from "../../src/features/mail/mailer";
import { addressOf, buildMimeMessage } from "../../src/features/mail/mime";
import { harness, unique } from "../helpers";
import { capturingEnv, codeInMail, deliver, type CodeMail as MailMessage } from "../mail-helpers";

const PASSWORD = "Tr0ub4dor&3-horse";

describe("mail queue and drivers", () => {
  const h = harness();
  const cap = capturingEnv();

  afterEach(() => {
    vi.restoreAllMocks();
  });

  async function registerUnverified() {
    const email = `${unique("mq")}@example.com`;
    const from = cap.sent.length;
    const res = await h.call("POST", "/api/v1/auth/register", { email, password: PASSWORD }, { env: cap.env });
    expect(res.status).toBe(201);
    return { id: res.json.user.id as string, email, message: cap.sent[from] as MailMessage };
  }

  async function requestCode(email: string, purpose: MailMessage["purpose"]) {
    const from = cap.sent.length;
    expect((await h.call("POST", "/api/v1/auth/otp", { email, purpose }, { env: cap.env })).status).toBe(202);
    return cap.sent[from] as MailMessage;
  }

  describe("a code mail the queue refuses", () => {
    /** The bindings with a queue that refuses code mails (notices still go through). */
    const refusingCodes = () =>
      ({
        ...cap.env,
        MAIL_QUEUE: {
          send: async (body: { kind: string }) => {
            if (body.kind === "otp") throw new Error("Queue send failed: 503");
            await cap.env.MAIL_QUEUE.send(body);
          },
        } as unknown as Queue,
      }) as Env;
    const quiet = () => vi.spyOn(console, "error").mockImplementation(() => {});

    it("POST /auth/otp says 503, for an unknown address alike, and the code can be asked for again at once", async () => {
      quiet();
      const u = await h.registerVerified();
      h.clock.advance(61_000);
      const refused = await h.call("POST", "/api/v1/auth/otp", { email: u.email, purpose: "login" }, { env: refusingCodes() });
      const unknown = await h.call(
        "POST",
        "/api/v1/auth/otp",
        { email: `${unique("nobody")}@example.com`, purpose: "login" },
        { env: refusingCodes() },
      );
      expect([refused.status, refused.json.code]).toEqual([503, "service_unavailable"]);
      expect([unknown.status, unknown.json.code]).toEqual([503, "service_unavailable"]);
      // A refusal is transient: the answer says when to ask again (RFC 9110 §10.2.3), alike for both.
      expect(refused.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
      expect(unknown.headers.get("retry-after")).toBe(refused.headers.get("retry-after"));
      // Nothing of it is live or counted: a new code goes out at once, and the refused one never works.
      const again = await requestCode(u.email, "login");
      expect((await h.call("POST", "/api/v1/auth/login/otp", { email: u.email, code: again.code })).status).toBe(200);
    });

    it("registration still creates the account, and its code can be asked for again at once", async () => {
      quiet();
      const email = `${unique("reg")}@example.com`;
      const registered = await h.call("POST", "/api/v1/auth/register", { email, password: PASSWORD }, { env: refusingCodes() });
      expect(registered.status, registered.text).toBe(201);
      const again = await requestCode(email, "verify_email");
      expect((await h.call("POST", "/api/v1/auth/verify-email", { email, code: again.code, password: PASSWORD })).status).toBe(200);
    });

    it("an email change says 503 and can be asked again at once (each try still one of the account's five an hour: its notice went)", async () => {
      quiet();
      const u = await h.signedInUser();
      const email = `${unique("new")}@example.com`;
      for (let i = 0; i < 3; i++) {
        const refused = await h.call(
          "PATCH",
          "/api/v1/me",
          { email, current_password: u.password },
          { token: u.access_token, env: refusingCodes() },
        );
        expect([i, refused.status]).toEqual([i, 503]);
        expect(refused.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
      }
      const from = cap.sent.length;
      const again = await h.call("PATCH", "/api/v1/me", { email, current_password: u.password }, { token: u.access_token, env: cap.env });
      expect(again.status, again.text).toBe(200);
      const code = cap.sent.slice(from).find((m) => m.purpose === "change_email")?.code;
      expect((await h.call("POST", "/api/v1/me/email/verify", { code }, { token: u.access_token })).status).toBe(200);
      const counted = await env.DB.prepare("SELECT count FROM rate_limits WHERE key = ?")
        .bind(`emailChangesPerAccount:${u.id}`)
        .first<{ count: number }>();
      expect(counted?.count).toBe(4);
    });
  });

  it("delivers a registration code through the real local queue to the console driver, which outside development logs no code", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    });
    const email = `${unique("live")}@example.com`;
    const live = harness();
    // The real MAIL_QUEUE binding: the message is delivered to this worker's queue() handler,
    // whose env is the tests' own: ENVIRONMENT "production", as a bare `wrangler deploy` would run.
    expect(env.ENVIRONMENT).toBe("production");
    expect((await live.call("POST", "/api/v1/auth/register", { email, password: PASSWORD })).status).toBe(201);

    const line = new RegExp(`^\\[mail\\] to=${email.replace(/\./g, "\\.")} purpose=verify_email expires=\\S+ \\(not sent, code withheld`);
    await vi.waitFor(() => expect(lines.some((l) => line.test(l))).toBe(true), { timeout: 10_000, interval: 50 });
    // No code and no body anywhere in the log (development's whole loop: dev-inbox.test.ts, the e2e suite).
    expect(lines.filter((l) => l.includes(email) || /\b\d{6}\b/.test(l) || l.includes("activate"))).toHaveLength(1);
    expect(lines.join("\n")).not.toMatch(/code=|^ {4}\d{6}$/m);
  });

  it("never puts a code on the queue readable: it travels sealed to its own message, and a moved or forged seal is not mailed", async () => {
    const ada = await registerUnverified();
    const grace = await registerUnverified();
    const raw = cap.queued.filter((m) => m.kind === "otp" && (m.to === ada.email || m.to === grace.email));
    expect(raw).toHaveLength(2);
    for (const [message, code] of [
      [raw[0], ada.message.code],
      [raw[1], grace.message.code],
    ] as const) {
      expect(JSON.stringify(message)).not.toContain(code);
      expect(Object.keys(message as object)).not.toContain("code");
    }

    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const mailer = MemoryMailer();
    const moved = { ...grace.message, sealed_code: ada.message.sealed_code };
    const otherSecret = { ...env, OTP_SECRET: "another-otp-secret-of-at-least-32-characters" } as Env;
    const { outcomes } = await deliver([moved, { ...ada.message, sealed_code: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }], {
      clock: h.clock,
      mailer,
    });
    const elsewhere = await deliver([ada.message], { clock: h.clock, mailer, env: otherSecret });
    expect([...outcomes, ...elsewhere.outcomes]).toEqual(["malformed", "malformed", "malformed"]);
    expect(mailer.outbox).toEqual([]);
    expect(errors.mock.calls.map((c) => String(c[0])).join("\n")).toContain("sealed_code");

    // The untouched messages still go out, each with its own code.
    await deliver([ada.message, grace.message], { clock: h.clock, mailer });
    expect(mailer.outbox.map(codeInMail)).toEqual([ada.message.code, grace.message.code]);
  });

  it("mails a code with a text and an HTML body, then acks the message", async () => {
    const user = await registerUnverified();
    const mailer = MemoryMailer();
    const { ids, result } = await deliver([user.message], { clock: h.clock, mailer });
    expect(result.explicitAcks).toEqual(ids);
    expect(result.retryMessages).toEqual([]);
    const [mail] = mailer.outbox;
    expect(mail).toMatchObject({ to: user.email, subject: "Your Latchkey activation code", idempotencyKey: user.message.code_id });
    expect(codeInMail(mail!)).toBe(user.message.code);
    expect(mail!.html).toContain(`>${user.message.code}</p>`);
  });

  it("acks without mailing when the code was superseded, used or has expired", async () => {
    const superseded = await registerUnverified();
    h.clock.advance(61_000);
    const replacement = await requestCode(superseded.email, "verify_email");

    const used = await registerUnverified();
    expect(
      (await h.call("POST", "/api/v1/auth/verify-email", { email: used.email, code: used.message.code, password: PASSWORD })).status,
    ).toBe(200);

    const expiring = await registerUnverified();
    const logs = vi.spyOn(console, "log").mockImplementation(() => {});
    const mailer = MemoryMailer();
    const late = { now: () => Date.parse(expiring.message.expires_at) };
    const { ids, outcomes, result } = await deliver([superseded.message, used.message, expiring.message], { clock: late, mailer });
    expect(outcomes).toEqual(["skipped", "skipped", "skipped"]);
    expect(result.explicitAcks.sort()).toEqual([...ids].sort());
    expect(result.retryMessages).toEqual([]);
    expect(mailer.outbox).toEqual([]);
    const skipLines = logs.mock.calls.map((c) => String(c[0]));
    expect(skipLines.some((l) => l.includes("used or superseded"))).toBe(true);
    expect(skipLines.some((l) => l.includes("expired"))).toBe(true);
    expect(skipLines.join("\n")).not.toContain(superseded.message.code);

    // The replacement is still live and goes out.
    const fresh = MemoryMailer();
    await deliver([replacement], { clock: h.clock, mailer: fresh });
    expect(fresh.outbox.map(codeInMail)).toEqual([replacement.code]);
  });

  it("acks and logs a malformed message instead of retrying it forever, without logging its body", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const mailer = MemoryMailer();
    const valid = (await registerUnverified()).message;
    const bodies = [
      {},
      "hello",
      null,
      { ...valid, sealed_code: "12ab56" },
      { ...valid, purpose: "delete_account" },
      { ...valid, kind: "newsletter" },
    ];
    const { ids, outcomes, result } = await deliver(bodies, { clock: h.clock, mailer });
    expect(outcomes).toEqual(bodies.map(() => "malformed"));
    expect(result.explicitAcks.sort()).toEqual([...ids].sort());
    expect(result.retryMessages).toEqual([]);
    expect(mailer.outbox).toEqual([]);
    const logged = errors.mock.calls.map((c) => String(c[0])).join("\n");
    expect(logged).toContain("malformed");
    expect(logged).not.toContain(valid.code);
    expect(logged).not.toContain(valid.to);
  });

  it("retries with backoff while the provider fails, then sends through the http driver", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const user = await registerUnverified();
    const requests: { url: string; headers: Headers; body: Record<string, unknown> }[] = [];
    const statuses = [500, 502, 200];
    // A stub of the provider's endpoint: answers 500, 502, then 200, recording what it received.
    const provider: typeof fetch = async (input, init) => {
      const request = new Request(input, init);
      requests.push({ url: request.url, headers: request.headers, body: await request.json() });
      const status = statuses.shift() ?? 200;
      return new Response(JSON.stringify(status === 200 ? { id: "email-1" } : { message: "boom" }), { status });
    };
    const httpEnv = { ...env, MAIL_DRIVER: "http" } as Env;

    const first = await deliver([user.message], { clock: h.clock, env: httpEnv, fetch: provider, attempts: 1 });
    expect(first.result.explicitAcks).toEqual([]);
    expect(first.result.retryMessages).toEqual([{ msgId: first.ids[0] }]);
    expect(first.retries).toEqual([{ msgId: first.ids[0], delaySeconds: 5 }]);

    h.clock.advance(5_000);
    const second = await deliver([user.message], { clock: h.clock, env: httpEnv, fetch: provider, attempts: 2 });
    expect(second.retries).toEqual([{ msgId: second.ids[0], delaySeconds: 10 }]);

    h.clock.advance(70_000); // a slow queue: past a minute boundary of the code's lifetime
    const third = await deliver([user.message], { clock: h.clock, env: httpEnv, fetch: provider, attempts: 3 });
    expect(third.outcomes).toEqual(["sent"]);
    expect(third.result.explicitAcks).toEqual(third.ids);
    expect(third.result.retryMessages).toEqual([]);

    expect(requests).toHaveLength(3);
    // One idempotency key, so one payload: a provider refuses a key sent again with another body
    // (and the first try may have been delivered though its answer was lost).
    expect(new Set(requests.map((r) => JSON.stringify(r.body))).size).toBe(1);
    const sent = requests[2]!;
    expect(sent.url).toBe(env.MAIL_API_URL);
    expect(sent.headers.get("authorization")).toBe(`Bearer ${env.MAIL_API_KEY}`);
    expect(sent.headers.get("idempotency-key")).toBe(user.message.code_id);
    expect(sent.body).toMatchObject({ from: env.MAIL_FROM, to: [user.email], subject: "Your Latchkey activation code" });
    expect(String(sent.body.text)).toContain(user.message.code);
    expect(String(sent.body.html)).toContain(user.message.code);
  });

  it("treats an unreachable provider as a failure to retry", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const user = await registerUnverified();
    const unreachable: typeof fetch = async () => {
      throw new TypeError("network connection lost");
    };
    const { ids, result, retries } = await deliver([user.message], {
      clock: h.clock,
      env: { ...env, MAIL_DRIVER: "http" } as Env,
      fetch: unreachable,
      attempts: 4,
    });
    expect(result.retryMessages).toEqual([{ msgId: ids[0] }]);
    expect(retries).toEqual([{ msgId: ids[0], delaySeconds: 40 }]);
  });

  it("retries the whole batch when MAIL_DRIVER names no driver, so no mail is lost", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const user = await registerUnverified();
    const { outcomes, result, retryAllDelays } = await deliver([user.message], {
      clock: h.clock,
      env: { ...env, MAIL_DRIVER: "carrier-pigeon" } as Env,
    });
    expect(outcomes).toEqual(["retry"]);
    expect(result.retryBatch).toEqual({ retry: true });
    expect(retryAllDelays).toEqual([RETRY_MAX_SECONDS]);
  });

  it("backs off exponentially from 5 s, capped", () => {
    expect([1, 2, 3, 4, 5].map(retryDelaySeconds)).toEqual([5, 10, 20, 40, 80]);
    expect(retryDelaySeconds(30)).toBe(RETRY_MAX_SECONDS);
  });

  it("the console driver writes one summary line and, in development without an inbox, the text body; elsewhere neither code nor body", async () => {
    const mail = {
      to: "ada@example.com",
      subject: "s",
      text: "body text 123456",
      html: "<p>x</p>",
      summary: { purpose: "login", code: "123456", expires: "2026-11-21T10:00:00.000Z" },
    };
    const development: string[] = [];
    await ConsoleMailer({ log: (line) => development.push(line), revealCodes: true }).send(mail);
    expect(development).toEqual([
      "[mail] to=ada@example.com purpose=login code=123456 expires=2026-11-21T10:00:00.000Z",
      "body text 123456",
    ]);
    const elsewhere: string[] = [];
    await ConsoleMailer({ log: (line) => elsewhere.push(line), revealCodes: false }).send(mail);
    expect(elsewhere).toEqual([
      "[mail] to=ada@example.com purpose=login expires=2026-11-21T10:00:00.000Z (not sent, code withheld: the console driver outside development)",
    ]);
  });

  it("the http driver refuses to send without an API key", async () => {
    const mailer = HttpMailer({ url: "https://mail.invalid/emails", apiKey: "", from: "a@b.c", fetch: async () => new Response("{}") });
    await expect(mailer.send({ to: "x@example.com", subject: "s", text: "t", html: "h" })).rejects.toThrow(/MAIL_API_KEY/);
  });

  it("renders one template per purpose naming the code and its lifetime, escaping the HTML", () => {
    const now = Date.UTC(2026, 0, 1);
    const subjects = new Set<string>();
    for (const purpose of ["verify_email", "login", "reset_password"] as const) {
      const mail = renderOtpMail({ to: "a<b>&c@example.com", purpose, code: "042917", issuedAtMs: now, expiresAtMs: now + 600_000 });
      subjects.add(mail.subject);
      expect(mail.text).toContain("    042917\n");
      expect(mail.text).toContain("for 10 minutes from when it was sent: it expires at 2026-01-01T00:10:00.000Z.");
      expect(mail.html).toContain("042917");
      expect(mail.html).toContain("10 minutes");
      expect(mail.html).toContain("a&lt;b&gt;&amp;c@example.com");
      expect(mail.html).not.toContain("a<b>");
    }
    expect(subjects.size).toBe(3);
    const short = renderOtpMail({ to: "a@example.com", purpose: "login", code: "111111", issuedAtMs: now, expiresAtMs: now + 30_000 });
    expect(short.text).toContain("for 1 minute from when it was sent");
    expect(escapeHtml(`"'`)).toBe("&quot;&#39;");
  });

  it("builds a multipart/alternative MIME message for the send_email binding and sends it", async () => {
    const raw = buildMimeMessage({
      from: "Latchkey <no-reply@latchkey.local>",
      to: "ada@example.com",
      subject: "Your code — 042917",
      text: "Code: 042917\n",
      html: "<p>042917</p>",
      date: new Date(Date.UTC(2026, 0, 1)),
      messageIdDomain: "latchkey.local",
    });
    const [head, ...rest] = raw.split("\r\n\r\n");
    expect(head).toContain("From: Latchkey <no-reply@latchkey.local>\r\nTo: ada@example.com\r\n");
    expect(head).toMatch(/^Subject: =\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=$/m);
    expect(head).toMatch(/^Message-ID: <[A-Za-z0-9_-]+@latchkey\.local>$/m);
    expect(head).toContain("Date: Thu, 01 Jan 2026 00:00:00 GMT");
    const boundary = /boundary="([^"]+)"/.exec(head!)?.[1];
    expect(boundary).toBeDefined();
    const body = rest.join("\r\n\r\n");
    expect(body.trimEnd().endsWith(`--${boundary}--`)).toBe(true);
    const parts = body.split(`--${boundary}`).slice(1, -1);
    const decoded = parts.map((part) => {
      const [headers, content] = part.split("\r\n\r\n");
      const bytes = Uint8Array.from(atob((content ?? "").replace(/\r\n/g, "")), (ch) => ch.charCodeAt(0));
      return { headers, content: new TextDecoder().decode(bytes) };
    });
    expect(decoded.map((p) => /Content-Type: ([^;]+)/.exec(p.headers ?? "")?.[1])).toEqual(["text/plain", "text/html"]);
    expect(decoded.map((p) => p.content)).toEqual(["Code: 042917\n", "<p>042917</p>"]);

    const mailer = CloudflareMailer({ binding: env.SEND_EMAIL, from: env.MAIL_FROM, clock: h.clock });
    await expect(mailer.send({ to: "ada@example.com", subject: "s", text: "t", html: "<p>h</p>" })).resolves.toBeUndefined();
  });

  it("refuses header injection in a MIME header", () => {
    const input = {
      from: "a@latchkey.local",
      to: "ada@example.com",
      subject: "hi\r\nBcc: victim@example.com",
      text: "",
      html: "",
      date: new Date(0),
      messageIdDomain: "latchkey.local",
    };
    expect(() => buildMimeMessage(input)).toThrow(/line break/);
    expect(addressOf("Latchkey <no-reply@latchkey.local>")).toBe("no-reply@latchkey.local");
    expect(addressOf("plain@latchkey.local")).toBe("plain@latchkey.local");
  });
});
