import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DEV_INBOX_PREFIX, DEV_INBOX_TTL_SECONDS } from "../../src/features/mail/dev-inbox";
import { harness, unique } from "../helpers";
import { capturingEnv, deliver, type CodeMail as MailMessage } from "../mail-helpers";

const PASSWORD = "Tr0ub4dor&3-horse";
/** What `npm run dev` runs with: the development environment and the console mail driver. */
const devEnv = { ...env, ENVIRONMENT: "development", MAIL_DRIVER: "console" } as Env;
/** Where `npm run dev` answers. */
const DEV_ORIGIN = "http://localhost:8787";

describe("the development inbox (GET /dev/mail)", () => {
  const h = harness();
  const cap = capturingEnv(devEnv);

  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Registers an account and delivers its code mail through the real consumer and console driver. */
  async function registerAndDeliver(email = `${unique("inbox")}@example.com`) {
    const from = cap.sent.length;
    expect((await h.call("POST", "/api/v1/auth/register", { email, password: PASSWORD }, { env: cap.env })).status).toBe(201);
    const message = cap.sent[from] as MailMessage;
    const { outcomes } = await deliver([message], { clock: h.clock, env: devEnv });
    expect(outcomes).toEqual(["sent"]);
    return { email, message };
  }

  it("lists the console driver's mails with their codes, newest first, as JSON", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" ")));
    const first = await registerAndDeliver();
    h.clock.advance(1_000);
    const second = await registerAndDeliver();

    const asked: { path: string; headers: Record<string, string> }[] = [
      { path: "/dev/mail?format=json", headers: {} },
      { path: "/dev/mail", headers: { accept: "application/json" } },
    ];
    for (const opts of asked) {
      const res = await h.call("GET", opts.path, undefined, { env: devEnv, origin: DEV_ORIGIN, headers: opts.headers });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      const mine = res.json.items.filter((m: { to: string }) => [first.email, second.email].includes(m.to));
      expect(mine.map((m: { code: string }) => m.code)).toEqual([second.message.code, first.message.code]);
      expect(mine[0]).toMatchObject({ to: second.email, purpose: "verify_email", subject: "Your Latchkey activation code" });
      expect(mine[0].text).toContain(`    ${second.message.code}`);
    }
    // The log line stays; the body is in the inbox instead of the log.
    expect(lines).toContain(`[mail] to=${first.email} purpose=verify_email code=${first.message.code} expires=${first.message.expires_at}`);
    expect(lines.some((l) => l.includes("activate"))).toBe(false);
  });

  it("filters by recipient and caps the count", async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    const { email, message } = await registerAndDeliver();
    await registerAndDeliver();
    const res = await h.call("GET", `/dev/mail?format=json&to=${encodeURIComponent(email.toUpperCase())}`, undefined, {
      env: devEnv,
      origin: DEV_ORIGIN,
    });
    expect(res.json.items).toHaveLength(1);
    expect(res.json.items[0].code).toBe(message.code);
    const one = await h.call("GET", "/dev/mail?format=json&limit=1", undefined, { env: devEnv, origin: DEV_ORIGIN });
    expect(one.json.items).toHaveLength(1);
  });

  it("waits up to ?wait seconds for a first matching mail", async () => {
    const started = Date.now();
    const none = await h.call("GET", `/dev/mail?format=json&wait=1&to=${unique("nobody")}@example.com`, undefined, {
      env: devEnv,
      origin: DEV_ORIGIN,
    });
    expect(none.json.items).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it("keeps each mail in KV for a limited time only", async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    const put = vi.spyOn(env.CONFIG, "put");
    await registerAndDeliver();
    const call = put.mock.calls.find(([key]) => String(key).startsWith(DEV_INBOX_PREFIX));
    expect(call?.[2]).toMatchObject({ expirationTtl: DEV_INBOX_TTL_SECONDS });
    expect(DEV_INBOX_TTL_SECONDS).toBeGreaterThanOrEqual(60);
  });

  it("is a plain HTML page otherwise", async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    const { email, message } = await registerAndDeliver();
    const res = await h.call("GET", "/dev/mail", undefined, { env: devEnv, origin: DEV_ORIGIN, headers: { accept: "text/html,*/*" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.text).toContain(`<code>${message.code}</code>`);
    expect(res.text).toContain(`<td>${email}</td>`);
    expect(res.headers.get("content-security-policy")).toMatch(/default-src 'none'/);
  });

  it("answers only at a loopback name or an IP address, so no web page can read it through DNS rebinding", async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    const { email, message } = await registerAndDeliver();
    // A page at rebind.evil.example whose name the attacker points at 127.0.0.1 asks the dev
    // server same-origin: the browser sends the attacker's name as the Host.
    for (const origin of [
      "http://rebind.evil.example:8787",
      "http://localhost.evil.example:8787",
      "http://127.0.0.1.nip.io:8787",
      "http://latchkey.test",
    ]) {
      for (const accept of ["application/json", "text/html"]) {
        const res = await h.call("GET", `/dev/mail?to=${encodeURIComponent(email)}`, undefined, {
          env: devEnv,
          origin,
          headers: { accept },
        });
        expect(res.status, `${origin} ${accept}`).toBe(403);
        expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        expect(res.json.detail).toMatch(/localhost/);
        expect(res.text).not.toContain(message.code);
      }
    }
    for (const origin of [
      DEV_ORIGIN,
      "http://127.0.0.1:8787",
      "http://[::1]:8787",
      "http://latchkey.localhost:8787",
      "http://192.168.1.20:8787",
    ]) {
      const res = await h.call("GET", `/dev/mail?format=json&to=${encodeURIComponent(email)}`, undefined, { env: devEnv, origin });
      expect(res.status, origin).toBe(200);
      expect(res.json.items.map((m: { code: string }) => m.code)).toEqual([message.code]);
    }
  });

  it("does not exist outside development or with a real mail driver", async () => {
    for (const e of [env, { ...devEnv, ENVIRONMENT: "production" }, { ...devEnv, MAIL_DRIVER: "http" }] as Env[]) {
      for (const method of ["GET", "POST", "DELETE"]) {
        const res = await h.call(method, "/dev/mail?format=json", undefined, { env: e });
        expect(res.status, `${method} ${e.ENVIRONMENT} ${e.MAIL_DRIVER}`).toBe(404);
        expect(res.headers.get("allow")).toBeNull();
      }
    }
    expect(env.ENVIRONMENT).toBe("production");
  });

  it("is not written outside development", async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    const put = vi.spyOn(env.CONFIG, "put");
    const prodCap = capturingEnv(env);
    const email = `${unique("prod")}@example.com`;
    expect((await h.call("POST", "/api/v1/auth/register", { email, password: PASSWORD }, { env: prodCap.env })).status).toBe(201);
    await deliver([prodCap.sent[0]], { clock: h.clock, env });
    expect(put.mock.calls.filter(([key]) => String(key).startsWith(DEV_INBOX_PREFIX))).toEqual([]);
  });
});
