// npm run admin:create -- --email <email> [--username <name>] [--remote] [--persist-to <dir>]
//
// Creates a verified staff account, or promotes an existing account (by email) to staff. The
// password is prompted for without echo, or read from LATCHKEY_ADMIN_PASSWORD for automation.
// An existing account is promoted with its password only if its email is verified; an
// unverified one may have been registered by anyone, so its password is replaced by the
// operator's and its sessions and codes are ended first (never adopt a stranger's password).
// It goes through the worker's own policy and hashing code (scripts/lib/worker-code.mjs), so
// the account signs in exactly like one made through the API. Writes go through wrangler d1, or
// through the running dev server when there is one for the state (see lib/cli.mjs).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliError, d1, parseCli, promptHidden, runCli, sqlString, targetArgs, withPrivateTempDir, wranglerVar } from "./lib/cli.mjs";
import { loadWorkerCode } from "./lib/worker-code.mjs";

const USAGE = `usage: npm run admin:create -- --email <email> [--username <name>] [--remote | --persist-to <dir>]
  The password is prompted for (twice, not echoed) or taken from LATCHKEY_ADMIN_PASSWORD.`;

async function readPassword() {
  const fromEnv = process.env.LATCHKEY_ADMIN_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const noTerminal = "no terminal to prompt for the password: set LATCHKEY_ADMIN_PASSWORD";
  const password = await promptHidden("Password: ", noTerminal);
  const again = await promptHidden("Password (again): ", noTerminal);
  if (password !== again) throw new CliError("the passwords do not match");
  return password;
}

function parseWith(schema, value, name) {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new CliError(`--${name}: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  return parsed.data;
}

/** The password checked against the worker's policy, then hashed as the worker would hash it. */
async function hashChecked(worker, values, password, { email, username }) {
  const problems = worker.checkPasswordPolicy(password, { email, username });
  if (problems.length > 0) throw new CliError(`the password ${problems.join("; ")}`);
  return worker.hashPassword(password, worker.hasherFromEnv(await wranglerVar(values.config, "PASSWORD_HASHER")));
}

/**
 * Runs SQL that carries a password hash. A file rather than --command keeps the hash out of the
 * process list; 0600 and removed after. wrangler runs the file's statements as one D1 batch.
 */
function d1File(values, sql) {
  return withPrivateTempDir("latchkey-admin-", async (dir) => {
    const file = join(dir, "admin.sql");
    writeFileSync(file, `${sql}\n`, { mode: 0o600 });
    await d1(values, { file });
  });
}

/** Makes an account verified, active staff, with its audit entry (what the flags were before). */
function promoteSql(worker, existing, now, extra = {}) {
  const before = {
    is_staff: Boolean(existing.is_staff),
    is_active: Boolean(existing.is_active),
    email_verified: Boolean(existing.email_verified),
  };
  const after = { is_staff: true, is_active: true, email_verified: true, ...extra };
  const id = sqlString(existing.id);
  return [
    `UPDATE users SET is_staff = 1, email_verified = 1, is_active = 1, updated_at = ${now} WHERE id = ${id};`,
    // Now in public view: its statuses join the timeline (statuses.author_public, src/store/statements.ts).
    `UPDATE statuses SET author_public = 1 WHERE user_id = ${id} AND author_public <> 1;`,
    `INSERT INTO admin_audit (id, actor_id, created_at, action, target, old_value, new_value) VALUES (${sqlString(worker.randomId())}, NULL, ${now}, 'user.promote', ${id}, ${sqlString(JSON.stringify(before))}, ${sqlString(JSON.stringify(after))});`,
  ].join("\n");
}

/**
 * Ends everything an account's previous holder was given, as the worker does on a password
 * change: refresh tokens revoked (which also stops their access tokens, whose sign-in must be
 * live), `tokens_valid_after` moved to now (rounded down to the second, like `iat`), and every
 * outstanding one-time code voided and any pending email change dropped, so nothing mailed,
 * requested or started before can still be used.
 */
function reclaimSql(userId, hash, now) {
  const id = sqlString(userId);
  return [
    `UPDATE users SET password_hash = ${sqlString(hash)}, pending_email = NULL, tokens_valid_after = ${Math.floor(now / 1000) * 1000}, updated_at = ${now} WHERE id = ${id};`,
    `UPDATE refresh_tokens SET revoked_at = ${now}, revoked_reason = 'admin' WHERE user_id = ${id} AND revoked_at IS NULL;`,
    `UPDATE otp_codes SET consumed_at = ${now} WHERE user_id = ${id} AND consumed_at IS NULL;`,
  ];
}

await runCli(async () => {
  const { values } = parseCli({ email: { type: "string" }, username: { type: "string" } }, { allowPositionals: false });
  if (values.help) return console.log(USAGE);
  if (!values.email) throw new CliError(`--email is required\n${USAGE}`);
  targetArgs(values); // refuse contradictory flags before any work

  const worker = await loadWorkerCode();
  const email = parseWith(worker.EmailSchema, values.email, "email");
  const username = values.username === undefined ? null : parseWith(worker.UsernameSchema, values.username, "username");
  // A staff account may take a reserved name (a "support" account), not a malformed one.
  const usernameProblem = username === null ? null : worker.usernameProblem(username, { staff: true });
  if (usernameProblem) throw new CliError(`--username: ${usernameProblem}`);
  const where = `email = ${sqlString(email)}${username ? ` OR username = ${sqlString(username)}` : ""}`;
  const found = await d1(values, { command: `SELECT id, email, username, is_staff, is_active, email_verified FROM users WHERE ${where}` });
  const existing = found.find((row) => row.email === email);
  const clash = found.find((row) => row.email !== email);
  const now = Date.now();

  if (existing) {
    if (username && existing.username !== username) {
      throw new CliError(`${email} already exists with username ${existing.username ?? "(none)"}; omit --username to promote it`);
    }
    const account = `id ${existing.id}, email ${existing.email}, username ${existing.username ?? "(none)"}`;
    if (existing.email_verified) {
      if (existing.is_staff && existing.is_active) {
        console.log(`Account ${account} is already an active, verified staff account; nothing changed.`);
        return;
      }
      // Its owner proved the address, so the account and its password are theirs: promote only.
      await d1(values, { command: promoteSql(worker, existing, now) });
      console.log(`Promoted account ${account} to verified, active staff; its password is unchanged.`);
      return;
    }
    // Unverified: anyone can register any address through the API, so nothing about this account
    // (its password, its sign-ins, its pending codes) is known to belong to the operator. Take it
    // over with the operator's password and end everything issued before, in one D1 batch, so a
    // stranger who registered ops@ first never signs in to the admin API.
    const password = await readPassword();
    const hash = await hashChecked(worker, values, password, { email, username: existing.username });
    const at = Date.now(); // after the prompt: the cut-off covers whatever was issued meanwhile
    await d1File(values, [...reclaimSql(existing.id, hash, at), promoteSql(worker, existing, at, { password_replaced: true })].join("\n"));
    console.log(
      `Account ${account} was unverified: its password is replaced by the one given here, its sessions and pending codes are ended, and it is now a verified, active staff account.`,
    );
    return;
  }
  if (clash) throw new CliError(`the username ${username} belongs to another account`);

  const password = await readPassword();
  const hash = await hashChecked(worker, values, password, { email, username });
  const id = worker.randomId();

  // Same rows as a registration: the account and its (empty) profile, plus the audit entry.
  const sql = [
    `INSERT INTO users (id, email, username, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES (${sqlString(id)}, ${sqlString(email)}, ${sqlString(username)}, ${sqlString(hash)}, 1, 1, 1, 0, ${now}, ${now});`,
    `INSERT INTO profiles (user_id, updated_at) VALUES (${sqlString(id)}, ${now});`,
    `INSERT INTO admin_audit (id, actor_id, created_at, action, target, old_value, new_value) VALUES (${sqlString(worker.randomId())}, NULL, ${now}, 'user.create_staff', ${sqlString(id)}, NULL, ${sqlString(JSON.stringify({ email, is_staff: true }))});`,
  ].join("\n");
  await d1File(values, sql);
  console.log(`Created staff account ${email}${username ? ` (${username})` : ""}, id ${id}. Sign in with POST /api/v1/auth/login.`);
});
