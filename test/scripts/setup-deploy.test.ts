/**
 * `npm run setup` and `npm run deploy` against a fake wrangler: the runner is injected, answers the
 * read-only `list` commands with canned outputs in wrangler's own formats, and records every call.
 * The scripts run in dry-run mode, so the tests assert the exact commands they would run, that
 * nothing else reached wrangler, and that a second run over an account that has everything skips
 * everything. Each test works on its own copy of wrangler.toml.
 */
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { deploy, deployProblems } from "../../scripts/deploy.mjs";
import {
  parseD1List,
  parseKvList,
  parseQueuesList,
  parseR2List,
  readEnvironment,
  setBindingValue,
  writeBindingIds,
} from "../../scripts/lib/deploy-env.mjs";
import { generateSigningJwk, readDevVars, writeDevVars } from "../../scripts/lib/keys.mjs";
import { migrationBatches } from "../../scripts/lib/migrations.mjs";
import { REPAIR_MARGIN_MS, repairSql } from "../../scripts/lib/repairs.mjs";
import { setup } from "../../scripts/setup.mjs";

const ROOT = join(import.meta.dirname, "../..");
const exec = promisify(execFile);
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-setup-"));
  dirs.push(dir);
  return dir;
}

/** A keys file that does not exist, so no test reads the operator's own ~/.latchkey. */
const noKeysFile = () => join(tempDir(), "keys", "none.vars");

/** `setup --dry-run` for staging against the fake account `run`, with a keys file of its own. */
const dryRun = (config: string, run: Parameters<typeof setup>[0]["run"], log: (line: string) => void) =>
  setup({ env: "staging", dryRun: true, configPath: config, run, log, keysFile: noKeysFile() });

/** A private copy of the repository's wrangler.toml. */
function configCopy() {
  const path = join(tempDir(), "wrangler.toml");
  copyFileSync(join(ROOT, "wrangler.toml"), path);
  return path;
}

const D1_ID = "4f7b1c2e-9a3d-4e5f-8b6a-1c2d3e4f5a6b";
const KV_ID = "a825455ce00f4f7282403da85269f8ea";
const BANNER = "\n ⛅️ wrangler 4.86.0\n─────────────────────────────────────────────\n";

/** An account as wrangler's list commands print it. */
function account(
  options: {
    databases?: string[];
    namespaces?: string[];
    buckets?: string[];
    queues?: string[];
    secrets?: string[] | "no worker";
    pendingMigrations?: boolean;
  } = {},
) {
  const { databases = [], namespaces = [], buckets = [], queues = [], secrets = "no worker", pendingMigrations = false } = options;
  const d1 = JSON.stringify(
    databases.map((name) => ({ uuid: D1_ID, name, created_at: "2026-11-01T10:00:00.000Z", version: "production", num_tables: 9 })),
    null,
    2,
  );
  const kv = JSON.stringify(
    namespaces.map((title) => ({ id: KV_ID, title, supports_url_encoding: true })),
    null,
    "  ",
  );
  const r2 = `${BANNER}Listing buckets...\n${buckets.map((name) => `name:           ${name}\ncreation_date:  2026-11-01T10:00:00.000Z`).join("\n\n")}\n`;
  const width = 36;
  const cell = (text: string) => ` ${text.padEnd(width)} `;
  const line = (l: string, m: string, r: string) => `${l}${"─".repeat(width + 2)}${m}${"─".repeat(width + 2)}${r}`;
  const table = [
    line("┌", "┬", "┐"),
    `│${cell("id")}│${cell("name")}│`,
    ...queues.flatMap((name, i) => [line("├", "┼", "┤"), `│${cell(`0f${i}e9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3`)}│${cell(name)}│`]),
    line("└", "┴", "┘"),
  ].join("\n");
  const calls: { args: string[]; input?: string }[] = [];
  const run = async (args: string[], options: { input?: string } = {}) => {
    calls.push({ args, input: options.input });
    const command = args.join(" ");
    if (command === "d1 list --json") return d1;
    if (command === "kv namespace list") return kv;
    if (command === "r2 bucket list") return r2;
    if (command === "queues list") return `${BANNER}${table}\n`;
    if (command.startsWith("secret list --env ")) {
      if (secrets === "no worker") {
        throw new Error(`wrangler ${command} failed:\n✘ [ERROR] Worker "latchkey-staging" (env: staging) not found.`);
      }
      return JSON.stringify(
        secrets.map((name) => ({ name, type: "secret_text" })),
        null,
        "  ",
      );
    }
    if (command.startsWith("d1 migrations list DB --remote")) {
      return pendingMigrations
        ? `${BANNER}Migrations to be applied:\n┌──────────────────────┐\n│ Name                 │\n├──────────────────────┤\n│ 0002_email_ownership.sql │\n└──────────────────────┘\n`
        : `${BANNER}✅ No migrations to apply!\n`;
    }
    throw new Error(`the fake wrangler was asked to change something: wrangler ${command}`);
  };
  return { run, calls };
}

const STAGING = {
  databases: ["latchkey-staging"],
  namespaces: ["latchkey-staging-config"],
  buckets: ["latchkey-staging-avatars"],
  queues: ["latchkey-staging-mail", "latchkey-staging-mail-dlq"],
};
/** Staging's resources all exist, the worker has no secrets yet; `puts` records each `secret put` (name and stdin). */
function withoutSecrets() {
  const base = account({ ...STAGING, secrets: [] });
  const puts = new Map<string, string | undefined>();
  const run = async (args: string[], options: { input?: string } = {}) => {
    if (args[0] !== "secret" || args[1] !== "put") return base.run(args, options);
    puts.set(args[2] as string, options.input);
    return "✨ Success!\n";
  };
  return { run, puts };
}

const LIST_CALLS = [
  ["d1", "list", "--json"],
  ["kv", "namespace", "list"],
  ["r2", "bucket", "list"],
  ["queues", "list"],
];

describe("wrangler.toml's environments", () => {
  it("declare every binding for staging and production, with their own resources, and never the development inbox", () => {
    const path = join(ROOT, "wrangler.toml");
    const seen = new Set<string>();
    for (const name of ["staging", "production"]) {
      const env = readEnvironment(path, name);
      expect(env.vars.ENVIRONMENT).toBe(name);
      expect(["http", "cloudflare"]).toContain(env.vars.MAIL_DRIVER);
      expect(env.maxRetries).toBe(5); // MAIL_MAX_RETRIES in src/features/mail/mail.consumer.ts
      for (const resource of [env.d1.name, env.kv.title, env.r2.bucket, env.queue, env.deadLetterQueue]) {
        expect(resource).toContain(name);
        expect(seen.has(resource)).toBe(false);
        seen.add(resource);
      }
    }
    const text = readFileSync(path, "utf8");
    for (const name of ["staging", "production"]) {
      for (const table of ["d1_databases", "kv_namespaces", "r2_buckets", "queues.producers", "queues.consumers", "send_email"]) {
        expect(text).toContain(`[[env.${name}.${table}]]`);
      }
      for (const table of ["vars", "triggers", "assets", "observability"]) expect(text).toContain(`[env.${name}.${table}]`);
    }
    expect(text.match(/^\[(env\.\w+\.)?observability\]\nenabled = true$/gm)).toHaveLength(3);
    // The top level stays the local setup: production vars, console mail, placeholder ids.
    expect(text).toMatch(/^ENVIRONMENT = "production"$/m);
    expect(text).toMatch(/^MAIL_DRIVER = "console"$/m);
  });

  it("refuses an unknown or missing --env, naming the choices", () => {
    const path = join(ROOT, "wrangler.toml");
    expect(() => readEnvironment(path, undefined as unknown as string)).toThrow(/--env staging\|production is required/);
    expect(() => readEnvironment(path, "development")).toThrow(/--env staging\|production is required \(not "development"\)/);
  });
});

describe("wrangler's list outputs", () => {
  it("are read for names and ids", async () => {
    const { run } = account({ ...STAGING, secrets: [] });
    expect(parseD1List(await run(["d1", "list", "--json"]))).toEqual(new Map([["latchkey-staging", D1_ID]]));
    expect(parseKvList(await run(["kv", "namespace", "list"]))).toEqual(new Map([["latchkey-staging-config", KV_ID]]));
    expect(parseR2List(await run(["r2", "bucket", "list"]))).toEqual(new Set(["latchkey-staging-avatars"]));
    expect(parseQueuesList(await run(["queues", "list"]))).toEqual(new Set(STAGING.queues));
    expect(parseQueuesList(`${BANNER}┌┐\n└┘\n`)).toEqual(new Set());
    expect(parseR2List("Listing buckets...\n")).toEqual(new Set());
  });

  it("ids are written into the environment's block only, keeping everything else", () => {
    const text = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
    const next = setBindingValue(text, "production", "d1_databases", "database_id", D1_ID);
    expect(next.split("\n").filter((line, i) => line !== text.split("\n")[i])).toEqual([`database_id = "${D1_ID}"`]);
    expect(readEnvironment(join(ROOT, "wrangler.toml"), "staging").d1.id).toBe("00000000-0000-0000-0000-000000000000");
  });
});

describe("npm run setup -- --dry-run", () => {
  it("on an empty account: lists, then would create every resource, write both ids, upload the secrets and migrate", async () => {
    const config = configCopy();
    const before = readFileSync(config, "utf8");
    const { run, calls } = account();
    const lines: string[] = [];
    const result = await dryRun(config, run, (l: string) => lines.push(l));
    const cfg = ["--config", config];
    expect(calls.map((c) => c.args)).toEqual([...LIST_CALLS, ["secret", "list", "--env", "staging", ...cfg]]);
    expect(result.planned).toEqual([
      ["d1", "create", "latchkey-staging"],
      ["kv", "namespace", "create", "latchkey-staging-config"],
      ["r2", "bucket", "create", "latchkey-staging-avatars"],
      ["queues", "create", "latchkey-staging-mail"],
      ["queues", "create", "latchkey-staging-mail-dlq"],
      ["secret", "put", "JWT_KEYS", "--env", "staging", ...cfg],
      ["secret", "put", "OTP_SECRET", "--env", "staging", ...cfg],
      ["secret", "put", "MAIL_API_KEY", "--env", "staging", ...cfg],
      ["d1", "migrations", "apply", "DB", "--remote", "--env", "staging", ...cfg],
    ]);
    // Every planned command is printed, in order, and the ids it would write are named.
    const printed = lines.filter((l) => l.startsWith("[dry-run] wrangler ")).map((l) => l.replace(/\s+\(value on stdin\)$/, ""));
    expect(printed).toEqual(result.planned.map((args: string[]) => `[dry-run] wrangler ${args.join(" ")}`));
    expect(lines).toContain(`[dry-run] write database_id of [[env.staging.d1_databases]] = "<id of the new resource>" into ${config}`);
    expect(lines.at(-1)).toBe("dry run: 9 commands would run; nothing was changed");
    expect(readFileSync(config, "utf8")).toBe(before);
  });

  it("with the resources but placeholder ids: would write the listed ids and skip the creations", async () => {
    const config = configCopy();
    const { run } = account({ ...STAGING, secrets: ["JWT_KEYS"] });
    const lines: string[] = [];
    const result = await dryRun(config, run, (l: string) => lines.push(l));
    expect(lines).toContain(`[dry-run] write database_id of [[env.staging.d1_databases]] = "${D1_ID}" into ${config}`);
    expect(lines).toContain(`[dry-run] write id of [[env.staging.kv_namespaces]] = "${KV_ID}" into ${config}`);
    expect(lines).toContain("exists: secret JWT_KEYS");
    expect(result.planned.map((args: string[]) => args.slice(0, 3).join(" "))).toEqual([
      "secret put OTP_SECRET",
      "secret put MAIL_API_KEY",
      "d1 migrations apply",
    ]);
  });

  it("keeps an id already in wrangler.toml that names a resource of the account under another name, creating nothing", async () => {
    const config = configCopy();
    writeBindingIds(config, "staging", { d1: D1_ID, kv: KV_ID });
    // Made in the dashboard under other names: the ids in wrangler.toml are what the worker uses.
    const { run } = account({
      ...STAGING,
      databases: ["staging-db"],
      namespaces: ["staging-settings"],
      secrets: ["JWT_KEYS", "OTP_SECRET", "MAIL_API_KEY"],
    });
    const lines: string[] = [];
    const result = await dryRun(config, run, (l: string) => lines.push(l));
    expect(result.planned).toEqual([]);
    expect(lines).toContain(`exists: D1 database ${D1_ID} (staging-db), as database_id of [[env.staging.d1_databases]] names it`);
    expect(lines).toContain(`exists: KV namespace ${KV_ID} (staging-settings), as id of [[env.staging.kv_namespaces]] names it`);
    expect(readEnvironment(config, "staging")).toMatchObject({ d1: { id: D1_ID }, kv: { id: KV_ID } });
  });

  it("refuses an id in wrangler.toml that no resource of the account has, rather than replacing it", async () => {
    const config = configCopy();
    const restored = "11111111-2222-3333-4444-555555555555";
    writeBindingIds(config, "staging", { d1: restored, kv: KV_ID });
    const { run } = account({ ...STAGING, secrets: ["JWT_KEYS", "OTP_SECRET", "MAIL_API_KEY"] });
    const before = readFileSync(config, "utf8");
    for (const dry of [true, false]) {
      await expect(setup({ env: "staging", dryRun: dry, configPath: config, run, log: () => {}, keysFile: noKeysFile() })).rejects.toThrow(
        `database_id of [[env.staging.d1_databases]] is "${restored}", which no D1 database of this account has`,
      );
    }
    expect(readFileSync(config, "utf8")).toBe(before);
  });

  it("a second run, once everything exists and the ids are written, skips everything", async () => {
    const config = configCopy();
    writeBindingIds(config, "staging", { d1: D1_ID, kv: KV_ID });
    const { run, calls } = account({ ...STAGING, secrets: ["JWT_KEYS", "OTP_SECRET", "MAIL_API_KEY"] });
    const lines: string[] = [];
    const result = await dryRun(config, run, (l: string) => lines.push(l));
    expect(result.planned).toEqual([]);
    const cfg = ["--config", config];
    expect(calls.map((c) => c.args)).toEqual([
      ...LIST_CALLS,
      ["secret", "list", "--env", "staging", ...cfg],
      ["d1", "migrations", "list", "DB", "--remote", "--env", "staging", ...cfg],
    ]);
    expect(lines.filter((l) => l.startsWith("exists: "))).toHaveLength(11);
    expect(lines.at(-1)).toBe("dry run: nothing to do; nothing was changed");
  });

  it("applies only pending migrations, and refuses an environment set to console mail", async () => {
    const config = configCopy();
    writeBindingIds(config, "staging", { d1: D1_ID, kv: KV_ID });
    const { run } = account({ ...STAGING, secrets: ["JWT_KEYS", "OTP_SECRET", "MAIL_API_KEY"], pendingMigrations: true });
    const result = await dryRun(config, run, () => {});
    expect(result.planned).toEqual([["d1", "migrations", "apply", "DB", "--remote", "--env", "staging", "--config", config]]);

    writeFileSync(config, readFileSync(config, "utf8").replace('MAIL_DRIVER = "http"', 'MAIL_DRIVER = "console"'));
    await expect(dryRun(config, run, () => {})).rejects.toThrow(/MAIL_DRIVER in \[env\.staging\.vars\] is "console"/);
  });

  it("really runs: uploads generated secrets on stdin without printing them, and writes the new ids", async () => {
    const config = configCopy();
    let created = false;
    const base = account({ ...STAGING, secrets: [] });
    const empty = account({ secrets: [] });
    const calls: { args: string[]; input?: string }[] = [];
    const run = async (args: string[], options: { input?: string } = {}) => {
      calls.push({ args, input: options.input });
      const command = args.join(" ");
      if (/^(d1 create|kv namespace create|r2 bucket create|queues create|secret put|d1 migrations apply)/.test(command)) {
        created = true;
        return "✨ Success!\n";
      }
      return (created ? base : empty).run(args, options);
    };
    const lines: string[] = [];
    const keysFile = join(tempDir(), ".latchkey", "staging.vars");
    await setup({ env: "staging", configPath: config, run, log: (l: string) => lines.push(l), mailApiKey: "re_test_key", keysFile });
    const env = readEnvironment(config, "staging");
    expect(env.d1.id).toBe(D1_ID);
    expect(env.kv.id).toBe(KV_ID);
    const puts = calls.filter((c) => c.args[0] === "secret" && c.args[1] === "put");
    expect(puts.map((c) => c.args[2])).toEqual(["JWT_KEYS", "OTP_SECRET", "MAIL_API_KEY"]);
    const jwtKeys = JSON.parse(puts[0]?.input ?? "");
    expect(jwtKeys.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA" });
    expect(puts[1]?.input?.length).toBeGreaterThanOrEqual(32);
    expect(puts[2]?.input).toBe("re_test_key");
    const output = lines.join("\n");
    for (const put of puts) expect(output).not.toContain(put.input);
    expect(output).not.toContain(jwtKeys.keys[0].d);
    expect(lines.at(-1)).toBe("staging is set up. Next: npm run deploy -- --env staging");
    // Secrets cannot be read back: the set uploaded is kept (0600, folder 0700) for the next rotation.
    expect(readDevVars(keysFile)).toEqual({ LATCHKEY_ENV: "staging", JWT_KEYS: JSON.stringify(jwtKeys) });
    expect(statSync(keysFile).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(keysFile)).mode & 0o777).toBe(0o700);
    expect(output).toContain(`npm run keys:rotate -- --file ${keysFile}`);
  });

  it("the first rotation after setup keeps the key the deployed worker signs with, so its tokens still verify", async () => {
    const { run, puts } = withoutSecrets();
    const keysFile = join(tempDir(), "keys", "staging.vars");
    await setup({ env: "staging", configPath: configCopy(), run, log: () => {}, mailApiKey: "re_test_key", keysFile });
    const deployed = JSON.parse(puts.get("JWT_KEYS") ?? "").keys as { kid: string }[];
    const rotated = await exec(process.execPath, [join(ROOT, "scripts/keys.mjs"), "rotate", "--file", keysFile]);
    expect(rotated.stdout).toContain(`${deployed[0]?.kid}  (verifies only)`);
    const toUpload = JSON.parse(readDevVars(keysFile).JWT_KEYS as string).keys as { kid: string }[];
    expect(toUpload.map((k) => k.kid)).toEqual([deployed[0]?.kid, expect.stringMatching(/^[0-9a-f]{18}$/)]);
  });

  it("uploads the set already kept in the keys file instead of making a new one", async () => {
    const { run, puts } = withoutSecrets();
    const keysFile = join(tempDir(), "production-keys.vars");
    const kept = { keys: [await generateSigningJwk(), await generateSigningJwk()] };
    writeDevVars(keysFile, { JWT_KEYS: JSON.stringify(kept) });
    await setup({ env: "staging", configPath: configCopy(), run, log: () => {}, mailApiKey: "re_test_key", keysFile });
    expect(JSON.parse(puts.get("JWT_KEYS") ?? "")).toEqual(kept);
    expect(JSON.parse(readDevVars(keysFile).JWT_KEYS as string)).toEqual(kept);
  });

  it("refuses to upload the development set, or a set kept for another environment", async () => {
    const { run, puts } = withoutSecrets();
    const dir = tempDir();
    const development = join(dir, ".dev.vars");
    writeDevVars(development, { JWT_KEYS: JSON.stringify({ keys: [await generateSigningJwk()] }), OTP_SECRET: "x" });
    const production = join(dir, "production.vars");
    writeDevVars(production, { LATCHKEY_ENV: "production", JWT_KEYS: JSON.stringify({ keys: [await generateSigningJwk()] }) });
    const attempt = (keysFile: string) =>
      setup({ env: "staging", configPath: configCopy(), run, log: () => {}, mailApiKey: "re_test_key", keysFile });
    await expect(attempt(development)).rejects.toThrow(/is the development set/);
    await expect(attempt(production)).rejects.toThrow(`${production} holds production's signing keys, not staging's`);
    expect(puts.has("JWT_KEYS")).toBe(false);
  });

  it("with --dry-run writes no keys file", async () => {
    const { run } = withoutSecrets();
    const keysFile = join(tempDir(), "dry", "staging.vars");
    const lines: string[] = [];
    await setup({ env: "staging", dryRun: true, configPath: configCopy(), run, log: (l: string) => lines.push(l), keysFile });
    expect(existsSync(keysFile)).toBe(false);
    expect(lines).toContain(`[dry-run] keep the new JWT_KEYS set in ${keysFile}`);
  });
});

describe("npm run deploy", () => {
  const ready = () => {
    const config = configCopy();
    writeBindingIds(config, "production", { d1: D1_ID, kv: KV_ID });
    return config;
  };

  it("checks the secrets, then would apply the migrations and deploy the minified bundle", async () => {
    const config = ready();
    const { run, calls } = account({ secrets: ["JWT_KEYS", "OTP_SECRET", "MAIL_API_KEY"] });
    const lines: string[] = [];
    const startedAt = Date.UTC(2026, 11, 7, 12);
    const commands = await deploy({
      env: "production",
      dryRun: true,
      configPath: config,
      run,
      log: (l: string) => lines.push(l),
      now: () => startedAt,
    });
    const cfg = ["--config", config];
    expect(calls.map((c) => c.args)).toEqual([["secret", "list", "--env", "production", ...cfg]]);
    const repair = ["d1", "execute", "DB", "--remote", "--env", "production", ...cfg, "--command", repairSql(startedAt - REPAIR_MARGIN_MS)];
    expect(commands).toEqual([
      ["d1", "migrations", "apply", "DB", "--remote", "--env", "production", ...cfg],
      ["deploy", "--minify", "--env", "production", ...cfg],
      repair,
    ]);
    expect(lines).toEqual([
      `[dry-run] wrangler d1 migrations apply DB --remote --env production --config ${config}`,
      `[dry-run] wrangler deploy --minify --env production --config ${config}`,
      `[dry-run] wrangler ${repair.join(" ")}`,
      "dry run: production passes the checks; nothing was deployed",
    ]);
  });

  it("repairs after the upload what the previous worker wrote in the window between the migrations and the upload", async () => {
    // Migration 0006 added statuses.author_public; a worker from before it, still serving, re-enables
    // a disabled author without it: the new worker's timeline would go on hiding their statuses.
    const { createClient } = await import("@libsql/client");
    const client = createClient({ url: `file:${join(tempDir(), "window.db")}` });
    for (const statements of migrationBatches(join(ROOT, "migrations"))) await client.batch(statements, "write");
    const startedAt = Date.now();
    await client.batch(
      [
        "INSERT INTO users (id, email, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES ('u1', 'a@example.com', 'h', 0, 0, 1, 0, 1, 1)",
        "INSERT INTO users (id, email, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES ('u2', 'b@example.com', 'h', 0, 0, 1, 0, 1, 1)",
        "INSERT INTO statuses (id, user_id, content, created_at, updated_at, author_public) VALUES ('s1', 'u1', 'hello', 2, 2, 0), ('s2', 'u2', 'hidden', 2, 2, 0)",
        // The old worker's write, after the migrations: u1 enabled again (with its updated_at), no author_public.
        `UPDATE users SET is_active = 1, updated_at = ${startedAt + 1000} WHERE id = 'u1'`,
      ],
      "write",
    );
    await client.execute(repairSql(startedAt - REPAIR_MARGIN_MS));
    const { rows } = await client.execute("SELECT id, author_public FROM statuses ORDER BY id");
    expect(rows.map((row) => [row.id, Number(row.author_public)])).toEqual([
      ["s1", 1],
      ["s2", 0],
    ]);
    client.close();
  });

  it("refuses console mail, placeholder ids and missing secrets, one line each saying what to fix", async () => {
    const config = configCopy();
    writeFileSync(
      config,
      readFileSync(config, "utf8").replace(/(\[env\.production\.vars\][^[]*?)MAIL_DRIVER = "http"/, '$1MAIL_DRIVER = "console"'),
    );
    const { run } = account({ secrets: ["JWT_KEYS"] });
    const problems = await deployProblems({ env: "production", configPath: config, run });
    expect(problems).toEqual([
      'MAIL_DRIVER in [env.production.vars] is "console", which only logs the codes: set "http" (with the MAIL_API_KEY secret) or "cloudflare"',
      "database_id of [[env.production.d1_databases]] is a placeholder: run `npm run setup -- --env production`",
      "id of [[env.production.kv_namespaces]] is a placeholder: run `npm run setup -- --env production`",
      "secret OTP_SECRET is missing in production: run `npm run setup -- --env production`",
    ]);
    await expect(deploy({ env: "production", dryRun: true, configPath: config, run, log: () => {} })).rejects.toThrow(
      /^not deploying production:\n {2}- MAIL_DRIVER/,
    );
  });

  it("refuses a mail driver that is empty or unknown (the worker would fall back to the log, or fail every mail)", async () => {
    for (const driver of ["", "smtp"]) {
      const config = ready();
      writeFileSync(
        config,
        readFileSync(config, "utf8").replace(/(\[env\.production\.vars\][^[]*?)MAIL_DRIVER = "http"/, `$1MAIL_DRIVER = "${driver}"`),
      );
      const { run } = account({ secrets: ["JWT_KEYS", "OTP_SECRET", "MAIL_API_KEY"] });
      expect(await deployProblems({ env: "production", configPath: config, run }), driver).toEqual([
        `MAIL_DRIVER in [env.production.vars] is "${driver}": set "http" (with the MAIL_API_KEY secret) or "cloudflare"`,
      ]);
      await expect(
        setup({ env: "production", dryRun: true, configPath: config, run, log: () => {}, keysFile: noKeysFile() }),
      ).rejects.toThrow(`MAIL_DRIVER in [env.production.vars] is "${driver}"`);
    }
  });

  it("counts every secret missing on a Worker that was never deployed", async () => {
    const config = ready();
    const { run } = account({ secrets: "no worker" });
    expect(await deployProblems({ env: "production", configPath: config, run })).toEqual([
      "secret JWT_KEYS is missing in production: run `npm run setup -- --env production`",
      "secret OTP_SECRET is missing in production: run `npm run setup -- --env production`",
      "secret MAIL_API_KEY is missing in production: run `npm run setup -- --env production`",
    ]);
  });

  it("as a command: without --env it says which to give, and changes nothing", async () => {
    const result = await exec(process.execPath, [join(ROOT, "scripts/deploy.mjs")], { cwd: ROOT }).catch((e) => e);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      "error: --env staging|production is required: the top level of wrangler.toml is the local development setup",
    );
    const setupResult = await exec(process.execPath, [join(ROOT, "scripts/setup.mjs"), "--env", "dev"], { cwd: ROOT }).catch((e) => e);
    expect(setupResult.stderr.trim()).toBe(
      'error: --env staging|production is required (not "dev"): the top level of wrangler.toml is the local development setup',
    );
  });
});
