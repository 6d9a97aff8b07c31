import { applyD1Migrations, env } from "cloudflare:test";
import { afterAll } from "vitest";

// Idempotent: applies only the migrations this file's database has not seen yet.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);

/**
 * A message sent to the real `latchkey-mail` queue is delivered to the worker's queue() handler
 * up to `max_batch_timeout` (1 s, wrangler.toml) later. A file that ends sooner would have that
 * delivery start while its test environment is torn down, which vitest reports as an
 * "EnvironmentTeardownError" uncaught exception. So a file that sent mail waits for its last
 * delivery before it ends; files that sent none do not wait.
 */
const DELIVERY_GRACE_MS = 3_000;
let lastSend = 0;
const queue = env.MAIL_QUEUE;
env.MAIL_QUEUE = {
  send: (...args: Parameters<Queue["send"]>) => {
    lastSend = Date.now();
    return queue.send(...args);
  },
  sendBatch: (...args: Parameters<Queue["sendBatch"]>) => {
    lastSend = Date.now();
    return queue.sendBatch(...args);
  },
} as Queue;
afterAll(async () => {
  const wait = lastSend + DELIVERY_GRACE_MS - Date.now();
  if (lastSend > 0 && wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
});
