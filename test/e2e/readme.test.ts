/**
 * The README's own commands, run as a reader runs them: the shell blocks of the sections below,
 * in document order, in one bash session (so `ACCESS_TOKEN=$(…)` carries on), against the e2e
 * dev server. Only what a reader would change is substituted: the port, the local state for
 * `npm run config:set` (`--persist-to`), the admin's password; `me.png` is a real small PNG in the
 * working directory. The first admin is made with the README's `npm run admin:create` script,
 * non-interactively. Every command must exit 0 and no answer may be a problem document.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { pngImage, ROOT_DIR, server } from "./client";

const exec = promisify(execFile);
/** The sections whose shell blocks form one session, in this order in the README. */
const SECTIONS = [
  "Try it",
  "Profiles and avatars",
  "Statuses, activity and sessions",
  "The first admin",
  "Changing configuration",
  "Disabling a user",
];
const ADMIN = { email: "ops@example.com", password: "pale-blue-dot-1990" };
/** Commands a reader runs from these blocks; optional-argument forms (`[--remote]`) and the interactive admin:create are not. */
const RUNNABLE = /^(curl |json\(\)|[A-Z_]+=\$\(|npm run config:set )/;

/** The runnable commands of the README's shell blocks, per section, continuation lines joined. */
function readmeCommands(markdown: string): { section: string; command: string }[] {
  const out: { section: string; command: string }[] = [];
  let section = "";
  let inBlock = false;
  let pending = "";
  for (const line of markdown.split("\n")) {
    const heading = /^#{2,3} (.+)$/.exec(line);
    if (!inBlock && heading) section = (heading[1] as string).trim();
    if (/^```/.test(line)) {
      inBlock = !inBlock && /^```sh\s*$/.test(line);
      continue;
    }
    if (!inBlock || !SECTIONS.includes(section)) continue;
    pending += pending ? ` ${line.trim()}` : line;
    if (pending.endsWith("\\")) {
      pending = pending.slice(0, -1).trimEnd();
      continue;
    }
    const command = pending;
    pending = "";
    if (RUNNABLE.test(command) && !/\s\[--/.test(command)) out.push({ section, command });
  }
  return out;
}

function substitute(command: string, port: string, stateDir: string): string {
  let result = command.replaceAll("localhost:8787", `127.0.0.1:${port}`);
  result = result.replace(/^npm run (config:set -- [^#]*?)(\s*#.*)?$/, `npm --prefix '${ROOT_DIR}' run $1 --persist-to '${stateDir}'$2`);
  result = result.replace(`"email":"${ADMIN.email}","password":"…"`, `"email":"${ADMIN.email}","password":"${ADMIN.password}"`);
  return result;
}

describe("the README's commands", () => {
  it("are found in every section they are expected in", () => {
    const commands = readmeCommands(readFileSync(join(ROOT_DIR, "README.md"), "utf8"));
    expect(new Set(commands.map((c) => c.section))).toEqual(new Set(SECTIONS));
    expect(commands.length).toBeGreaterThan(20);
    const all = commands.map((c) => c.command).join("\n");
    for (const fragment of [
      "CODE=$(",
      "ACCESS_TOKEN=$(",
      "ADMIN_TOKEN=$(",
      "-X POST localhost:8787/api/v1/auth/logout-all",
      "config:set -- access_token_ttl 3600",
    ]) {
      expect(all).toContain(fragment);
    }
  });

  it("run top to bottom against the dev server", async () => {
    const { url, stateDir, workDir } = server();
    const port = new URL(url).port;
    writeFileSync(join(workDir, "me.png"), pngImage(32));
    await exec(process.execPath, ["scripts/admin-create.mjs", "--email", ADMIN.email, "--persist-to", stateDir], {
      cwd: ROOT_DIR,
      env: { ...process.env, LATCHKEY_ADMIN_PASSWORD: ADMIN.password },
    });

    const commands = readmeCommands(readFileSync(join(ROOT_DIR, "README.md"), "utf8"));
    const script = commands
      .map(({ command }, i) => `${substitute(command, port, stateDir)}\nprintf '\\n@@%d exit=%d@@\\n' ${i} "$?"`)
      .join("\n");
    const { stdout } = await exec("bash", ["-c", script], { cwd: workDir, env: process.env, maxBuffer: 16 * 1024 * 1024 });

    const outputs = stdout.split(/@@(\d+) exit=(\d+)@@/);
    const results = commands.map(({ section, command }, i) => ({
      section,
      command,
      output: (outputs[i * 3] ?? "").trim(),
      exit: Number(outputs[i * 3 + 2]),
    }));
    for (const r of results) {
      expect(r.exit, `${r.section}: ${r.command}\n${r.output}`).toBe(0);
      expect(r.output, `${r.section}: ${r.command}`).not.toContain('"type":"/problems/');
    }
    const outputOf = (fragment: string) => results.find((r) => r.command.includes(fragment))?.output ?? "";
    expect(outputOf("auth/verify-email")).toContain('"email_verified":true');
    expect(outputOf("api/v1/me -H")).toContain("lovelace@example.com");
    expect(outputOf("auth/refresh")).toContain("refresh_token");
    expect(outputOf("-X PATCH localhost:8787/api/v1/me/profile")).toContain('"profession":"Analyst"');
    expect(outputOf("-F avatar=@me.png")).toContain("avatar_url");
    expect(outputOf("profiles?q=lov")).toContain('"username":"lovelace"');
    expect(outputOf("statuses?user_id=")).toContain('"content":"Hello"');
    expect(outputOf('{"access_token_ttl": 120}')).toContain('"access_token_ttl"');
    expect(outputOf('{"is_active": false}')).toContain('"is_active":false');
    expect(readFileSync(join(workDir, "latchkey-export.json"), "utf8")).toContain("lovelace@example.com");
    expect(existsSync(join(workDir, "me.png"))).toBe(true);
  });
});
