/** The worker's entry: HTTP requests (the Hono app), and later the mail queue and cron handlers. */
import "./features/auth/argon2-modules";
import { createApp } from "./app";

const app = createApp();

export type { AppType } from "./app";

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
