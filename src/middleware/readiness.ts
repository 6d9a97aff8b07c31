import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env";
import { getSigningKeys } from "../features/auth/access-tokens";
import { AppError } from "../lib/errors";
import { log } from "../lib/log";
import type { SetupCheck } from "../store";

/**
 * What a fresh setup most often lacks: the JWT_KEYS and OTP_SECRET secrets (`.dev.vars` locally,
 * `wrangler secret put` in production) and the D1 migrations. Without this, /health said ok while
 * the first registration failed deep inside with a stack trace ("JWT_KEYS is not valid JSON" for
 * a key that was simply missing). Each problem is named in one log line, once per isolate, and
 * requests that need the missing piece answer a 503 problem document.
 */

/** An HMAC-SHA256 key should carry at least 256 bits; `randomSecret()` gives 43 characters. */
export const OTP_SECRET_MIN_LENGTH = 32;

const HOW_TO_FIX = "locally `npm run dev` writes .dev.vars (delete a broken one first); in production see README, Deploying";
const MIGRATE = "apply the migrations: `npm run dev` does locally, `npm run deploy -- --env <name>` (or `npm run setup`) when deployed";

const logged = new Set<string>();
/** One log line per distinct problem per isolate, however many requests run into it. */
function logOnce(line: string) {
  if (logged.has(line)) return;
  logged.add(line);
  log("error", "setup", { problem: line });
}

/**
 * A 503 whose cause is already in the log, named: the error handler adds no stack trace. No
 * Retry-After, unlike a transient 503: an operator must act (a secret, the migrations), which takes
 * however long it takes, and a short value would only make clients hammer the service meanwhile.
 */
class NotSetUpError extends AppError {
  constructor() {
    super("service_unavailable", "The service is not fully set up; the server log says what is missing.");
  }
}

/** The secret problems of an env, as log lines; empty when both secrets are usable. */
async function secretProblems(env: Env): Promise<string[]> {
  const problems: string[] = [];
  const keys = env.JWT_KEYS as string | undefined;
  if (keys === undefined || keys.trim() === "")
    problems.push(`JWT_KEYS is missing: requests that sign or verify tokens answer 503 (${HOW_TO_FIX})`);
  else {
    try {
      await getSigningKeys(keys);
    } catch (error) {
      // access-tokens' messages start with the secret's name ("JWT_KEYS is not valid JSON").
      const reason = (error instanceof Error ? error.message : String(error)).replace(/^JWT_KEYS /, "it ");
      problems.push(`JWT_KEYS is malformed (${reason}): requests that sign or verify tokens answer 503 (${HOW_TO_FIX})`);
    }
  }
  const otp = env.OTP_SECRET as string | undefined;
  if (otp === undefined || otp === "") problems.push(`OTP_SECRET is missing: API requests answer 503 (${HOW_TO_FIX})`);
  else if (otp.length < OTP_SECRET_MIN_LENGTH) {
    problems.push(
      `OTP_SECRET is malformed (${otp.length} characters, at least ${OTP_SECRET_MIN_LENGTH} needed): API requests answer 503 (${HOW_TO_FIX})`,
    );
  }
  return problems;
}

// workerd hands every request the same env object, so its secrets are checked once.
const checkedSecrets = new WeakMap<object, Promise<string[]>>();

/**
 * Throws a 503 (`NotSetUpError`) while JWT_KEYS or OTP_SECRET is missing or malformed (logging
 * which, once). With `database: true` (for /health) it also checks, until it first succeeds, that
 * the migrations created every table; other routes learn that lazily, from `setupError`, at no
 * cost per request. `passed` answers without awaiting once an env was found set up.
 */
export function setupGate(options: { database?: boolean } = {}) {
  // Envs found set up: the checks, once passed, stay passed.
  const ready = new WeakSet<object>();
  return {
    passed: (env: Env) => ready.has(env),
    async check(env: Env, setup: () => SetupCheck): Promise<void> {
      if (ready.has(env)) return;
      let check = checkedSecrets.get(env);
      if (!check) {
        check = secretProblems(env);
        checkedSecrets.set(env, check);
      }
      const problems = [...(await check)];
      if (options.database) {
        // One query, only until it first finds none missing (src/store/setup.ts).
        const missing = await setup().missingTables();
        if (missing.length > 0) problems.push(`the D1 database lacks tables (${missing.join(", ")}): ${MIGRATE}`);
      }
      if (problems.length === 0) {
        ready.add(env);
        return;
      }
      for (const line of problems) logOnce(line);
      throw new NotSetUpError();
    },
  };
}

/** `setupGate` as middleware: the API, the JWKS and /health answer 503 problem documents until set up. */
export function requireSetup(options: { database?: boolean } = {}): MiddlewareHandler<AppEnv> {
  const gate = setupGate(options);
  return async function requireSetup(c, next) {
    if (!gate.passed(c.env)) await gate.check(c.env, () => c.var.deps.setup);
    return next();
  };
}

/** What SQLite says of a query needing what a migration not yet applied adds, and what it names. */
const UNMIGRATED: [RegExp, (m: RegExpExecArray) => string][] = [
  [/no such table: (\w+)/, (m) => `table ${m[1]}`],
  [/table (\w+) has no column named (\w+)/, (m) => `column ${m[1]}.${m[2]}`], // a write
  [/no such column: ([\w.]+)/, (m) => `column ${m[1]}`], // a read
];

/**
 * The 503 for an error that comes from an incomplete setup — `requireSetup`'s own, or a query on
 * a database behind on its migrations (a missing table or column, then named in the log once) —
 * or null for any other error. Either way the cause is already logged by name.
 */
export function setupError(error: unknown): AppError | null {
  if (error instanceof NotSetUpError) return error;
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const message = e instanceof Error ? e.message : String(e);
    for (const [pattern, name] of UNMIGRATED) {
      const match = pattern.exec(message);
      if (match) {
        logOnce(`the D1 database has no ${name(match)}: ${MIGRATE}`);
        return new NotSetUpError();
      }
    }
  }
  return null;
}
