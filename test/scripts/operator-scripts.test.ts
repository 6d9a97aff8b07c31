/**
 * The operator scripts, run as an operator runs them (node, real wrangler) against a temporary
 * local state (`--persist-to`), never the developer's own .wrangler state or .dev.vars. Each
 * wrangler call takes seconds, so each test checks a whole path rather than one assertion, and
 * the tests share one temporary state.
 */
import { execFile } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { generateSigningJwk, readDevVars, SIGNING_DELAY_SECONDS, writeDevVars } from "../../scripts/lib/keys.mjs";
import { migrationBatches } from "../../scripts/lib/migrations.mjs";
import { loadWorkerCode } from "../../scripts/lib/worker-code.mjs";
import { JWKS_MAX_AGE_SECONDS } from "../../src/features/auth/access-tokens";

const WRANGLER = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
const exec = promisify(execFile);
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

async function run(script: string, args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [script, ...args], {
      env: { ...process.env, LATCHKEY_ADMIN_PASSWORD: "", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function wrangler(args: string[]) {
  return (await exec(process.execPath, [WRANGLER, ...args], { env: { ...process.env, CI: "true" } })).stdout;
}

/** A fresh local state with the migrations applied, and a SQL runner over it. */
async function createLocalState() {
  const state = tempDir("latchkey-scripts-");
  await wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", state]);
  const sql = async (command: string): Promise<Record<string, unknown>[]> =>
    JSON.parse(await wrangler(["d1", "execute", "DB", "--local", "--persist-to", state, "--json", "--command", command])).at(-1).results;
  return { state, sql };
}
let shared: ReturnType<typeof createLocalState> | undefined;
/** One temporary state for the file (tests use distinct emails): applying migrations costs a wrangler call. */
const localState = () => {
  shared ??= createLocalState();
  return shared;
};

/** A libSQL database on a temporary file with the migrations applied, as `LIBSQL_URL` names it. */
async function libsqlDatabase() {
  const { createClient } = await import("@libsql/client");
  const url = `file:${join(tempDir("latchkey-libsql-"), "latchkey.db")}`;
  const client = createClient({ url });
  for (const statements of migrationBatches("migrations")) await client.batch(statements, "write");
  return { url, client };
}

describe("operator scripts", () => {
  describe("admin:create", () => {
    it("works against libSQL / Turso with the worker's own settings (LIBSQL_URL, LIBSQL_AUTH_TOKEN)", async () => {
      const { url, client } = await libsqlDatabase();
      const password = "pale-blue-dot-1990";
      const res = await run("scripts/admin-create.mjs", ["--email", "ops@example.com", "--remote"], {
        CLOUDFLARE_ENV: "production",
        LATCHKEY_ADMIN_PASSWORD: password,
        LIBSQL_URL: url,
        LIBSQL_AUTH_TOKEN: "",
      });
      expect(res.code, res.stderr).toBe(0);
      const { rows } = await client.execute("SELECT is_staff, email_verified, password_hash FROM users WHERE email = 'ops@example.com'");
      expect(rows).toHaveLength(1);
      expect(Number(rows[0]?.is_staff)).toBe(1);
      const worker = await loadWorkerCode();
      expect(await worker.verifyPassword(password, String(rows[0]?.password_hash))).toBe(true);
      // Run again: the verified account is found (a read through the same path) and only promoted.
      const again = await run("scripts/admin-create.mjs", ["--email", "ops@example.com", "--remote"], {
        CLOUDFLARE_ENV: "production",
        LIBSQL_URL: url,
      });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(/already an active, verified staff account/);
      client.close();
    });

    it("hashes with the password hasher of the environment CLOUDFLARE_ENV names, and refuses --remote without one", async () => {
      const config = join(tempDir("latchkey-hasher-"), "wrangler.toml");
      writeFileSync(
        config,
        readFileSync("wrangler.toml", "utf8").replace(
          /(\[env\.production\.vars\][^[]*?)PASSWORD_HASHER = "argon2id"/,
          '$1PASSWORD_HASHER = "pbkdf2"',
        ),
      );
      const { url, client } = await libsqlDatabase();
      const settings = { LATCHKEY_ADMIN_PASSWORD: "pale-blue-dot-1990", LIBSQL_URL: url, LIBSQL_AUTH_TOKEN: "" };
      const topLevel = await run("scripts/admin-create.mjs", ["--email", "ops@example.com", "--remote", "--config", config], settings);
      expect(topLevel.code).toBe(1);
      expect(topLevel.stderr).toMatch(/--remote acts on a deployed environment: name it with CLOUDFLARE_ENV=staging\|production/);
      expect((await client.execute("SELECT count(*) AS n FROM users")).rows[0]?.n).toBe(0);

      const res = await run("scripts/admin-create.mjs", ["--email", "ops@example.com", "--remote", "--config", config], {
        ...settings,
        CLOUDFLARE_ENV: "production",
      });
      expect(res.code, res.stderr).toBe(0);
      const { rows } = await client.execute("SELECT password_hash FROM users WHERE email = 'ops@example.com'");
      expect(String(rows[0]?.password_hash)).toMatch(/^\$pbkdf2-sha256\$/);
      client.close();
    });

    it("creates a verified staff account whose hash verifies with the worker's code and argon2id parameters", async () => {
      const { state, sql } = await localState();
      const password = "pale-blue-dot-1990";
      const res = await run("scripts/admin-create.mjs", ["--email", " Ops@Example.COM ", "--username", "Ops", "--persist-to", state], {
        LATCHKEY_ADMIN_PASSWORD: password,
      });
      expect(res.code, res.stderr).toBe(0);
      const [user] = await sql(
        "SELECT u.*, p.user_id AS profile, a.action AS audited FROM users u LEFT JOIN profiles p ON p.user_id = u.id LEFT JOIN admin_audit a ON a.target = u.id WHERE u.email = 'ops@example.com'",
      );
      expect(user).toMatchObject({ username: "ops", is_staff: 1, is_active: 1, email_verified: 1, audited: "user.create_staff" });
      expect(user?.profile).toBe(user?.id);
      expect(res.stdout).not.toContain(password);

      const worker = await loadWorkerCode();
      const { memorySize, iterations, parallelism } = worker.ARGON2_PARAMS;
      const hash = String(user?.password_hash);
      expect(hash.startsWith(`$argon2id$v=19$m=${memorySize},t=${iterations},p=${parallelism}$`)).toBe(true);
      expect(await worker.verifyPassword(password, hash)).toBe(true);
      expect(await worker.verifyPassword("pale-blue-dot-1991", hash)).toBe(false);
    });

    it("refuses a password the worker's policy refuses, and an invalid email, writing nothing", async () => {
      const { state, sql } = await localState();
      const weak = await run("scripts/admin-create.mjs", ["--email", "weak@example.com", "--persist-to", state], {
        LATCHKEY_ADMIN_PASSWORD: "password",
      });
      expect(weak.code).toBe(1);
      expect(weak.stderr).toMatch(/too common/);
      const bad = await run("scripts/admin-create.mjs", ["--email", "not-an-email", "--persist-to", state], {
        LATCHKEY_ADMIN_PASSWORD: "pale-blue-dot-1990",
      });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/--email: must be a valid email/);
      const edge = await run("scripts/admin-create.mjs", ["--email", "edge@example.com", "--username", ".ops", "--persist-to", state], {
        LATCHKEY_ADMIN_PASSWORD: "pale-blue-dot-1990",
      });
      expect(edge.code).toBe(1);
      expect(edge.stderr).toMatch(/--username: must start and end with a letter or digit/);
      const noPassword = await run("scripts/admin-create.mjs", ["--email", "nopw@example.com", "--persist-to", state]);
      expect(noPassword.code).toBe(1);
      expect(noPassword.stderr).toMatch(/LATCHKEY_ADMIN_PASSWORD/);
      expect(await sql("SELECT email FROM users WHERE email IN ('weak@example.com', 'nopw@example.com')")).toEqual([]);
    });

    it("replaces an unverified account's password with the operator's and ends its sessions before promoting it", async () => {
      // Someone registered ops2@ through the API without owning the mailbox: a live sign-in, a
      // pending code, and a password the operator never chose. None of that may reach staff.
      const { state, sql } = await localState();
      const worker = await loadWorkerCode();
      const strangers = "strangers-own-secret-77";
      const hash = await worker.hashPassword(strangers, "argon2id");
      await sql(
        `INSERT INTO users (id, email, username, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES ('stranger1', 'ops2@example.com', 'ops2', '${hash}', 1, 0, 0, 0, 1, 1);
         INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at) VALUES ('rt-stranger1', 'stranger1', 'fam-stranger1', 'h-stranger1', 1, 9999999999999);
         INSERT INTO otp_codes (id, user_id, purpose, code_hash, created_at, expires_at) VALUES ('otp-stranger1', 'stranger1', 'verify_email', 'c-stranger1', 1, 9999999999999);`,
      );
      const operators = "operators-chosen-secret-42";
      const res = await run("scripts/admin-create.mjs", ["--email", "ops2@example.com", "--persist-to", state], {
        LATCHKEY_ADMIN_PASSWORD: operators,
      });
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toMatch(/unverified/);
      expect(res.stdout).not.toContain(operators);

      const [user] = await sql("SELECT * FROM users WHERE id = 'stranger1'");
      expect(user).toMatchObject({ is_staff: 1, is_active: 1, email_verified: 1 });
      const stored = String(user?.password_hash);
      expect(await worker.verifyPassword(strangers, stored)).toBe(false);
      expect(await worker.verifyPassword(operators, stored)).toBe(true);
      expect(Number(user?.tokens_valid_after)).toBeGreaterThan(0);
      expect(await sql("SELECT revoked_reason FROM refresh_tokens WHERE user_id = 'stranger1'")).toEqual([{ revoked_reason: "admin" }]);
      expect(await sql("SELECT consumed_at IS NOT NULL AS voided FROM otp_codes WHERE user_id = 'stranger1'")).toEqual([{ voided: 1 }]);
      expect(await sql("SELECT action FROM admin_audit WHERE target = 'stranger1'")).toEqual([{ action: "user.promote" }]);
    });

    it("refuses to promote an unverified account without a password to replace its own, changing nothing", async () => {
      const { state, sql } = await localState();
      await sql(
        "INSERT INTO users (id, email, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES ('stranger2', 'ops3@example.com', 'strangers-hash', 1, 0, 0, 0, 1, 1)",
      );
      const res = await run("scripts/admin-create.mjs", ["--email", "ops3@example.com", "--persist-to", state]);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/LATCHKEY_ADMIN_PASSWORD/);
      expect(await sql("SELECT is_staff, email_verified, password_hash FROM users WHERE id = 'stranger2'")).toEqual([
        { is_staff: 0, email_verified: 0, password_hash: "strangers-hash" },
      ]);
    });

    it("promotes an existing verified account to staff, keeping its password and naming the account", async () => {
      const { state, sql } = await localState();
      // Disabled until now: its statuses were out of the public timeline, and come back with it.
      await sql(
        `INSERT INTO users (id, email, username, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES ('existing1', 'plain@example.com', 'plain', 'kept-hash', 0, 0, 1, 0, 1, 1);
         INSERT INTO statuses (id, user_id, content, created_at, updated_at, author_public) VALUES ('st-existing1', 'existing1', 'hello', 1, 1, 0);`,
      );
      const res = await run("scripts/admin-create.mjs", ["--email", "plain@example.com", "--persist-to", state]);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toMatch(/id existing1.*plain@example\.com.*username plain/);
      expect(await sql("SELECT is_staff, is_active, email_verified, password_hash FROM users WHERE id = 'existing1'")).toEqual([
        { is_staff: 1, is_active: 1, email_verified: 1, password_hash: "kept-hash" },
      ]);
      expect(await sql("SELECT author_public FROM statuses WHERE user_id = 'existing1'")).toEqual([{ author_public: 1 }]);
    });
  });

  describe("config:get / config:set", () => {
    it("refuses an invalid value or unknown key before touching KV, and writes a valid one that config:get reads back", async () => {
      const { state, sql } = await localState();
      const invalid = await run("scripts/config.mjs", ["set", "access_token_ttl", "4", "--persist-to", state]);
      expect(invalid.code).toBe(1);
      expect(invalid.stderr).toMatch(/access_token_ttl.*must be from 5 to 86400; nothing was written/);
      const unknown = await run("scripts/config.mjs", ["set", "session_ttl", "60", "--persist-to", state]);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/unknown key 'session_ttl'/);

      const valid = await run("scripts/config.mjs", ["set", "access_token_ttl", "120", "--persist-to", state]);
      expect(valid.code, valid.stderr).toBe(0);
      const all = await run("scripts/config.mjs", ["get", "--persist-to", state]);
      expect(all.code, all.stderr).toBe(0);
      expect(all.stdout).toMatch(/^access_token_ttl = 120$/m);
      expect(all.stdout).toMatch(/^otp_ttl = 600 \(default\)$/m);
      expect(await sql("SELECT old_value, new_value FROM admin_audit WHERE target = 'access_token_ttl'")).toEqual([
        { old_value: null, new_value: "120" },
      ]);
    });
  });

  describe("config:set with the database unreachable", () => {
    it("changes nothing: the audit entry is written first, and without it KV is not touched", async () => {
      // A state of its own whose database file is unreadable (its KV is fine): not a database,
      // and no write-ahead log to recover it from.
      const { state } = await createLocalState();
      const databases = join(state, "v3", "d1", "miniflare-D1DatabaseObject");
      for (const file of readdirSync(databases).filter((name) => !name.startsWith("metadata."))) {
        if (file.endsWith(".sqlite")) writeFileSync(join(databases, file), "not a database");
        else rmSync(join(databases, file));
      }
      const set = await run("scripts/config.mjs", ["set", "otp_ttl", "900", "--persist-to", state]);
      expect(set.code).not.toBe(0);
      const get = await run("scripts/config.mjs", ["get", "otp_ttl", "--persist-to", state]);
      expect(get.stdout.trim()).toBe("otp_ttl = 600 (default)");
    });
  });

  describe("with LIBSQL_URL set (the deployed database) but no --remote", () => {
    it("seed, config:set and admin:create refuse, touching neither that database nor the local state", async () => {
      const { url, client } = await libsqlDatabase();
      const { state, sql } = await localState();
      await client.execute(
        "INSERT INTO users (id, email, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES ('prod1', 'prod@example.com', 'h', 1, 0, 1, 0, 1, 1)",
      );
      await client.execute(
        `INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at, family_created_at) VALUES ('prodtoken', 'prod1', 'prodtoken', 'h', 1, ${Date.now() + 86_400_000}, 1)`,
      );
      const production = { LIBSQL_URL: url, LIBSQL_AUTH_TOKEN: "", LATCHKEY_ADMIN_PASSWORD: "pale-blue-dot-1990" };
      for (const [script, args] of [
        ["scripts/seed.mjs", []],
        ["scripts/config.mjs", ["set", "session_max_age", "3600"]],
        ["scripts/admin-create.mjs", ["--email", "target@example.com"]],
      ] as const) {
        const res = await run(script, [...args, "--persist-to", state], production);
        expect(res.code, script).toBe(1);
        expect(res.stderr, script).toMatch(/LIBSQL_URL is set.*--remote/s);
      }
      const { rows: users } = await client.execute("SELECT email FROM users");
      expect(users.map((row) => row.email)).toEqual(["prod@example.com"]);
      const { rows: tokens } = await client.execute("SELECT revoked_reason FROM refresh_tokens");
      expect(tokens.map((row) => row.revoked_reason)).toEqual([null]);
      expect((await client.execute("SELECT count(*) AS n FROM admin_audit")).rows[0]?.n).toBe(0);
      expect(await sql("SELECT email FROM users WHERE email IN ('staff@example.com', 'target@example.com')")).toEqual([]);
      const get = await run("scripts/config.mjs", ["get", "session_max_age", "--persist-to", state]);
      expect(get.stdout.trim()).toMatch(/^session_max_age = \d+ \(default\)$/);
      client.close();
    });
  });

  describe("config:set session_max_age", () => {
    it("ends every sign-in older than the new value, as the admin API does, and no younger one", async () => {
      const { state, sql } = await localState();
      const now = Date.now();
      const token = (id: string, startedMsAgo: number) =>
        `('${id}', 'maxage1', '${id}', NULL, 'hash-${id}', ${now - startedMsAgo}, ${now + 86_400_000}, NULL, NULL, NULL, NULL, ${now - startedMsAgo})`;
      await sql(
        `INSERT INTO users (id, email, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES ('maxage1', 'maxage@example.com', 'h', 1, 0, 1, 0, 1, 1);
         INSERT INTO refresh_tokens (id, user_id, family_id, parent_id, token_hash, created_at, expires_at, revoked_at, revoked_reason, user_agent, ip, family_created_at)
           VALUES ${token("old1", 2 * 3_600_000)}, ${token("young1", 60_000)}`,
      );
      const res = await run("scripts/config.mjs", ["set", "session_max_age", "3600", "--persist-to", state]);
      expect(res.code, res.stderr).toBe(0);
      expect(await sql("SELECT id, revoked_reason FROM refresh_tokens WHERE user_id = 'maxage1' ORDER BY id")).toEqual([
        { id: "old1", revoked_reason: "session_max_age" },
        { id: "young1", revoked_reason: null },
      ]);
    });
  });

  describe("with a dev server recorded for the state that is no longer running", () => {
    it("falls back to wrangler on the files", async () => {
      const { state } = await localState();
      // What scripts/dev.mjs leaves behind when it is killed without a chance to clean up.
      writeFileSync(join(state, "latchkey-dev-server.json"), JSON.stringify({ url: "http://127.0.0.1:9", pid: 2 ** 22 + 1 }));
      try {
        const res = await run("scripts/config.mjs", ["get", "otp_ttl", "--persist-to", state]);
        expect(res.code, res.stderr).toBe(0);
        expect(res.stdout).toMatch(/^otp_ttl = 600 \(default\)$/m);
      } finally {
        rmSync(join(state, "latchkey-dev-server.json"));
      }
    });
  });

  describe("keys:rotate / keys:retire", () => {
    it("appends a signing key, retires an old one, refuses to retire the signer or the last key, never printing private keys", async () => {
      const dir = tempDir("latchkey-keys-");
      const file = join(dir, ".dev.vars");
      const first = await generateSigningJwk();
      writeDevVars(file, { JWT_KEYS: JSON.stringify({ keys: [first] }), OTP_SECRET: "keep-me" });
      const keysIn = () => JSON.parse(readDevVars(file).JWT_KEYS as string).keys as { kid: string; d: string }[];

      const lonely = await run("scripts/keys.mjs", ["retire", first.kid, "--file", file]);
      expect(lonely.code).toBe(1);
      expect(lonely.stderr).toMatch(/only key/);

      const rotated = await run("scripts/keys.mjs", ["rotate", "--file", file]);
      expect(rotated.code, rotated.stderr).toBe(0);
      const keys = keysIn();
      // Kids are typed as arguments (keys:retire <kid>): one starting with "-" would read as an option.
      expect(keys.map((k) => k.kid)).toEqual([first.kid, expect.stringMatching(/^[0-9a-f]{18}$/)]);
      const second = keys[1] as { kid: string; d: string };
      expect(rotated.stdout).toContain(`${second.kid}  (signs)`);
      // A development set is never uploaded: the next step is restarting the dev server.
      expect(rotated.stdout).toContain("restart `npm run dev`");
      expect(rotated.stdout).not.toContain("wrangler secret put");
      for (const key of keys) expect(rotated.stdout).not.toContain(key.d);
      expect(readDevVars(file).OTP_SECRET).toBe("keep-me");
      expect(statSync(file).mode & 0o777).toBe(0o600);

      expect((await run("scripts/keys.mjs", ["retire", second.kid, "--file", file])).stderr).toMatch(/signing key/);
      expect((await run("scripts/keys.mjs", ["retire", "no-such-kid", "--file", file])).code).toBe(1);
      const retired = await run("scripts/keys.mjs", ["retire", first.kid, "--file", file]);
      expect(retired.code, retired.stderr).toBe(0);
      expect(retired.stdout).not.toContain(second.d);
      expect(keysIn().map((k) => k.kid)).toEqual([second.kid]);

      // The development set is never uploaded: `print` (the upload pipe's first half) refuses it,
      // named or by default, so the usage line run without --file cannot ship development keys.
      for (const args of [["print", "--file", file], ["print"]]) {
        const printed = await run("scripts/keys.mjs", args);
        expect([args.join(" "), printed.code, printed.stdout]).toEqual([args.join(" "), 1, ""]);
        expect(printed.stderr).toMatch(/development set/);
      }
    });

    it("starts a new set only when asked (--new, for a named environment), in a folder that does not exist yet (0700, file 0600), and prints its upload step", async () => {
      const home = tempDir("latchkey-home-");
      const file = join(home, ".latchkey", "production.vars");
      // A mistyped --file must not start a new set: uploaded, it would retire every deployed key.
      const typo = await run("scripts/keys.mjs", ["rotate", "--file", file]);
      expect(typo.code).toBe(1);
      expect(typo.stderr).toMatch(/does not exist.*--new --env/s);
      expect(existsSync(file)).toBe(false);
      expect((await run("scripts/keys.mjs", ["rotate", "--new", "--file", file])).stderr).toMatch(/--new needs --env staging\|production/);
      const res = await run("scripts/keys.mjs", ["rotate", "--new", "--env", "production", "--file", file]);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stderr).toBe("");
      expect(statSync(join(home, ".latchkey")).mode & 0o777).toBe(0o700);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const [key] = JSON.parse(readDevVars(file).JWT_KEYS as string).keys as { kid: string; d: string }[];
      expect(res.stdout).toContain(`${key?.kid}  (signs)`);
      // The deployed workers are wrangler environments: the set names its own, whatever the shell exports.
      expect(res.stdout).toContain(`node scripts/keys.mjs print --file ${file} | npx wrangler secret put JWT_KEYS --env production`);
      expect(res.stdout).not.toContain("npm run dev");
      expect(res.stdout).not.toContain(key?.d);
      const again = await run("scripts/keys.mjs", ["rotate", "--file", file], { CLOUDFLARE_ENV: "staging" });
      expect(again.stdout).toContain(`| npx wrangler secret put JWT_KEYS --env production`);
      expect(again.stdout).not.toContain("--env staging");
      expect((await run("scripts/keys.mjs", ["rotate", "--new", "--env", "staging", "--file", file])).stderr).toMatch(/already exists/);
      // Piped (not a terminal), `print` emits the set for `wrangler secret put JWT_KEYS`.
      const printed = await run("scripts/keys.mjs", ["print", "--file", file]);
      expect(printed.code, printed.stderr).toBe(0);
      expect(JSON.parse(printed.stdout).keys).toHaveLength(2);
    });

    it("stamps a key when it is printed for upload so it signs only once a cached JWKS must hold it, and retires nothing before", async () => {
      const dir = tempDir("latchkey-keys-");
      const file = join(dir, "production.vars");
      // A deployed key as `npm run setup` uploads it: no signs_from, it signs already.
      const deployed = await generateSigningJwk();
      writeDevVars(file, { LATCHKEY_ENV: "production", JWT_KEYS: JSON.stringify({ keys: [deployed] }) });
      expect((await run("scripts/keys.mjs", ["rotate", "--file", file])).code).toBe(0);
      type Stamped = { kid: string; signs_from?: number };
      const keysIn = () => JSON.parse(readDevVars(file).JWT_KEYS as string).keys as Stamped[];
      const [, added] = keysIn() as [Stamped, Stamped];
      expect(added.signs_from).toBeUndefined();

      const before = Math.floor(Date.now() / 1000);
      const printed = await run("scripts/keys.mjs", ["print", "--file", file]);
      const after = Math.ceil(Date.now() / 1000);
      expect(printed.code, printed.stderr).toBe(0);
      const uploaded = JSON.parse(printed.stdout).keys as Stamped[];
      // Longer than the JWKS may be cached, with a margin for the upload and clocks.
      expect(SIGNING_DELAY_SECONDS).toBeGreaterThanOrEqual(JWKS_MAX_AGE_SECONDS + 120);
      for (const key of uploaded) {
        expect(key.signs_from).toBeGreaterThanOrEqual(before + 600);
        expect(key.signs_from).toBeLessThanOrEqual(after + 600);
      }
      // Kept in the file, so printing again does not push the time back.
      expect(keysIn()).toEqual(uploaded);
      expect(JSON.parse((await run("scripts/keys.mjs", ["print", "--file", file])).stdout).keys).toEqual(uploaded);
      const signsFrom = new Date((uploaded[1]?.signs_from ?? 0) * 1000).toISOString();
      expect(printed.stderr).toContain(`${added.kid} signs from ${signsFrom}`);

      // The old key still signs until then: retiring it now would cut off the tokens it signs meanwhile.
      const early = await run("scripts/keys.mjs", ["retire", deployed.kid, "--file", file]);
      expect(early.code).toBe(1);
      expect(early.stderr).toMatch(new RegExp(`${added.kid} signs only from .*one access_token_ttl after that`));
      expect(keysIn()).toHaveLength(2);
    });

    it("rewrites only the JWT_KEYS line of a vars file, keeping every other line as it was", async () => {
      const dir = tempDir("latchkey-keys-");
      const file = join(dir, "production.vars");
      const first = await generateSigningJwk();
      const others = ["# my notes", "export EXTRA=1", `MAIL_API_KEY="re_a'b"`, "lower_case=kept"];
      writeFileSync(file, `${others[0]}\nJWT_KEYS='${JSON.stringify({ keys: [first] })}'\n${others.slice(1).join("\n")}\n`, {
        mode: 0o600,
      });
      const res = await run("scripts/keys.mjs", ["rotate", "--file", file]);
      expect(res.code, res.stderr).toBe(0);
      const lines = readFileSync(file, "utf8").split("\n");
      expect(lines.filter((line) => !line.startsWith("JWT_KEYS="))).toEqual([...others, ""]);
      expect(JSON.parse(readDevVars(file).JWT_KEYS as string).keys).toHaveLength(2);
    });

    it("rewrites the set whole or not at all: a crash while writing leaves the old file as it was", async () => {
      const dir = tempDir("latchkey-keys-");
      const file = join(dir, "production.vars");
      const first = await generateSigningJwk();
      writeDevVars(file, { JWT_KEYS: JSON.stringify({ keys: [first, await generateSigningJwk()] }), OTP_SECRET: "keep-me" });
      const before = readFileSync(file);
      // Preloaded into the script: every file write stops halfway and the process dies, as in a
      // crash or a power cut (SIGKILL: no exit handler runs).
      const crash = join(dir, "crash-mid-write.mjs");
      writeFileSync(
        crash,
        `import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
const half = (data) => (typeof data === "string" ? data.slice(0, data.length >> 1) : data.subarray(0, data.length >> 1));
const { writeFileSync, writeSync } = fs;
fs.writeFileSync = (target, data, ...rest) => { writeFileSync(target, half(data), ...rest); process.kill(process.pid, "SIGKILL"); };
fs.writeSync = (fd, data, ...rest) => { writeSync(fd, half(data)); process.kill(process.pid, "SIGKILL"); };
syncBuiltinESMExports();
`,
      );
      for (const args of [["rotate"], ["retire", first.kid]]) {
        const res = await run("scripts/keys.mjs", [...args, "--file", file], { NODE_OPTIONS: `--import=${crash}` });
        expect(res.code, res.stderr).not.toBe(0);
        expect(readFileSync(file)).toEqual(before);
      }
    });

    it("leaves only the finished file (0600) behind, and keeps a symlinked set a symlink", async () => {
      const dir = tempDir("latchkey-keys-");
      const real = join(dir, "vault", "production.vars");
      const link = join(dir, "production.vars");
      expect((await run("scripts/keys.mjs", ["rotate", "--new", "--env", "production", "--file", real])).code).toBe(0);
      symlinkSync(real, link);
      chmodSync(real, 0o600);
      const rotated = await run("scripts/keys.mjs", ["rotate", "--file", link]);
      expect(rotated.code, rotated.stderr).toBe(0);
      const keys = JSON.parse(readDevVars(link).JWT_KEYS as string).keys as { kid: string }[];
      expect(keys).toHaveLength(2);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      const retired = await run("scripts/keys.mjs", ["retire", keys[0]?.kid ?? "", "--file", link]);
      expect(retired.code, retired.stderr).toBe(0);
      expect(JSON.parse(readDevVars(real).JWT_KEYS as string).keys).toEqual([keys[1]]);
      expect(readdirSync(join(dir, "vault"))).toEqual(["production.vars"]);
      expect(statSync(real).mode & 0o777).toBe(0o600);
    });
  });
});
