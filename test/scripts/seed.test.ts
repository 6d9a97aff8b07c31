/**
 * `npm run seed` against a temporary local state (never the developer's own): demo accounts
 * that sign in through the real dev server with the printed password, avatars that are real
 * PNGs in local R2 and served by the worker, and a second run that adds nothing.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { generateSigningJwk, randomSecret, writeDevVars } from "../../scripts/lib/keys.mjs";
import { offlineEnv } from "../../scripts/lib/offline.mjs";
import { ROOT, startDevServer, WRANGLER } from "./dev-server";

const exec = promisify(execFile);
const state = mkdtempSync(join(tmpdir(), "latchkey-seed-"));
afterAll(() => rmSync(state, { recursive: true, force: true }));

const seed = () => exec(process.execPath, [join(ROOT, "scripts/seed.mjs"), "--persist-to", state], { cwd: ROOT });
const wrangler = async (args: string[], encoding: BufferEncoding | "buffer" = "utf8") =>
  (await exec(process.execPath, [WRANGLER, ...args], { cwd: ROOT, env: offlineEnv(), encoding, maxBuffer: 1 << 24 } as never))
    .stdout as unknown as string | Buffer;
const sql = async (command: string): Promise<Record<string, unknown>[]> =>
  JSON.parse(String(await wrangler(["d1", "execute", "DB", "--local", "--persist-to", state, "--json", "--command", command]))).at(-1)
    .results;

const EMAILS = ["staff@example.com", "ada@example.com", "grace@example.com", "alan@example.com"];
const inList = EMAILS.map((e) => `'${e}'`).join(",");

describe("npm run seed", () => {
  let password = "";

  it("creates a staff account and verified users with profiles, avatars and statuses, and prints how to sign in", async () => {
    const { stdout } = await seed();
    expect(stdout).toMatch(/Created 4 demo account\(s\)/);
    password = /password for all: (\S+)\)/.exec(stdout)?.[1] ?? "";
    expect(password.length).toBeGreaterThanOrEqual(8);
    for (const email of EMAILS) expect(stdout).toContain(email);
    expect(stdout).toMatch(/staff@example\.com\s+username staff\s+staff/);
    expect(stdout).toContain("/api/v1/auth/login");

    const users = await sql(
      `SELECT u.email, u.is_staff, u.email_verified, u.is_active, p.name, p.avatar_key, p.avatar_etag, (SELECT count(*) FROM statuses s WHERE s.user_id = u.id) AS statuses FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.email IN (${inList}) ORDER BY u.created_at`,
    );
    expect(users.map((u) => [u.email, u.is_staff, u.email_verified, u.is_active])).toEqual(
      EMAILS.map((e, i) => [e, i === 0 ? 1 : 0, 1, 1]),
    );
    expect(users.every((u) => typeof u.name === "string")).toBe(true);
    const withAvatars = users.filter((u) => u.avatar_key);
    expect(withAvatars).toHaveLength(3);
    expect(users.slice(1).every((u) => Number(u.statuses) > 0)).toBe(true);

    // Each avatar is a real PNG in local R2 whose MD5 is the ETag the profile stores.
    for (const user of withAvatars) {
      const dir = mkdtempSync(join(tmpdir(), "latchkey-avatar-"));
      const file = join(dir, "avatar.png");
      try {
        await wrangler(["r2", "object", "get", `latchkey-avatars/${user.avatar_key}`, "--file", file, "--local", "--persist-to", state]);
        const png = readFileSync(file);
        expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
        expect(user.avatar_etag).toBe(`"${createHash("md5").update(png).digest("hex")}"`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it("adds nothing when run again", async () => {
    const before = await sql("SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM statuses) AS statuses");
    const { stdout } = await seed();
    expect(stdout).toMatch(/Nothing to add/);
    expect(await sql("SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM statuses) AS statuses")).toEqual(before);
    expect(await sql(`SELECT email FROM users WHERE email IN (${inList})`)).toHaveLength(4);
  });

  it("refuses --remote", async () => {
    await expect(exec(process.execPath, [join(ROOT, "scripts/seed.mjs"), "--remote"], { cwd: ROOT })).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/local state only/),
    });
  });

  it("gives accounts that sign in with the printed password, and avatars the worker serves", async () => {
    // Secrets for this dev server only, in a file of its own (the developer's .dev.vars is not read).
    const secrets = join(state, "secrets.env");
    writeDevVars(secrets, { JWT_KEYS: JSON.stringify({ keys: [await generateSigningJwk()] }), OTP_SECRET: randomSecret() });
    const dev = await startDevServer(state, ["--env-file", secrets]);
    try {
      const login = await fetch(`${dev.base}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: "ada@example.com", password }),
      });
      expect(login.status, dev.output()).toBe(200);
      const { access_token } = (await login.json()) as { access_token: string };
      const profile = (await (
        await fetch(`${dev.base}/api/v1/me/profile`, { headers: { authorization: `Bearer ${access_token}` } })
      ).json()) as {
        profile: { avatar_url: string; name: string };
      };
      expect(profile.profile.name).toBe("Ada");
      const avatar = await fetch(`${dev.base}${profile.profile.avatar_url}`);
      expect(avatar.status).toBe(200);
      expect(avatar.headers.get("content-type")).toBe("image/png");

      const staff = await fetch(`${dev.base}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: "staff@example.com", password }),
      });
      const staffToken = ((await staff.json()) as { access_token: string }).access_token;
      const admin = await fetch(`${dev.base}/api/v1/admin/users?q=grace`, { headers: { authorization: `Bearer ${staffToken}` } });
      expect(admin.status).toBe(200);
    } finally {
      await dev.stop();
    }
  });

  it("lists under the shared password only the accounts that have it: one made by hand with the same address is left out", async () => {
    // As if someone had registered ada@example.com before seeding, with a password of their own.
    const [ada] = await sql("SELECT password_hash FROM users WHERE email = 'ada@example.com'");
    await sql("UPDATE users SET password_hash = 'not-the-demo-hash' WHERE email = 'ada@example.com'");
    try {
      const { stdout } = await seed();
      expect(stdout).toMatch(/skipped ada@example\.com \(exists with its own password; left as it is\)/);
      const listed = stdout.slice(stdout.indexOf("password for all"), stdout.indexOf("Sign in"));
      expect(listed).not.toContain("ada@example.com");
      expect(listed).toContain("grace@example.com");
      // The sign-in example names an account the password opens.
      expect(stdout).toContain('"email":"grace@example.com"');
    } finally {
      await sql(`UPDATE users SET password_hash = '${String(ada?.password_hash)}' WHERE email = 'ada@example.com'`);
    }
  });
});
