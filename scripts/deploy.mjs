#!/usr/bin/env node
// `npm run deploy -- --env staging|production [--dry-run] [--config wrangler.toml]`
//
// Refuses, one line per problem, to deploy an environment that would not work or would be unsafe:
//   - MAIL_DRIVER not "http" or "cloudflare" (console sends codes to the log, not to the users);
//   - ENVIRONMENT not the environment's own name (a deploy must never be "development");
//   - a D1 or KV id still the all-zeros placeholder (`npm run setup` writes the real ones);
//   - a required secret missing from `wrangler secret list --env …`.
// Then applies the pending remote D1 migrations, deploys the same bundle `npm run build` makes
// (`wrangler deploy --minify`), and repairs what the previous worker wrote on the new schema in
// between (lib/repairs.mjs). `--dry-run` runs the checks and prints those three commands.
import { pathToFileURL } from "node:url";
import { CliError, parseCli, runCli } from "./lib/cli.mjs";
import {
  configArgs,
  isPlaceholderId,
  listSecrets,
  mailDriverProblem,
  readEnvironment,
  requiredSecrets,
  showCommand,
  wranglerRunner,
} from "./lib/deploy-env.mjs";
import { REPAIR_MARGIN_MS, repairSql } from "./lib/repairs.mjs";

const USAGE = `usage: npm run deploy -- --env staging|production [--dry-run] [--config wrangler.toml]`;

/** What stops `env` from being deployed, as one line each (empty when nothing does). */
export async function deployProblems({ env, configPath = "wrangler.toml", run = wranglerRunner }) {
  const target = readEnvironment(configPath, env);
  const setupHint = `run \`npm run setup -- --env ${env}\``;
  const problems = [];
  if (target.vars.ENVIRONMENT !== env) {
    problems.push(`ENVIRONMENT in [env.${env}.vars] is "${target.vars.ENVIRONMENT ?? ""}": set it to "${env}"`);
  }
  const mail = mailDriverProblem(env, target.vars);
  if (mail) problems.push(mail);
  if (isPlaceholderId(target.d1.id)) problems.push(`database_id of [[env.${env}.d1_databases]] is a placeholder: ${setupHint}`);
  if (isPlaceholderId(target.kv.id)) problems.push(`id of [[env.${env}.kv_namespaces]] is a placeholder: ${setupHint}`);
  const present = await listSecrets(run, env, configPath);
  for (const secret of requiredSecrets(target.vars)) {
    if (!present.has(secret)) problems.push(`secret ${secret} is missing in ${env}: ${setupHint}`);
  }
  return problems;
}

/**
 * Checks `env` and deploys it: pending remote migrations, then `wrangler deploy --minify --env`,
 * then the repairs for writes since the migrations began. Returns the commands run or, with
 * `dryRun`, printed. Throws a CliError listing the problems.
 */
export async function deploy({
  env,
  dryRun = false,
  configPath = "wrangler.toml",
  run = wranglerRunner,
  log = console.log,
  now = Date.now,
}) {
  const problems = await deployProblems({ env, configPath, run });
  if (problems.length > 0) throw new CliError(`not deploying ${env}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  const config = configArgs(configPath);
  const since = now() - REPAIR_MARGIN_MS;
  const commands = [
    ["d1", "migrations", "apply", "DB", "--remote", "--env", env, ...config],
    ["deploy", "--minify", "--env", env, ...config],
    // A plain query (not --file, which goes through D1's import API), after the new worker is up.
    ["d1", "execute", "DB", "--remote", "--env", env, ...config, "--command", repairSql(since)],
  ];
  for (const args of commands) {
    if (dryRun) log(`[dry-run] ${showCommand(args)}`);
    else {
      log(`$ ${showCommand(args)}`);
      log((await run(args)).trimEnd());
    }
  }
  log(dryRun ? `dry run: ${env} passes the checks; nothing was deployed` : `deployed ${env}`);
  return commands;
}

async function main() {
  const { values } = parseCli(
    { env: { type: "string" }, "dry-run": { type: "boolean", default: false } },
    { allowPositionals: false, args: process.argv.slice(2) },
  );
  if (values.help) return console.log(USAGE);
  if (values.remote || values["persist-to"]) throw new CliError(`deploy always acts on the account; ${USAGE}`);
  await deploy({ env: values.env, dryRun: values["dry-run"], configPath: values.config ?? "wrangler.toml" });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await runCli(main);
