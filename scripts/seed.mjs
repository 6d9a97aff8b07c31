// npm run seed [-- --persist-to <dir>]
//
// Demo data for the local development database (the state `npm run dev` uses): a staff account
// and a few verified users with profiles, avatars (small PNGs in the local R2 bucket) and
// statuses, all with one known password, printed at the end. Idempotent: an account that exists
// (by email) is left as it is, so running it twice adds nothing. Applies the local migrations
// first, so it works on a fresh clone before `npm run dev`. Never for deployed data: --remote is
// refused. Passwords are hashed by the worker's own code (as admin:create does).
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  assertDatabaseTarget,
  CliError,
  d1,
  parseCli,
  runCli,
  sqlString,
  targetArgs,
  withPrivateTempDir,
  wrangler,
  wranglerVar,
} from "./lib/cli.mjs";
import { badgePng } from "./lib/png.mjs";
import { loadWorkerCode } from "./lib/worker-code.mjs";

const USAGE = "usage: npm run seed [-- --persist-to <dir>]   (local development state only)";

/** The one password of every demo account: public on purpose, never use these accounts anywhere real. */
const DEMO_PASSWORD = "orbit-lantern-meadow-42";
const BUCKET = "latchkey-avatars";

const ACCOUNTS = [
  { email: "staff@example.com", username: "staff", staff: true, profile: { name: "Sam", surname: "Staff", profession: "Operator" } },
  {
    email: "ada@example.com",
    username: "ada",
    profile: { name: "Ada", surname: "Lovelace", age: 36, profession: "Analyst", about_me: "Notes on the Analytical Engine." },
    avatar: [
      [37, 99, 235],
      [255, 255, 255],
    ],
    statuses: ["The engine weaves algebraic patterns.", "Working on note G."],
  },
  {
    email: "grace@example.com",
    username: "grace",
    profile: { name: "Grace", surname: "Hopper", age: 45, profession: "Rear admiral", about_me: "Found a moth in relay 70." },
    avatar: [
      [22, 163, 74],
      [250, 204, 21],
    ],
    statuses: ["It's easier to ask forgiveness than it is to get permission."],
  },
  {
    email: "alan@example.com",
    username: "alan",
    profile: { name: "Alan", surname: "Turing", age: 41, profession: "Mathematician", about_me: "Can machines think?" },
    avatar: [
      [190, 24, 93],
      [240, 240, 240],
    ],
    statuses: ["We can only see a short distance ahead.", "But we can see plenty there that needs to be done."],
  },
];

await runCli(async () => {
  const { values } = parseCli({}, { allowPositionals: false });
  if (values.help) return console.log(USAGE);
  if (values.remote) throw new CliError("seed writes demo accounts with a published password: it is for local state only");
  assertDatabaseTarget(values);
  const target = targetArgs(values);

  // The same local database wrangler dev opens, with its schema.
  await wrangler(["d1", "migrations", "apply", "DB", ...target]);
  const emails = ACCOUNTS.map((a) => sqlString(a.email)).join(", ");
  const usernames = ACCOUNTS.map((a) => sqlString(a.username)).join(", ");
  const existing = await d1(values, {
    command: `SELECT email, username, password_hash FROM users WHERE email IN (${emails}) OR username IN (${usernames})`,
  });
  const takenEmails = new Map(existing.map((row) => [row.email, row.password_hash]));
  const takenUsernames = new Set(existing.map((row) => row.username));

  const worker = await loadWorkerCode();
  const hasher = worker.hasherFromEnv(await wranglerVar(values.config, "PASSWORD_HASHER"));
  const created = [];
  const skipped = [];
  // The accounts the printed password opens: those created now, and those an earlier run made.
  const usable = [];
  const sql = [];
  const now = Date.now();
  await withPrivateTempDir("latchkey-seed-", async (dir) => {
    for (const [index, account] of ACCOUNTS.entries()) {
      if (takenEmails.has(account.email)) {
        // Made by an earlier run, or by someone who registered the address by hand?
        if (await worker.verifyPassword(DEMO_PASSWORD, String(takenEmails.get(account.email)))) usable.push(account);
        else skipped.push(`${account.email} (exists with its own password; left as it is)`);
        continue;
      }
      if (takenUsernames.has(account.username)) {
        skipped.push(`${account.email} (the username ${account.username} belongs to another account)`);
        continue;
      }
      const problems = worker.checkPasswordPolicy(DEMO_PASSWORD, { email: account.email, username: account.username });
      if (problems.length > 0) throw new CliError(`the demo password ${problems.join("; ")}`);
      const id = worker.randomId();
      const at = now - (ACCOUNTS.length - index) * 60_000; // distinct, ordered registration times
      const hash = await worker.hashPassword(DEMO_PASSWORD, hasher);

      let avatar = { key: null, contentType: null, etag: null };
      if (account.avatar) {
        // The worker's own key shape (avatars/{user_id}/{random}.png); R2's ETag of a single-part
        // upload is the body's MD5, which the profile stores for If-None-Match.
        const png = badgePng(64, ...account.avatar);
        const key = `avatars/${id}/${worker.randomId()}.png`;
        const file = join(dir, `${account.username}.png`);
        writeFileSync(file, png);
        await wrangler(["r2", "object", "put", `${BUCKET}/${key}`, "--file", file, "--content-type", "image/png", ...target]);
        avatar = { key, contentType: "image/png", etag: `"${createHash("md5").update(png).digest("hex")}"` };
      }

      const p = account.profile;
      sql.push(
        `INSERT INTO users (id, email, username, password_hash, is_active, is_staff, email_verified, tokens_valid_after, created_at, updated_at) VALUES (${sqlString(id)}, ${sqlString(account.email)}, ${sqlString(account.username)}, ${sqlString(hash)}, 1, ${account.staff ? 1 : 0}, 1, 0, ${at}, ${at});`,
        `INSERT INTO profiles (user_id, name, surname, age, profession, about_me, avatar_key, avatar_content_type, avatar_etag, updated_at) VALUES (${sqlString(id)}, ${sqlString(p.name)}, ${sqlString(p.surname)}, ${p.age ?? "NULL"}, ${sqlString(p.profession)}, ${sqlString(p.about_me ?? null)}, ${sqlString(avatar.key)}, ${sqlString(avatar.contentType)}, ${sqlString(avatar.etag)}, ${at});`,
        ...(account.statuses ?? []).map(
          (content, n) =>
            `INSERT INTO statuses (id, user_id, content, created_at, updated_at) VALUES (${sqlString(worker.randomId())}, ${sqlString(id)}, ${sqlString(content)}, ${at + (n + 1) * 1000}, ${at + (n + 1) * 1000});`,
        ),
      );
      if (account.staff) {
        sql.push(
          `INSERT INTO admin_audit (id, actor_id, created_at, action, target, old_value, new_value) VALUES (${sqlString(worker.randomId())}, NULL, ${now}, 'user.create_staff', ${sqlString(id)}, NULL, ${sqlString(JSON.stringify({ email: account.email, is_staff: true }))});`,
        );
      }
      created.push(account);
      usable.push(account);
    }
    if (sql.length > 0) {
      // A file rather than --command keeps the hashes out of the process list; one execute, one transaction.
      const file = join(dir, "seed.sql");
      writeFileSync(file, `${sql.join("\n")}\n`, { mode: 0o600 });
      await d1(values, { file });
    }
  });

  console.log(created.length > 0 ? `Created ${created.length} demo account(s).` : "Nothing to add: the demo data is already there.");
  for (const line of skipped) console.log(`  skipped ${line}`);
  if (usable.length === 0) return;
  console.log(`\nDemo accounts (verified; password for all: ${DEMO_PASSWORD}):`);
  for (const account of usable)
    console.log(`  ${account.email.padEnd(20)} username ${account.username.padEnd(6)}${account.staff ? " staff" : ""}`);
  const example = usable.find((account) => !account.staff) ?? usable[0];
  console.log(`\nSign in (with npm run dev running):
  curl -s localhost:8787/api/v1/auth/login -H 'content-type: application/json' \\
    -d '{"email":"${example.email}","password":"${DEMO_PASSWORD}"}'`);
  if (usable.some((account) => account.staff))
    console.log("The staff account can use the admin API (/api/v1/admin/...) with its access token.");
});
