/**
 * The environment of the test run's main process, set before wrangler (inside
 * @cloudflare/vitest-pool-workers) is loaded: vitest.config.ts imports this first.
 */
import { resolve } from "node:path";
import { OFFLINE_DEFAULTS } from "../scripts/lib/offline.mjs";

// Tests run offline: no telemetry, and no download of the `Request.cf` sample by miniflare
// (values already set in the environment win, as for every script).
for (const [key, value] of Object.entries(OFFLINE_DEFAULTS)) process.env[key] ??= value;
// Wrangler's debug logs (they hold the worker's output, development mail codes included) stay in
// the project's git-ignored .wrangler/logs, as under `npm run dev`.
process.env.WRANGLER_LOG_PATH ||= resolve(".wrangler/logs");

/**
 * Lines the tooling prints on every test file that say nothing about the tests, dropped from the
 * output (each is written as one whole chunk). Both come from the main process, outside any test,
 * so `silent` and `onConsoleLog` never see them:
 * - wrangler reads .dev.vars for the workers project, although vitest.config.ts replaces every
 *   secret in it with generated ones;
 * - workerd's teardown notice for the pool's own WebSocket, which vitest-pool-workers filters
 *   itself from a later release on (cloudflare/workers-sdk#13833); drop this one after upgrading.
 */
const TOOLING_NOISE = [
  /^Using secrets defined in \.dev\.vars$/,
  /^exception = workerd\/api\/web-socket\.c\+\+:\d+: disconnected: WebSocket peer disconnected$/,
];
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (typeof chunk === "string" && TOOLING_NOISE.some((pattern) => pattern.test(chunk.trim()))) return true;
    return write(chunk, ...rest);
  }) as typeof stream.write;
}
