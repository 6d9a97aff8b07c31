/**
 * Helpers for tests of emailed codes: read what a request put on the mail queue, run those
 * messages through the real consumer (with a memory mailer or a stub provider), and read the code
 * out of the rendered mail the way a user would.
 */
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { vi } from "vitest";
import { consumeMailBatch } from "../src/features/mail/mail.consumer";
import { type MailMessage, type NoticeMail, type OtpMail, openMailCode } from "../src/features/mail/mail.messages";
import { type Mail, MemoryMailer } from "../src/features/mail/mailer";
import type { Clock } from "../src/lib/clock";

export const MAIL_QUEUE_NAME = "latchkey-mail";

/**
 * An env whose MAIL_QUEUE producer also records each message, so a test can read what a request
 * enqueued. Only the producer is doubled; delivery is done by `deliver` through the real consumer.
 */
export function capturingEnv(base: Env = env) {
  /** Code mails, in the order they were enqueued, each with its code opened for the test. */
  const sent: CodeMail[] = [];
  /** Security notices (no code). */
  const notices: NoticeMail[] = [];
  /** Every message exactly as it went onto the queue. */
  const queued: MailMessage[] = [];
  const record = async (body: MailMessage) => {
    queued.push(structuredClone(body));
    if (body.kind === "otp") sent.push({ ...body, code: await openedCode(base, body) });
    else notices.push(body);
  };
  const queue = {
    send: async (body: MailMessage) => record(body),
    sendBatch: async (messages: Iterable<{ body: MailMessage }>) => {
      for (const m of messages) await record(m.body);
    },
  } as unknown as Queue;
  return { env: { ...base, MAIL_QUEUE: queue } as Env, sent, notices, queued };
}

/** A queued code mail with its code, which the queue itself only carries sealed. */
export type CodeMail = OtpMail & { code: string };

async function openedCode(base: Env, body: OtpMail): Promise<string> {
  const code = await openMailCode(base.OTP_SECRET, body);
  if (code === null) throw new Error(`a queued code mail whose code does not open: ${body.code_id}`);
  return code;
}

let messageCounter = 0;

/**
 * Runs `bodies` through `consumeMailBatch` as one batch; returns the queue's ack/retry result and
 * the delays the consumer asked for.
 */
export async function deliver(
  bodies: unknown[],
  options: { clock?: Clock; mailer?: ReturnType<typeof MemoryMailer>; fetch?: typeof fetch; env?: Env; attempts?: number } = {},
) {
  const messages = bodies.map((body) => ({
    id: `msg-${messageCounter++}`,
    timestamp: new Date(options.clock?.now() ?? Date.now()),
    attempts: options.attempts ?? 1,
    body,
  }));
  const batch = createMessageBatch(MAIL_QUEUE_NAME, messages);
  // getQueueResult reports which messages were retried but not the delay asked for; record it.
  const retrySpies = batch.messages.map((message) => vi.spyOn(message, "retry"));
  const retryAllSpy = vi.spyOn(batch, "retryAll");
  const ctx = createExecutionContext();
  const outcomes = await consumeMailBatch(batch, options.env ?? env, {
    clock: options.clock,
    mailer: options.mailer,
    fetch: options.fetch,
  });
  const result = await getQueueResult(batch, ctx);
  const retries = batch.messages.flatMap((message, i) =>
    (retrySpies[i]?.mock.calls ?? []).map(([opts]) => ({ msgId: message.id, delaySeconds: opts?.delaySeconds })),
  );
  const retryAllDelays = retryAllSpy.mock.calls.map(([opts]) => opts?.delaySeconds);
  return { ids: messages.map((m) => m.id), outcomes, result, retries, retryAllDelays };
}

/** The code as the user reads it: the indented line of digits in the text body. */
export function codeInMail(mail: Pick<Mail, "text">): string {
  const match = /^ {4}(\d{6})$/m.exec(mail.text);
  if (!match) throw new Error(`no code in mail:\n${mail.text}`);
  return match[1] as string;
}

/** Delivers every message `sent` holds from `from` on and returns the mails the user received. */
export async function mailsFor(sent: MailMessage[], clock: Clock, from = 0): Promise<Mail[]> {
  const mailer = MemoryMailer();
  await deliver(sent.slice(from), { clock, mailer });
  return mailer.outbox;
}
