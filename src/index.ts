/** The worker's entry: HTTP requests (the Hono app), the mail queue's consumer, and the daily cron job. */
import { createApp } from "./app";
import { createBackgroundDeps } from "./deps";
import { scheduledRetention } from "./features/activity/activity.retention";
import { consumeMailBatch } from "./features/mail/mail.consumer";
import type { MailMessage } from "./features/mail/mail.messages";
import { abandonStaleNotices, sendPendingNotices } from "./features/mail/notices";
import { systemClock } from "./lib/clock";

const app = createApp();

export type { AppType } from "./app";

export default {
  fetch: app.fetch,
  // latchkey-mail: one-time-code mails, sent off the request path.
  async queue(batch, env) {
    await consumeMailBatch(batch, env);
  },
  // The cron trigger in wrangler.toml: security notices given up or still pending (features/mail/notices.ts),
  // then retention of activity, dead tokens, rate-limit windows and codes. Awaited rather than
  // passed to ctx.waitUntil, so a failed run shows as a failed invocation.
  async scheduled(_controller, env, _ctx) {
    const deps = createBackgroundDeps(env, systemClock);
    await abandonStaleNotices(deps);
    await sendPendingNotices(deps);
    await scheduledRetention(deps);
  },
} satisfies ExportedHandler<Env, MailMessage>;
