/**
 * Mail delivery behind one small interface, with the driver chosen by the `MAIL_DRIVER` variable:
 *   console     writes the mail to the worker log (development: `wrangler dev` shows the code,
 *               and `npm run dev` keeps the mail in the /dev/mail inbox)
 *   http        a Resend-style JSON API (`MAIL_API_URL`, secret `MAIL_API_KEY`, `MAIL_FROM`)
 *   cloudflare  the Workers `send_email` binding (`SEND_EMAIL`)
 * A driver resolves when the provider accepted the mail and throws otherwise; the queue consumer
 * turns a throw into a retry with backoff.
 */
import { EmailMessage } from "cloudflare:email";
import { type Clock, systemClock } from "../../lib/clock";
import { type DevInbox, devInboxEnabled, KvDevInbox } from "./dev-inbox";
import { addressOf, buildMimeMessage } from "./mime";

export interface Mail {
  to: string;
  subject: string;
  text: string;
  html: string;
  /**
   * Stable per logical mail (the code's id), so a provider that deduplicates (Resend's
   * `Idempotency-Key`) sends once even when a timed-out attempt had in fact gone through.
   */
  idempotencyKey?: string;
  /** Key facts for the console driver's one-line summary. Never sent to a provider. */
  summary?: Record<string, string>;
}

export interface Mailer {
  readonly name: string;
  send(mail: Mail): Promise<void>;
}

export const MAIL_DRIVERS = ["console", "http", "cloudflare"] as const;
export type MailDriver = (typeof MAIL_DRIVERS)[number];

/** A provider call that takes longer than this is abandoned and retried from the queue. */
export const HTTP_MAIL_TIMEOUT_MS = 10_000;

/**
 * Development driver: one `[mail] to=… k=v …` line per mail. This is the only place a one-time
 * code is ever written to a log, and only in development (`ENVIRONMENT = "development"`, which
 * `npm run dev` sets): with a development inbox the mail is kept there (readable at `/dev/mail`);
 * without one the text body follows the line, so the log is where the mail can be read. Anywhere
 * else (`revealCodes` false) the line leaves out the code and no body follows: the top level of
 * wrangler.toml names this driver, and a bare `wrangler deploy` of it must not turn Workers Logs
 * into a store of live codes.
 */
export function ConsoleMailer(options: { log?: (line: string) => void; inbox?: DevInbox; revealCodes: boolean }): Mailer {
  const log = options.log ?? console.log;
  return {
    name: "console",
    async send(mail) {
      const facts = Object.entries(mail.summary ?? {})
        .filter(([key]) => options.revealCodes || !SECRET_FACTS.has(key))
        .map(([key, value]) => ` ${key}=${value}`);
      if (!options.revealCodes) {
        log(`[mail] to=${mail.to}${facts.join("")} (not sent, code withheld: the console driver outside development)`);
        return;
      }
      log(`[mail] to=${mail.to}${facts.join("")}`);
      if (options.inbox) await options.inbox.record(mail);
      else log(mail.text);
    },
  };
}

/** Summary facts that are secrets: the console driver logs them in development only. */
const SECRET_FACTS = new Set(["code"]);

/** Keeps mails in memory; for tests and tools that need to read what would have been sent. */
export function MemoryMailer(): Mailer & { outbox: Mail[] } {
  const outbox: Mail[] = [];
  return {
    name: "memory",
    outbox,
    async send(mail) {
      outbox.push(mail);
    },
  };
}

export class MailSendError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MailSendError";
  }
}

/**
 * A Resend-style provider: `POST url` with a JSON `{from, to, subject, text, html}` and
 * `Authorization: Bearer <key>`. Any non-2xx answer is a failure. `fetch` is injectable so tests
 * can stand up a stub provider.
 */
export function HttpMailer(options: { url: string; apiKey: string; from: string; fetch?: typeof fetch }): Mailer {
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));
  return {
    name: "http",
    async send(mail) {
      if (!options.url || !options.apiKey) throw new MailSendError("the http mail driver needs MAIL_API_URL and MAIL_API_KEY");
      const headers: Record<string, string> = {
        Authorization: `Bearer ${options.apiKey}`,
        "Content-Type": "application/json",
      };
      if (mail.idempotencyKey) headers["Idempotency-Key"] = mail.idempotencyKey;
      let response: Response;
      try {
        response = await doFetch(options.url, {
          method: "POST",
          headers,
          body: JSON.stringify({ from: options.from, to: [mail.to], subject: mail.subject, text: mail.text, html: mail.html }),
          signal: AbortSignal.timeout(HTTP_MAIL_TIMEOUT_MS),
        });
      } catch (error) {
        throw new MailSendError("the mail provider could not be reached", { cause: error });
      }
      // The body is drained either way so the connection can be reused; its content is not
      // logged because providers echo the recipient back.
      await response.body?.cancel();
      if (!response.ok) throw new MailSendError(`the mail provider answered ${response.status}`);
    },
  };
}

/**
 * The Workers `send_email` binding. It takes a raw MIME message; the envelope sender is the bare
 * address of `from`, which must be on a domain with Email Routing (or Email Service) enabled.
 */
export function CloudflareMailer(options: { binding: SendEmail; from: string; clock?: Clock }): Mailer {
  const clock = options.clock ?? systemClock;
  return {
    name: "cloudflare",
    async send(mail) {
      const sender = addressOf(options.from);
      const raw = buildMimeMessage({
        from: options.from,
        to: mail.to,
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        date: new Date(clock.now()),
        messageIdDomain: sender.split("@")[1] ?? "latchkey.local",
      });
      try {
        await options.binding.send(new EmailMessage(sender, mail.to, raw));
      } catch (error) {
        throw new MailSendError("the send_email binding refused the mail", { cause: error });
      }
    },
  };
}

/** The driver `env.MAIL_DRIVER` names (default `console`). Throws for an unknown name. */
export function mailerFromEnv(env: Env, options: { fetch?: typeof fetch; clock?: Clock } = {}): Mailer {
  const driver = (env.MAIL_DRIVER || "console") as MailDriver;
  switch (driver) {
    case "console":
      return ConsoleMailer({
        inbox: devInboxEnabled(env) ? KvDevInbox(env.CONFIG, options.clock ?? systemClock) : undefined,
        revealCodes: env.ENVIRONMENT === "development",
      });
    case "http":
      return HttpMailer({ url: env.MAIL_API_URL, apiKey: env.MAIL_API_KEY, from: env.MAIL_FROM, fetch: options.fetch });
    case "cloudflare":
      return CloudflareMailer({ binding: env.SEND_EMAIL, from: env.MAIL_FROM, clock: options.clock });
    default:
      throw new MailSendError(`unknown MAIL_DRIVER "${String(driver)}"; use one of ${MAIL_DRIVERS.join(", ")}`);
  }
}
