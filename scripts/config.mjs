// npm run config:get [-- <key>] [--remote | --persist-to <dir>]
// npm run config:set -- <key> <value> [--remote | --persist-to <dir>]
//
// Reads and writes the hot configuration in the CONFIG KV namespace (through `wrangler kv`, or
// the running dev server: see lib/cli.mjs), after
// validating with parseConfigValue, the parser the worker itself uses on every read: a value this
// refuses is a value the worker would ignore. Each change is also recorded in the admin audit
// trail (actor: none, meaning the operator CLI), like a change made through the admin API.
import { CliError, d1, kvGet, kvKeys, kvPut, parseCli, runCli, sqlString, targetArgs } from "./lib/cli.mjs";
import { loadWorkerCode } from "./lib/worker-code.mjs";

const USAGE = `usage: npm run config:get [-- <key>] [--remote | --persist-to <dir>]
       npm run config:set -- <key> <value> [--remote | --persist-to <dir>]`;

function requireKey(worker, key) {
  if (!worker.isConfigKey(key)) throw new CliError(`unknown key '${key}'; known keys: ${worker.CONFIG_KEY_NAMES.join(", ")}`);
  return key;
}

function describe(worker, key, stored) {
  const def = worker.CONFIG_KEYS[key];
  if (stored === null) return `${key} = ${def.default} (default)`;
  const parsed = worker.parseConfigValue(key, stored);
  if (parsed.ok) return `${key} = ${parsed.value}`;
  return `${key} = ${def.default} (default; KV holds ${JSON.stringify(stored)}, which is invalid: ${parsed.reason})`;
}

async function get(worker, values, positionals) {
  if (positionals.length > 1) throw new CliError(USAGE);
  const keys = positionals.length === 1 ? [requireKey(worker, positionals[0])] : worker.CONFIG_KEY_NAMES;
  const present = keys.length === 1 ? null : await kvKeys(values);
  for (const key of keys) {
    const stored = present && !present.has(key) ? null : await kvGet(values, key);
    console.log(describe(worker, key, stored));
  }
}

async function set(worker, values, positionals) {
  if (positionals.length !== 2) throw new CliError(USAGE);
  const key = requireKey(worker, positionals[0]);
  const parsed = worker.parseConfigValue(key, positionals[1]);
  if (!parsed.ok) throw new CliError(`refusing ${key}=${JSON.stringify(positionals[1])}: ${parsed.reason}; nothing was written`);
  const text = String(parsed.value);
  const previous = await kvGet(values, key);
  const now = Date.now();
  // The audit entry first, as the admin API does: a change must never land without it. If the
  // KV write then fails, the entry is taken back out and nothing has changed.
  const auditId = worker.randomId();
  await d1(values, {
    command: `INSERT INTO admin_audit (id, actor_id, created_at, action, target, old_value, new_value) VALUES (${sqlString(auditId)}, NULL, ${now}, 'config.set', ${sqlString(key)}, ${sqlString(previous)}, ${sqlString(text)})`,
  });
  try {
    await kvPut(values, key, text);
  } catch (error) {
    await d1(values, { command: `DELETE FROM admin_audit WHERE id = ${sqlString(auditId)}` }).catch(() => undefined);
    throw error;
  }
  if (key === "session_max_age") {
    // As the admin API does (admin.config.service.ts, endOlderSignIns): the sign-ins older than the
    // new value end for good; the store's endSignInsStartedBefore is this statement.
    const { startedBefore } = worker.signInsEndedBy(parsed.value, now);
    await d1(values, {
      command: `UPDATE refresh_tokens SET revoked_at = ${now}, revoked_reason = 'session_max_age' WHERE revoked_at IS NULL AND family_created_at < ${startedBefore}`,
    });
    console.log("Ended every sign-in older than that.");
  }
  console.log(`${key} = ${text}${previous === null ? "" : ` (was ${previous})`}`);
  console.log("Takes effect on the next request (workers cache config for up to 5 s; KV may take up to 60 s to reach every location).");
}

await runCli(async () => {
  const [command, ...args] = process.argv.slice(2);
  const { values, positionals } = parseCli({}, { args });
  if (values.help) return console.log(USAGE);
  targetArgs(values);
  const worker = await loadWorkerCode();
  if (command === "get") return get(worker, values, positionals);
  if (command === "set") return set(worker, values, positionals);
  throw new CliError(USAGE);
});
