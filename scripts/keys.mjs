// npm run keys:rotate [-- --file <path>] [--new --env staging|production]
// npm run keys:retire -- <kid> [--file <path>]
// node scripts/keys.mjs print --file <path> | npx wrangler secret put JWT_KEYS --env <name>
//
// Manages the JWT_KEYS signing set (a JWK set of Ed25519 private keys) in a vars file, by
// default .dev.vars. The LAST key signs and every key verifies (src/features/auth/access-tokens.ts),
// so rotation is: append a key, upload it (`print` stamps it to sign 10 minutes later, once every
// cached copy of the JWKS holds it; tokens signed by the old key still verify), wait one
// access-token lifetime after that, then retire the old kid.
//
// Cloudflare secrets cannot be read back, so for production keep the production set in its own
// file readable only by you (chmod 600), rotate that file with --file, and pipe it to wrangler
// with `print`. Private keys are never written to a terminal: `print` refuses unless piped, and
// refuses the development set (.dev.vars), which is only ever loaded by `npm run dev`.
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { CliError, DEPLOY_ENVS, runCli } from "./lib/cli.mjs";
import {
  generateSigningJwk,
  isDevelopmentSet,
  keySetEnvironment,
  readKeySet,
  SIGNING_DELAY_SECONDS,
  signerAt,
  stampSigningTimes,
  writeKeySet,
} from "./lib/keys.mjs";

const DEV_VARS = ".dev.vars";

const USAGE = `usage: npm run keys:rotate [-- --file <vars file>] [--new --env staging|production]
       npm run keys:retire -- <kid> [--file <vars file>]
       node scripts/keys.mjs print --file <vars file> | npx wrangler secret put JWT_KEYS --env <name>`;

const iso = (seconds) => new Date(seconds * 1000).toISOString();

function printKeyList(keys) {
  keys.forEach((key, i) => {
    const from = key.signs_from !== undefined && key.signs_from * 1000 > Date.now() ? ` from ${iso(key.signs_from)}` : "";
    console.log(`  ${key.kid}${i === keys.length - 1 ? `  (signs${from})` : "  (verifies only)"}`);
  });
}

/**
 * The step after a change. The development set (.dev.vars) is only loaded by `npm run dev`, and
 * must never be uploaded: printing an upload command for it would invite pushing development
 * keys to production. Any file named .dev.vars counts as development (wrangler dev's name for
 * it); a set kept in its own file (--file) is the one that gets uploaded.
 */
function printNextStep(file, vars) {
  if (isDevelopmentSet(file)) {
    console.log(`\nNext: restart \`npm run dev\` to load the changed ${DEV_VARS}.
(For production, keep the production set in its own 0600 file and pass it with --file <that file>.)`);
    return;
  }
  // The deployed workers are wrangler environments (README, Deploying): without --env the set
  // would go to the top-level worker, and the deployed one would keep its old keys. The set's own
  // environment wins over the shell's: production's keys must not be pasted into staging.
  const env = keySetEnvironment(file, vars) ?? (process.env.CLOUDFLARE_ENV || "<name>");
  console.log(`\nNext: upload the set to the deployed worker (private keys go through the pipe, never to the terminal):
  node scripts/keys.mjs print --file ${file} | npx wrangler secret put JWT_KEYS --env ${env}
(${env === "<name>" ? "<name>: the environment this set is for, production or staging; " : ""}the secret applies to the deployed worker at once; nothing needs redeploying)`);
}

/**
 * `file`, which must exist: a mistyped --file must not quietly start a new set, whose upload would
 * retire every deployed key at once.
 */
function existing(file) {
  if (existsSync(file)) return file;
  if (isDevelopmentSet(file)) throw new CliError(`${file} does not exist (npm run dev creates it)`);
  throw new CliError(
    `${file} does not exist. npm run setup keeps each environment's set in ~/.latchkey/<env>.vars; check --file. To start a new set instead (uploading it retires every deployed key), add --new --env ${DEPLOY_ENVS.join("|")}.`,
  );
}

/** An empty set for environment `env` (recorded in the file), in a file that does not exist yet. */
function newSet(file, env) {
  if (!DEPLOY_ENVS.includes(env ?? "")) throw new CliError(`--new needs --env ${DEPLOY_ENVS.join("|")}: the environment this set is for`);
  if (existsSync(file)) throw new CliError(`${file} already exists; rotate it without --new`);
  return { vars: { LATCHKEY_ENV: env }, keys: [] };
}

await runCli(async () => {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        options: {
          file: { type: "string", default: DEV_VARS },
          new: { type: "boolean", default: false },
          env: { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        allowPositionals: true,
      });
    } catch (error) {
      throw new CliError(error.message);
    }
  })();
  const [command, ...args] = positionals;
  if (values.help || !command) return console.log(USAGE);
  const file = values.file;
  if ((values.new || values.env !== undefined) && command !== "rotate") throw new CliError(`--new and --env start a set: ${USAGE}`);

  if (command === "rotate") {
    if (args.length > 0) throw new CliError(USAGE);
    const { vars, keys } = values.new ? newSet(file, values.env) : readKeySet(existing(file));
    const key = await generateSigningJwk();
    keys.push(key);
    // Only the keys' line changes (and a new set records its environment); every other line stays.
    writeKeySet(file, keys, values.new ? { LATCHKEY_ENV: values.env } : {});
    console.log(`Added key ${key.kid} to ${file}; it signs new access tokens, the others still verify:`);
    printKeyList(keys);
    if (!isDevelopmentSet(file)) {
      console.log(
        `\nUploaded, it is published in the JWKS at once and signs ${SIGNING_DELAY_SECONDS / 60} minutes later (\`print\` fixes the time), when every cached copy of the JWKS holds it.`,
      );
    }
    if (keys.length > 1) {
      console.log(
        "\nRetire the previous key once every token it signed has expired (one access_token_ttl after the new key starts signing):",
      );
      console.log(`  npm run keys:retire -- ${keys[keys.length - 2].kid}${file === DEV_VARS ? "" : ` --file ${file}`}`);
    }
    printNextStep(file, vars);
    return;
  }

  if (command === "retire") {
    if (args.length !== 1) throw new CliError(USAGE);
    const kid = args[0];
    const { vars, keys } = readKeySet(existing(file));
    const index = keys.findIndex((key) => key.kid === kid);
    if (index === -1) throw new CliError(`no key with kid ${kid} in ${file}; keys: ${keys.map((k) => k.kid).join(", ")}`);
    if (keys.length === 1) throw new CliError(`${kid} is the only key in ${file}; rotate first so something can still sign`);
    if (index === keys.length - 1) {
      throw new CliError(`${kid} is the signing key; rotate first, then retire it once its tokens have expired`);
    }
    // Until the newest key's time comes an older one signs, and retiring that would cut off the
    // tokens it signs meanwhile.
    const newest = keys[keys.length - 1];
    if (signerAt(keys, Date.now()) !== newest) {
      throw new CliError(
        `${newest.kid} signs only from ${iso(newest.signs_from)}; until then an older key signs. Retire ${kid} one access_token_ttl after that.`,
      );
    }
    keys.splice(index, 1);
    writeKeySet(file, keys);
    console.log(`Removed key ${kid} from ${file}; tokens it signed no longer verify. Keys now:`);
    printKeyList(keys);
    printNextStep(file, vars);
    return;
  }

  if (command === "print") {
    if (process.stdout.isTTY)
      throw new CliError("refusing to print private keys to a terminal; pipe it: ... | npx wrangler secret put JWT_KEYS --env <name>");
    // Its keys sit in a plain file on every developer's machine: uploaded, anyone holding that
    // file could sign access tokens the deployed worker accepts.
    if (isDevelopmentSet(file)) {
      throw new CliError(
        `refusing to print ${file}: it is the development set, never uploaded; pass the deployed set with --file <its file>`,
      );
    }
    const { keys } = readKeySet(file);
    // The time is fixed here, at upload, and kept: printing again does not push it back.
    if (stampSigningTimes(keys, Date.now()).length > 0) writeKeySet(file, keys);
    const newest = keys[keys.length - 1];
    if (newest.signs_from * 1000 > Date.now()) {
      console.error(`${newest.kid} signs from ${iso(newest.signs_from)}; until then ${signerAt(keys, Date.now()).kid} does.`);
    }
    process.stdout.write(JSON.stringify({ keys }));
    return;
  }

  throw new CliError(USAGE);
});
