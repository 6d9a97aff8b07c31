#!/usr/bin/env node
// `npm run setup -- --env staging|production [--dry-run] [--config wrangler.toml]`
//
// Takes a Cloudflare account from nothing to a deployable environment, creating only what is
// missing, so running it again is safe and, once everything exists, changes nothing:
//   1. the D1 database, the KV namespace, the R2 bucket, the mail queue and its dead-letter queue
//      named in [env.<name>] (what exists is learned from `wrangler d1 list --json`,
//      `wrangler kv namespace list`, `wrangler r2 bucket list`, `wrangler queues list`);
//   2. the D1 and KV ids written into [env.<name>] of wrangler.toml, in place of the placeholders
//      (a real id already there is kept if the account has that resource, whatever its name, and
//      refused if it has not: it is never overwritten);
//   3. the secrets `wrangler secret list` does not show: JWT_KEYS (the set kept in --keys-file,
//      default ~/.latchkey/<env>.vars, or a fresh Ed25519 key set written there first) and
//      OTP_SECRET generated here, MAIL_API_KEY (MAIL_DRIVER = "http") from LATCHKEY_MAIL_API_KEY or
//      asked for without echo; each value goes to `wrangler secret put` on stdin and is never printed;
//   4. the D1 migrations that `wrangler d1 migrations list --remote` reports pending.
// `--dry-run` runs only the read-only `list` commands and prints every other wrangler command it
// would run; nothing is created, uploaded or written.
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { CliError, parseCli, promptHidden, runCli } from "./lib/cli.mjs";
import {
  configArgs,
  isPlaceholderId,
  listSecrets,
  mailDriverProblem,
  parseD1List,
  parseKvList,
  parseQueuesList,
  parseR2List,
  readEnvironment,
  requiredSecrets,
  showCommand,
  wranglerRunner,
  writeBindingIds,
} from "./lib/deploy-env.mjs";
import { generateSigningJwk, isDevelopmentSet, keySetEnvironment, randomSecret, readKeySet, writeKeySet } from "./lib/keys.mjs";

const USAGE = `usage: npm run setup -- --env staging|production [--dry-run] [--config wrangler.toml] [--keys-file <vars file>]`;

/** Where the environment's signing-key set is kept for rotation (README, Rotating signing keys). */
export const defaultKeysFile = (env) => join(homedir(), ".latchkey", `${env}.vars`);

/**
 * Sets up environment `env`. `run(args, {input})` runs wrangler and resolves with its stdout
 * (injectable for tests); `log` prints a line; `mailApiKey` (or `askSecret`) supplies MAIL_API_KEY.
 * Returns the commands run (`executed`) and the changing commands run or, with `dryRun`, only
 * printed (`planned`).
 */
export async function setup({
  env,
  dryRun = false,
  configPath = "wrangler.toml",
  run = wranglerRunner,
  log = console.log,
  mailApiKey = process.env.LATCHKEY_MAIL_API_KEY,
  askSecret = promptHidden,
  keysFile = defaultKeysFile(env),
}) {
  const target = readEnvironment(configPath, env);
  if (target.vars.ENVIRONMENT !== env) {
    throw new CliError(`ENVIRONMENT in [env.${env}.vars] is "${target.vars.ENVIRONMENT}": set it to "${env}"`);
  }
  const mail = mailDriverProblem(env, target.vars);
  if (mail) throw new CliError(mail);
  const executed = [];
  const planned = [];
  const exec = async (args, options) => {
    executed.push(args);
    return run(args, options);
  };
  /** A command that changes something: run it, or with --dry-run only print it. */
  const change = async (args, options) => {
    planned.push(args);
    if (dryRun) {
      log(`[dry-run] ${showCommand(args)}${options?.input !== undefined ? "   (value on stdin)" : ""}`);
      return "";
    }
    log(`$ ${showCommand(args)}`);
    return exec(args, options);
  };
  const skip = (what) => log(`exists: ${what}`);

  // 1. Resources.
  const d1What = `database_id of [[env.${env}.d1_databases]]`;
  const kvWhat = `id of [[env.${env}.kv_namespaces]]`;
  let databases = parseD1List(await exec(["d1", "list", "--json"]));
  const d1Pinned = pinnedResource(databases, target.d1.id, d1What, "D1 database");
  const databaseExisted = d1Pinned !== null || databases.has(target.d1.name);
  if (d1Pinned) skip(d1Pinned);
  else if (databaseExisted) skip(`D1 database ${target.d1.name}`);
  else await change(["d1", "create", target.d1.name]);

  let namespaces = parseKvList(await exec(["kv", "namespace", "list"]));
  const kvPinned = pinnedResource(namespaces, target.kv.id, kvWhat, "KV namespace");
  const namespaceExisted = kvPinned !== null || namespaces.has(target.kv.title);
  if (kvPinned) skip(kvPinned);
  else if (namespaceExisted) skip(`KV namespace ${target.kv.title}`);
  else await change(["kv", "namespace", "create", target.kv.title]);

  const buckets = parseR2List(await exec(["r2", "bucket", "list"]));
  if (buckets.has(target.r2.bucket)) skip(`R2 bucket ${target.r2.bucket}`);
  else await change(["r2", "bucket", "create", target.r2.bucket]);

  const queues = parseQueuesList(await exec(["queues", "list"]));
  for (const queue of [target.queue, target.deadLetterQueue]) {
    if (queues.has(queue)) skip(`queue ${queue}`);
    else await change(["queues", "create", queue]);
  }

  // 2. Ids into wrangler.toml. A resource created just now is listed again for its id.
  if (!dryRun && !databaseExisted) databases = parseD1List(await exec(["d1", "list", "--json"]));
  if (!dryRun && !namespaceExisted) namespaces = parseKvList(await exec(["kv", "namespace", "list"]));
  const ids = {
    d1: d1Pinned ? target.d1.id : databases.get(target.d1.name),
    kv: kvPinned ? target.kv.id : namespaces.get(target.kv.title),
  };
  const writes = {};
  for (const [key, what, current] of [
    ["d1", d1What, target.d1.id],
    ["kv", kvWhat, target.kv.id],
  ]) {
    const id = ids[key];
    if (id && id === current) skip(`${what} = "${id}" in ${configPath}`);
    else if (dryRun) log(`[dry-run] write ${what} = "${id ?? "<id of the new resource>"}" into ${configPath}`);
    else if (!id) throw new CliError(`could not find the id of the new ${key === "d1" ? "D1 database" : "KV namespace"}; run setup again`);
    else writes[key] = id;
  }
  if (Object.keys(writes).length > 0) {
    writeBindingIds(configPath, env, writes);
    log(`wrote ${Object.keys(writes).join(" and ")} id${Object.keys(writes).length > 1 ? "s" : ""} into ${configPath} [env.${env}]`);
  }
  if (!dryRun && (isPlaceholderId(ids.d1) || isPlaceholderId(ids.kv))) throw new CliError("a binding id is still a placeholder");

  // 3. Secrets.
  const config = configArgs(configPath);
  const present = await listSecrets(exec, env, configPath);
  for (const secret of requiredSecrets(target.vars)) {
    if (present.has(secret)) {
      skip(`secret ${secret}`);
      continue;
    }
    const args = ["secret", "put", secret, "--env", env, ...config];
    if (dryRun) {
      if (secret === "JWT_KEYS") await signingKeys(keysFile, env, { dryRun, log });
      await change(args, { input: "" });
      continue;
    }
    let value;
    if (secret === "JWT_KEYS") value = await signingKeys(keysFile, env, { dryRun, log });
    else if (secret === "OTP_SECRET") value = randomSecret();
    else value = mailApiKey || (await askSecret(`${secret} for ${env} (the mail provider's API key, not echoed): `));
    if (!value) throw new CliError(`${secret} is empty: set LATCHKEY_MAIL_API_KEY or type the key`);
    await change(args, { input: value });
  }

  // 4. Migrations.
  const migrate = ["d1", "migrations", "apply", "DB", "--remote", "--env", env, ...config];
  // A dry run cannot ask about a database wrangler.toml does not point at yet.
  if (databaseExisted && (!dryRun || ids.d1 === target.d1.id)) {
    const pending = await exec(["d1", "migrations", "list", "DB", "--remote", "--env", env, ...config]);
    if (/No migrations to apply/i.test(pending)) skip(`every migration is applied to ${target.d1.name}`);
    else await change(migrate);
  } else await change(migrate);

  log(
    dryRun
      ? `dry run: ${planned.length === 0 ? "nothing to do" : `${planned.length} command${planned.length > 1 ? "s" : ""} would run`}; nothing was changed`
      : `${env} is set up${planned.length === 0 ? " (nothing was missing)" : ""}. Next: npm run deploy -- --env ${env}`,
  );
  return { executed, planned };
}

/**
 * The resource a real (not placeholder) id in wrangler.toml names: the worker uses it whatever its
 * name, so setup neither creates another nor writes over the id. `listed` maps names to ids.
 * Returns how to log it, or null for a placeholder; throws for an id no resource of the account has.
 */
function pinnedResource(listed, id, what, kind) {
  if (isPlaceholderId(id)) return null;
  const name = [...listed].find(([, listedId]) => listedId === id)?.[0];
  if (name === undefined) {
    throw new CliError(
      `${what} is "${id}", which no ${kind} of this account has: correct it, or put the all-zeros placeholder back for setup to find or create one`,
    );
  }
  return `${kind} ${id} (${name}), as ${what} names it`;
}

/**
 * The JWT_KEYS value to upload. Cloudflare secrets cannot be read back, and key rotation appends to
 * the set it is given (scripts/keys.mjs): a set not kept anywhere would make the first rotation a
 * new set, retiring the deployed key at once. So the set kept in `keysFile` is uploaded when there
 * is one, and a new set is written there (0600, in a 0700 folder) before it is uploaded.
 */
async function signingKeys(keysFile, env, { dryRun, log }) {
  if (isDevelopmentSet(keysFile)) {
    throw new CliError(`${keysFile} is the development set, never uploaded: keep ${env}'s set in its own file (--keys-file)`);
  }
  if (existsSync(keysFile)) {
    const { vars, keys } = readKeySet(keysFile);
    const owner = keySetEnvironment(keysFile, vars);
    if (owner && owner !== env)
      throw new CliError(`${keysFile} holds ${owner}'s signing keys, not ${env}'s: pass ${env}'s with --keys-file`);
    log(`JWT_KEYS: the set kept in ${keysFile} (${keys.map((key) => key.kid).join(", ")})`);
    return JSON.stringify({ keys });
  }
  if (dryRun) {
    log(`[dry-run] keep the new JWT_KEYS set in ${keysFile}`);
    return "";
  }
  const keys = [await generateSigningJwk()];
  writeKeySet(keysFile, keys, { LATCHKEY_ENV: env });
  log(
    `JWT_KEYS: a new set (${keys[0].kid}), kept in ${keysFile}, readable only by you; rotate it with npm run keys:rotate -- --file ${keysFile}`,
  );
  return JSON.stringify({ keys });
}

async function main() {
  const { values } = parseCli(
    { env: { type: "string" }, "dry-run": { type: "boolean", default: false }, "keys-file": { type: "string" } },
    { allowPositionals: false, args: process.argv.slice(2) },
  );
  if (values.help) return console.log(USAGE);
  if (values.remote || values["persist-to"]) throw new CliError(`setup always acts on the account; ${USAGE}`);
  await setup({
    env: values.env,
    dryRun: values["dry-run"],
    configPath: values.config ?? "wrangler.toml",
    keysFile: values["keys-file"] ?? defaultKeysFile(values.env),
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await runCli(main);
