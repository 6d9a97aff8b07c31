// npm run admin:create -- --email <email> [--username <name>] [--remote] [--persist-to <dir>]
//
// Creates a verified staff account, or promotes an existing account (by email) to staff. The
// password is prompted for without echo, or read from LATCHKEY_ADMIN_PASSWORD for automation.
// It goes through the worker's own policy and hashing code (scripts/lib/worker-code.mjs), so
// the account signs in exactly like one made through the API. Writes go through wrangler d1.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CliError, d1, parseCli, runCli, sqlString, targetArgs, wranglerVar } from "./lib/cli.mjs";
import { loadWorkerCode } from "./lib/worker-code.mjs";

const USAGE = `usage: npm run admin:create -- --email <email> [--username <name>] [--remote | --persist-to <dir>]
  The password is prompted for (twice, not echoed) or taken from LATCHKEY_ADMIN_PASSWORD.`;

/** Reads one line from the terminal without echoing it. */
function promptHidden(question) {
  const { stdin, stderr } = process;
  if (!stdin.isTTY) throw new CliError("no terminal to prompt for the password: set LATCHKEY_ADMIN_PASSWORD");
  return new Promise((resolve, reject) => {
    let value = "";
    stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (fn) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener("data", onData);
      stderr.write("\n");
      fn();
    };
    function onData(chunk) {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return done(() => resolve(value));
        if (ch === "\u0003") return done(() => reject(new CliError("cancelled")));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    }
    stdin.on("data", onData);
  });
}

async function readPassword() {
  const fromEnv = process.env.LATCHKEY_ADMIN_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const password = await promptHidden("Password: ");
  const again = await promptHidden("Password (again): ");
  if (password !== again) throw new CliError("the passwords do not match");
  return password;
}

function parseWith(schema, value, name) {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new CliError(`--${name}: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  return parsed.data;
}

await runCli(async () => {
  const { values } = parseCli({ email: { type: "string" }, username: { type: "string" } }, { allowPositionals: false });
  if (values.help) return console.log(USAGE);
  if (!values.email) throw new CliError(`--email is required\n${USAGE}`);
  targetArgs(values); // refuse contradictory flags before any work

  const worker = await loadWorkerCode();
  const email = parseWith(worker.EmailSchema, values.email, "email");
  const username = values.username === undefined ? null : parseWith(worker.UsernameSchema, values.username, "username");
  const where = `email = ${sqlString(email)}${username ? ` OR username = ${sqlString(username)}` : ""}`;
  const found = await d1(values, { command: `SELECT id, email, username, is_staff, is_active, email_verified FROM users WHERE ${where}` });
  const existing = found.find((row) => row.email === email);
  const clash = found.find((row) => row.email !== email);
  const now = Date.now();

  if (existing) {
    if (username && existing.username !== username) {
      throw new CliError(`${email} already exists with username ${existing.username ?? "(none)"}; omit --username to promote it`);
    }
    if (existing.is_staff && existing.is_active && existing.email_verified) {
      console.log(`${email} (id ${existing.id}) is already an active, verified staff account; nothing changed.`);
      return;
    }
    // Promote: staff, verified and enabled, so the operator can sign in; the password is kept.
    await d1(values, {
      command: [
        `UPDATE users SET is_staff = 1, email_verified = 1, is_active = 1, updated_at = ${now} WHERE id = ${sqlString(existing.id)};`,
        `INSERT INTO admin_audit (id, actor_id, created_at, action, target, old_value, new_value) VALUES (${sqlString(worker.randomId())}, NULL, ${now}, 'user.promote', ${sqlString(existing.id)}, ${sqlString(JSON.stringify({ is_staff: Boolean(existing.is_staff), is_active: Boolean(existing.is_active), email_verified: Boolean(existing.email_verified) }))}, '{"is_staff":true,"is_active":true,"email_verified":true}');`,
      ].join("\n"),
    });
    console.log(`${email} (id ${existing.id}) is now a verified, active staff account; its password is unchanged.`);
    return;
  }
  if (clash) throw new CliError(`the username ${username} belongs to another account`);

  const password = await readPassword();
  const problems = worker.checkPasswordPolicy(password, { email, username });
  if (problems.length > 0) throw new CliError(`the password ${problems.join("; ")}`);
  const hasher = worker.hasherFromEnv(wranglerVar(values.config, "PASSWORD_HASHER"));
  const hash = await worker.hashPassword(password, hasher);
  const id = worker.randomId();

  // Same rows as a registration: the account and its (empty) profile, plus the audit entry.
  const sql = [
    `INSERT INTO users (id, email, username, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES (${sqlString(id)}, ${sqlString(email)}, ${sqlString(username)}, ${sqlString(hash)}, 1, 1, 1, 0, ${now}, ${now});`,
    `INSERT INTO profiles (user_id, updated_at) VALUES (${sqlString(id)}, ${now});`,
    `INSERT INTO admin_audit (id, actor_id, created_at, action, target, old_value, new_value) VALUES (${sqlString(worker.randomId())}, NULL, ${now}, 'user.create_staff', ${sqlString(id)}, NULL, ${sqlString(JSON.stringify({ email, is_staff: true }))});`,
  ].join("\n");
  // A file rather than --command keeps the hash out of the process list; 0600 and removed after.
  const dir = mkdtempSync(join(tmpdir(), "latchkey-admin-"));
  const file = join(dir, "create-admin.sql");
  try {
    writeFileSync(file, `${sql}\n`, { mode: 0o600 });
    await d1(values, { file });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`Created staff account ${email}${username ? ` (${username})` : ""}, id ${id}. Sign in with POST /api/v1/auth/login.`);
});
