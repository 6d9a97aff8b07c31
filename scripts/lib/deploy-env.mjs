// Shared by `npm run setup` and `npm run deploy`: what a deployed environment of wrangler.toml
// declares, how to read wrangler's `list` outputs, and the wrangler runner. The runner is a
// parameter of both scripts so their tests can answer the `list` commands with canned outputs and
// assert the exact command sequence, with no account and no network.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { experimental_readRawConfig } from "wrangler";
import { CliError, DEPLOY_ENVS, spawnWrangler } from "./cli.mjs";

const WRANGLER_WRAPPER = join(dirname(fileURLToPath(import.meta.url)), "..", "wrangler.mjs");

export { DEPLOY_ENVS };

/** An id still as wrangler.toml ships it: all zeros (with or without a UUID's dashes). */
export const isPlaceholderId = (id) => typeof id !== "string" || /^[0-]+$/.test(id);

/** Runs `wrangler <args>` through scripts/wrangler.mjs (the offline defaults); see `spawnWrangler`. */
export function wranglerRunner(args, { input } = {}) {
  return spawnWrangler(WRANGLER_WRAPPER, args, { input });
}

/** `--config <path>` for the commands that read the config, unless it is the default. */
export const configArgs = (configPath) => (configPath === "wrangler.toml" ? [] : ["--config", configPath]);

/** How a command is shown: never with a secret's value, which only ever travels on stdin. */
export const showCommand = (args) => `wrangler ${args.join(" ")}`;

/**
 * What `[env.<name>]` of the config declares, with the names setup creates. Throws a CliError for
 * an unknown environment or one that lacks a binding.
 */
export function readEnvironment(configPath, name) {
  if (!DEPLOY_ENVS.includes(name)) {
    throw new CliError(
      `--env ${DEPLOY_ENVS.join("|")} is required${name ? ` (not "${name}")` : ""}: the top level of wrangler.toml is the local development setup`,
    );
  }
  const { rawConfig } = experimental_readRawConfig({ config: configPath });
  const env = rawConfig.env?.[name];
  if (!env) throw new CliError(`wrangler.toml has no [env.${name}] section`);
  const workerName = env.name ?? `${rawConfig.name}-${name}`;
  const d1 = env.d1_databases?.find((db) => db.binding === "DB");
  const kv = env.kv_namespaces?.find((ns) => ns.binding === "CONFIG");
  const r2 = env.r2_buckets?.find((bucket) => bucket.binding === "AVATARS");
  const producer = env.queues?.producers?.find((queue) => queue.binding === "MAIL_QUEUE");
  const consumer = env.queues?.consumers?.find((queue) => queue.queue === producer?.queue);
  const missing = [
    [d1, "d1_databases DB"],
    [kv, "kv_namespaces CONFIG"],
    [r2, "r2_buckets AVATARS"],
    [producer, "queues.producers MAIL_QUEUE"],
    [consumer?.dead_letter_queue, "queues.consumers with a dead_letter_queue"],
  ].filter(([value]) => !value);
  if (missing.length > 0) throw new CliError(`[env.${name}] lacks ${missing.map(([, what]) => what).join(", ")} in wrangler.toml`);
  return {
    name,
    workerName,
    vars: env.vars ?? {},
    d1: { name: d1.database_name, id: d1.database_id },
    kv: { title: `${workerName}-config`, id: kv.id },
    r2: { bucket: r2.bucket_name },
    queue: producer.queue,
    deadLetterQueue: consumer.dead_letter_queue,
    maxRetries: consumer.max_retries,
  };
}

/** Why `vars.MAIL_DRIVER` cannot deliver deployed environment `env`'s mail; null when it can. */
export function mailDriverProblem(env, vars) {
  const driver = vars.MAIL_DRIVER ?? "console";
  if (driver === "http" || driver === "cloudflare") return null;
  // The worker reads an empty value as console, which only logs; an unknown one fails every mail.
  const why = driver === "console" ? ", which only logs the codes" : "";
  return `MAIL_DRIVER in [env.${env}.vars] is "${driver}"${why}: set "http" (with the MAIL_API_KEY secret) or "cloudflare"`;
}

/** The secrets the worker needs in this environment (MAIL_API_KEY only for the http mail driver). */
export function requiredSecrets(vars) {
  return ["JWT_KEYS", "OTP_SECRET", ...(vars.MAIL_DRIVER === "http" ? ["MAIL_API_KEY"] : [])];
}

/**
 * Writes `value` as `key` of the `[[env.<env>.<table>]]` block in the config text (the first
 * block of that table in the environment). Comments and layout are kept; only that line changes.
 */
export function setBindingValue(text, env, table, key, value) {
  const lines = text.split("\n");
  const header = `[[env.${env}.${table}]]`;
  const start = lines.findIndex((line) => line.trim() === header);
  if (start === -1) throw new CliError(`wrangler.toml has no ${header} block`);
  for (let i = start + 1; i < lines.length && !/^\s*\[/.test(lines[i]); i++) {
    if (new RegExp(`^\\s*${key}\\s*=`).test(lines[i])) {
      lines[i] = `${key} = "${value}"`;
      return lines.join("\n");
    }
  }
  throw new CliError(`${header} in wrangler.toml has no ${key}`);
}

export function writeBindingIds(configPath, env, ids) {
  let text = readFileSync(configPath, "utf8");
  if (ids.d1) text = setBindingValue(text, env, "d1_databases", "database_id", ids.d1);
  if (ids.kv) text = setBindingValue(text, env, "kv_namespaces", "id", ids.kv);
  writeFileSync(configPath, text);
}

// ---------------------------------------------------------------------------------------------
// wrangler's list outputs. The JSON ones are parsed as JSON; `r2 bucket list` prints labelled
// blocks ("name: …") and `queues list` a box table, both read after removing colours.

const stripAnsi = (text) => text.replace(/\u001b\[[0-9;]*m/g, "");

function parseJsonArray(out, command) {
  const text = stripAnsi(out);
  const start = text.indexOf("[");
  try {
    const parsed = JSON.parse(text.slice(start, text.lastIndexOf("]") + 1));
    if (Array.isArray(parsed)) return parsed;
  } catch {}
  throw new CliError(`unexpected output from ${command}:\n${text.slice(0, 300)}`);
}

/** `wrangler d1 list --json`: [{uuid, name, …}] → Map name → id. */
export const parseD1List = (out) => new Map(parseJsonArray(out, "wrangler d1 list --json").map((db) => [db.name, db.uuid]));

/** `wrangler kv namespace list`: [{id, title, …}] → Map title → id. */
export const parseKvList = (out) => new Map(parseJsonArray(out, "wrangler kv namespace list").map((ns) => [ns.title, ns.id]));

/** `wrangler r2 bucket list`: blocks of "name: …" / "creation_date: …" → Set of names. */
export const parseR2List = (out) => new Set([...stripAnsi(out).matchAll(/^name:\s+(\S+)\s*$/gm)].map((m) => m[1]));

/** `wrangler queues list`: a table with a `name` column → Set of names. */
export function parseQueuesList(out) {
  const rows = stripAnsi(out)
    .split("\n")
    .filter((line) => line.includes("│"))
    .map((line) =>
      line
        .split("│")
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
  const column = rows[0]?.indexOf("name") ?? -1;
  if (column === -1) return new Set();
  return new Set(rows.slice(1).map((cells) => cells[column]));
}

/** `wrangler secret list --env …` (JSON, the default format) → Set of names. A Worker not deployed yet has none. */
export async function listSecrets(run, env, configPath = "wrangler.toml") {
  const args = ["secret", "list", "--env", env, ...configArgs(configPath)];
  try {
    return new Set(parseJsonArray(await run(args), showCommand(args)).map((secret) => secret.name));
  } catch (error) {
    if (error instanceof Error && /not found|does not exist|10007/i.test(error.message)) return new Set();
    throw error;
  }
}
