// Shared plumbing for the operator scripts: flags, the wrangler calls they wrap, clean failures.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { offlineEnv } from "./offline.mjs";

/** An expected failure: printed as one line, exit code 1, no stack trace. */
export class CliError extends Error {}

/** Runs `main`, turning a CliError into `error: …` on stderr and exit code 1. */
export async function runCli(main) {
  try {
    await main();
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error(`error: ${error.message}`);
    process.exitCode = 1;
  }
}

/** The flags every wrangler-backed script takes, plus the script's own. */
export function parseCli(options = {}, { allowPositionals = true, args = process.argv.slice(2) } = {}) {
  try {
    return parseArgs({
      args,
      options: {
        remote: { type: "boolean", default: false },
        "persist-to": { type: "string" },
        config: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
        ...options,
      },
      allowPositionals,
      strict: true,
    });
  } catch (error) {
    throw new CliError(error.message);
  }
}

/**
 * Where wrangler should act: the local state of `wrangler dev` (default, or `--persist-to <dir>`),
 * or the deployed resources with `--remote`.
 */
export function targetArgs(values) {
  if (values.remote && values["persist-to"]) throw new CliError("--persist-to is for local state; it cannot be combined with --remote");
  const args = values.remote ? ["--remote"] : ["--local"];
  if (values["persist-to"]) args.push("--persist-to", values["persist-to"]);
  if (values.config) args.push("--config", values.config);
  return args;
}

const require = createRequire(import.meta.url);
const WRANGLER = require.resolve("wrangler/bin/wrangler.js");

/** Runs wrangler; resolves with its stdout, or throws a CliError carrying its stderr. */
export function wrangler(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      // Non-interactive: never wait on a prompt the operator cannot see.
      env: { ...offlineEnv(), CI: "true" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(stdout);
      else reject(new CliError(`wrangler ${args.slice(0, 3).join(" ")} failed:\n${(stderr || stdout).trim()}`));
    });
  });
}

/** Runs SQL through `wrangler d1 execute DB --json` and returns the rows of the last statement. */
export async function d1(values, { command, file }) {
  const args = ["d1", "execute", "DB", ...targetArgs(values), "--json", ...(file ? ["--file", file] : ["--command", command])];
  const out = await wrangler(args);
  let parsed;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new CliError(`unexpected output from wrangler d1 execute:\n${out.slice(0, 500)}`);
  }
  return parsed.at(-1)?.results ?? [];
}

/** A SQL string literal: single quotes doubled, NULL for null. Only for values we validated. */
export function sqlString(value) {
  if (value === null || value === undefined) return "NULL";
  return `'${String(value).replace(/'/g, "''")}'`;
}

/** The worker's `[vars]` value of `name` in wrangler.toml (a flat string), or undefined. */
export function wranglerVar(configPath, name) {
  const text = readFileSync(configPath ?? "wrangler.toml", "utf8");
  const match = new RegExp(`^\\s*${name}\\s*=\\s*"([^"]*)"`, "m").exec(text);
  return match?.[1];
}
