/**
 * Readiness: can this worker reach what it serves from? `GET /health` stays the cheap liveness
 * (and setup) check; `GET /health/ready` also touches each storage binding once — D1 `SELECT 1`,
 * a KV read, an R2 head — in parallel, each with its own short timeout, so a load balancer or an
 * uptime check learns within about two seconds which dependency is down. The answer names the
 * binding and "ok", "failed" or "timeout", never the error itself (that is logged). An answer is
 * reused for `READY_REUSE_MS`.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Deps } from "../../deps";
import { loggableError } from "../../lib/errors";
import { log } from "../../lib/log";
import { createRouter, jsonContent, problems } from "../../lib/openapi";

/** Long enough for a cold binding, short enough that a probe with a 5 s timeout still gets an answer. */
export const READY_CHECK_TIMEOUT_MS = 2_000;
/** A key that never exists: the read proves the namespace answers, whatever it holds. */
const PROBE_KEY = "health:ready-probe";

export type CheckResult = "ok" | "failed" | "timeout";
export type ReadyDeps = Pick<Deps, "setup" | "configKv" | "avatars">;

/** `d1` is the database the stores use (D1, or libSQL when `LIBSQL_URL` is set): it answers, and is migrated. */
const CHECKS = {
  d1: async (deps: ReadyDeps) => {
    await deps.setup.ping();
    const missing = await deps.setup.missingTables(); // no query once it has found none missing
    if (missing.length > 0) throw new Error(`the database lacks tables (${missing.join(", ")}): apply the migrations`);
  },
  kv: (deps: ReadyDeps) => deps.configKv.get(PROBE_KEY),
  r2: (deps: ReadyDeps) => deps.avatars.head(PROBE_KEY),
} as const;
export type CheckName = keyof typeof CHECKS;

async function runCheck(name: CheckName, deps: ReadyDeps, timeoutMs: number): Promise<CheckResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const result = await Promise.race([CHECKS[name](deps).then(() => "ok" as const), timeout]);
    if (result === "timeout") log("error", "ready.check", { check: name, result, timeout_ms: timeoutMs });
    return result;
  } catch (error) {
    log("error", "ready.check", { check: name, result: "failed", error: loggableError(error) });
    return "failed";
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How long an answer is reused. The route is public, and each check is a billed operation (an R2
 * head, a KV read, a D1 query): a flood of probes costs each isolate one round per interval, and
 * an uptime check polling every 30 s or more still gets a fresh answer every time.
 */
export const READY_REUSE_MS = 5_000;
/**
 * Per isolate, by env (one per worker; tests pass their own), the latest finished round and when it
 * began. Finished only: a round in progress belongs to the request running it, whose I/O and timers
 * the runtime cancels if its client goes away, so another request awaiting it could wait forever.
 */
const recentRounds = new WeakMap<object, { startedAt: number; result: Awaited<ReturnType<typeof checkReadiness>> }>();

/** Every check, in parallel; `ready` when all are ok. */
export async function checkReadiness(
  deps: ReadyDeps,
  options: { timeoutMs?: number } = {},
): Promise<{ ready: boolean; checks: Record<CheckName, CheckResult> }> {
  const timeoutMs = options.timeoutMs ?? READY_CHECK_TIMEOUT_MS;
  const names = Object.keys(CHECKS) as CheckName[];
  const results = await Promise.all(names.map((name) => runCheck(name, deps, timeoutMs)));
  const checks = Object.fromEntries(names.map((name, i) => [name, results[i]])) as Record<CheckName, CheckResult>;
  return { ready: results.every((r) => r === "ok"), checks };
}

const CheckSchema = z.enum(["ok", "failed", "timeout"]);
const ReadySchema = z
  .object({
    status: z.enum(["ready", "unavailable"]),
    checks: z.object({ d1: CheckSchema, kv: CheckSchema, r2: CheckSchema }),
  })
  .openapi("Readiness");

// A 503 here is the readiness document above when a dependency failed, but a problem document when
// the service is not set up (middleware/readiness.ts answers before this route runs); a 500 is a
// problem document.
const { 503: notSetUp, ...unexpected } = problems(503);

export const readyRoutes = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/health/ready",
    tags: ["meta"],
    summary: "Readiness: set up, and D1 (migrated), KV and R2 answer",
    description: `Each binding is checked once, in parallel, with a ${READY_CHECK_TIMEOUT_MS / 1000} s timeout. 503 names the failed ones. An answer is reused for ${READY_REUSE_MS / 1000} s.`,
    responses: {
      200: jsonContent(ReadySchema, "Every dependency answered"),
      503: {
        description:
          "At least one dependency failed or timed out (the readiness document); or the service is not set up (a problem document)",
        content: { "application/json": { schema: ReadySchema }, ...notSetUp.content },
      },
      ...unexpected,
    },
  }),
  async (c) => {
    const now = c.var.deps.clock.now();
    let recent = recentRounds.get(c.env);
    if (!recent || now - recent.startedAt >= READY_REUSE_MS) {
      recent = { startedAt: now, result: await checkReadiness(c.var.deps) };
      recentRounds.set(c.env, recent);
    }
    const { ready, checks } = recent.result;
    c.header("Cache-Control", "no-store");
    return ready ? c.json({ status: "ready" as const, checks }, 200) : c.json({ status: "unavailable" as const, checks }, 503);
  },
);
