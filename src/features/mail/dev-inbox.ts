/**
 * The development inbox, the local stand-in for a real mailbox (what Inbucket is to Supabase):
 * in the development environment with `MAIL_DRIVER = "console"`, every mail the console driver
 * "sends" is also kept for a while so `GET /dev/mail` can show it with its code. Mails are written
 * by the queue consumer and read by the fetch handler, so they live in KV (the CONFIG namespace,
 * under their own prefix; config keys are read by name, never listed). Keys sort newest first.
 * Production never writes or serves them: `ENVIRONMENT` is "production" unless `npm run dev`
 * overrides it.
 */
import type { Clock } from "../../lib/clock";
import { randomId } from "../../lib/crypto";
import type { Mail } from "./mailer";

/** How long a development mail is kept; KV refuses an `expirationTtl` under 60 s. */
export const DEV_INBOX_TTL_SECONDS = 60 * 60;
/** The most mails one listing returns (each is one KV read). */
export const DEV_INBOX_MAX = 50;
export const DEV_INBOX_PREFIX = "dev-mail:";
/** Keys hold `MAX - sent_at`, zero-padded, so KV's lexicographic listing is newest first. */
const KEY_CLOCK_MAX = 9_999_999_999_999;

/** Whether this worker keeps and serves development mails. */
export function devInboxEnabled(env: Pick<Env, "ENVIRONMENT" | "MAIL_DRIVER">): boolean {
  return env.ENVIRONMENT === "development" && (env.MAIL_DRIVER || "console") === "console";
}

export interface DevMail {
  id: string;
  to: string;
  subject: string;
  /** The one-time code's purpose and the code itself, when the mail carries one. */
  purpose: string | null;
  code: string | null;
  expires: string | null;
  text: string;
  sent_at: string;
}

export interface DevInbox {
  record(mail: Mail): Promise<void>;
  /** The latest mails, newest first, optionally only those to `to`. */
  latest(options: { limit: number; to?: string }): Promise<DevMail[]>;
}

/** The inbox over a KV namespace. */
export function KvDevInbox(kv: KVNamespace, clock: Clock): DevInbox {
  return {
    async record(mail) {
      const now = clock.now();
      const id = `${String(KEY_CLOCK_MAX - now).padStart(13, "0")}-${randomId()}`;
      const stored: DevMail = {
        id,
        to: mail.to,
        subject: mail.subject,
        purpose: mail.summary?.purpose ?? null,
        code: mail.summary?.code ?? null,
        expires: mail.summary?.expires ?? null,
        text: mail.text,
        sent_at: new Date(now).toISOString(),
      };
      await kv.put(`${DEV_INBOX_PREFIX}${id}`, JSON.stringify(stored), {
        expirationTtl: DEV_INBOX_TTL_SECONDS,
        metadata: { to: mail.to },
      });
    },
    async latest({ limit, to }) {
      const wanted = to?.trim().toLowerCase();
      const names: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await kv.list<{ to?: string }>({ prefix: DEV_INBOX_PREFIX, cursor });
        for (const key of page.keys) {
          if (!wanted || key.metadata?.to?.toLowerCase() === wanted) names.push(key.name);
        }
        cursor = page.list_complete ? undefined : page.cursor;
      } while (cursor && names.length < limit);
      const mails = await Promise.all(names.slice(0, limit).map((name) => kv.get<DevMail>(name, "json")));
      return mails.filter((mail): mail is DevMail => mail !== null);
    },
  };
}
