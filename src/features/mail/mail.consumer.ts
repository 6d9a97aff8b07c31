/**
 * The `latchkey-mail` queue consumer. Each message is one code's mail or one security notice. Before sending, the code
 * row is read: a code that was used, superseded or has expired since it was queued is acked
 * without a mail, so retries and late deliveries never mail a dead code. A send failure retries
 * the message with exponential backoff; after `max_retries` (wrangler.toml) the queue moves it to
 * the dead-letter queue `latchkey-mail-dlq`. A malformed message is acked and logged: retrying it
 * could never succeed.
 */
import { createBackgroundDeps, type Deps } from "../../deps";
import { type Clock, systemClock } from "../../lib/clock";
import { loggableError } from "../../lib/errors";
import { log } from "../../lib/log";
import { MailMessageSchema, type NoticeMail, type OtpMail, openMailCode } from "./mail.messages";
import { renderNoticeMail, renderOtpMail } from "./mail.templates";
import { type Mail, type Mailer, mailerFromEnv } from "./mailer";
import { forgetNotice, sendPendingNotices } from "./notices";

/** First retry after 5 s, doubling: 5, 10, 20, 40, 80 s keeps five retries inside a 10-minute code. */
export const RETRY_BASE_SECONDS = 5;
/** Queues accept at most 12 hours of delay; codes live far shorter, so cap well below. */
export const RETRY_MAX_SECONDS = 15 * 60;

/** The delay before retry number `attempts` (1 = the first delivery failed). */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** Math.max(0, attempts - 1));
}

/** `max_retries` of the consumer in wrangler.toml (every environment; a test holds them equal). */
export const MAIL_MAX_RETRIES = 5;

export type MailOutcome = "sent" | "skipped" | "malformed" | "retry" | "dead_letter";

/** The code's mail, or why it is not sent (the code is no longer live, or never existed). */
async function otpMail(body: OtpMail, code: string, codes: Deps["codes"], clock: Clock): Promise<Mail | string> {
  const now = clock.now();
  const row = await codes.state(body.code_id);
  const state = !row ? "gone" : row.consumedAt !== null ? "used or superseded" : row.expiresAt <= now ? "expired" : "live";
  if (state !== "live" || !row) return `its ${body.purpose} code is ${state}`;
  const rendered = renderOtpMail({ to: body.to, purpose: body.purpose, code, issuedAtMs: row.createdAt, expiresAtMs: row.expiresAt });
  return {
    to: body.to,
    ...rendered,
    idempotencyKey: body.code_id,
    summary: { purpose: body.purpose, code, expires: body.expires_at },
  };
}

function noticeMail(body: NoticeMail): Mail {
  const rendered = renderNoticeMail({ to: body.to, notice: body.notice, newEmail: body.new_email });
  return { to: body.to, ...rendered, idempotencyKey: body.notice_id, summary: { notice: body.notice } };
}

async function handleMessage(message: Message<unknown>, deps: Deps, mailer: Mailer, clock: Clock): Promise<MailOutcome> {
  const malformed = (fields: string): MailOutcome => {
    // The body is not logged: it may hold a code. Its id is enough to find it in the queue's metrics.
    log("error", "mail.malformed", { message_id: message.id, bad_fields: fields });
    message.ack();
    return "malformed";
  };
  const parsed = MailMessageSchema.safeParse(message.body);
  if (!parsed.success) return malformed(parsed.error.issues.map((issue) => issue.path.join(".") || "body").join(", "));
  const body = parsed.data;
  // Sealed for another message, under another OTP_SECRET (rotating it voids every code anyway), or forged.
  const code = body.kind === "otp" ? await openMailCode(deps.secrets.otpSecret, body) : null;
  if (body.kind === "otp" && code === null) return malformed("sealed_code");
  try {
    const mail = body.kind === "otp" ? await otpMail(body, code as string, deps.codes, clock) : noticeMail(body);
    if (typeof mail === "string") {
      log("info", "mail.skipped", { message_id: message.id, reason: mail });
      message.ack();
      return "skipped";
    }
    await mailer.send(mail);
    // A notice is kept until it is sent (notices.ts): one dead-lettered is sent again from there.
    if (body.kind === "notice") await forgetNotice(deps, body);
    message.ack();
    return "sent";
  } catch (error) {
    const delaySeconds = retryDelaySeconds(message.attempts);
    // After max_retries retries the queue moves the message to the dead-letter queue instead.
    const outcome = message.attempts > MAIL_MAX_RETRIES ? "dead_letter" : "retry";
    log(outcome === "retry" ? "warn" : "error", `mail.${outcome}`, {
      message_id: message.id,
      driver: mailer.name,
      attempt: message.attempts,
      delay_s: outcome === "retry" ? delaySeconds : undefined,
      error: loggableError(error),
    });
    message.retry({ delaySeconds });
    return outcome;
  }
}

/**
 * Handles one batch from `latchkey-mail`. `clock` and `mailer` are injectable for tests; by
 * default the mailer is the one `MAIL_DRIVER` names. Never throws: every message is acked or
 * retried individually, so one bad message does not hold back the others.
 */
export async function consumeMailBatch(
  batch: MessageBatch<unknown>,
  env: Env,
  options: { clock?: Clock; mailer?: Mailer; fetch?: typeof fetch } = {},
): Promise<MailOutcome[]> {
  const clock = options.clock ?? systemClock;
  let mailer: Mailer;
  try {
    mailer = options.mailer ?? mailerFromEnv(env, { fetch: options.fetch, clock });
  } catch (error) {
    // A misconfigured driver is fixed by a deploy: keep the mails (retry, then the DLQ).
    log("error", "mail.no_driver", { error: loggableError(error) });
    batch.retryAll({ delaySeconds: RETRY_MAX_SECONDS });
    const outcomes = batch.messages.map((message): MailOutcome => (message.attempts > MAIL_MAX_RETRIES ? "dead_letter" : "retry"));
    logBatch(batch, outcomes);
    return outcomes;
  }
  const deps = createBackgroundDeps(env, clock);
  const outcomes = await Promise.all(batch.messages.map((message) => handleMessage(message, deps, mailer, clock)));
  logBatch(batch, outcomes);
  // The queue works again: send the security notices an earlier failure left pending (notices.ts).
  await sendPendingNotices(deps);
  return outcomes;
}

/** One line per batch: how many messages it held and what became of them. */
function logBatch(batch: MessageBatch<unknown>, outcomes: MailOutcome[]) {
  const count = (...kinds: MailOutcome[]) => outcomes.filter((o) => kinds.includes(o)).length;
  const retried = count("retry");
  const deadLettered = count("dead_letter");
  log(retried + deadLettered > 0 ? "warn" : "info", "mail.batch", {
    queue: batch.queue,
    batch_size: batch.messages.length,
    acked: count("sent", "skipped", "malformed"),
    sent: count("sent"),
    skipped: count("skipped"),
    malformed: count("malformed"),
    retried,
    dead_lettered: deadLettered,
  });
}
