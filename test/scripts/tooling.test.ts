/**
 * The repository's own tooling, as a newcomer meets it: `npm run check` after a build, the
 * offline defaults of every command that runs wrangler, the licence.
 */
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { OFFLINE_DEFAULTS, offlineEnv } from "../../scripts/lib/offline.mjs";

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, "../..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const pkg = JSON.parse(read("package.json")) as {
  license?: string;
  scripts: Record<string, string>;
  scarfSettings?: { enabled?: boolean };
};
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("npm run check after npm run build", () => {
  it("lints the sources but not build output (dist/, coverage/), whatever was built there", async () => {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-biome-"));
    dirs.push(dir);
    // The repo's Biome config and ignore file over a tree holding one clean source file and
    // badly formatted build output.
    writeFileSync(join(dir, "biome.json"), read("biome.json").replace(/^\s*"\$schema".*\n/m, ""));
    cpSync(join(ROOT, ".gitignore"), join(dir, ".gitignore"));
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "src/ok.ts"), "export const ok = 1;\n");
    for (const out of ["dist", "coverage"]) {
      mkdirSync(join(dir, out));
      writeFileSync(join(dir, out, "index.js"), "var  x=1;let y =  x\n");
    }
    const biome = join(ROOT, "node_modules/.bin/biome");
    const { stdout } = await exec(biome, ["check", "."], { cwd: dir });
    expect(stdout).toMatch(/Checked 2 files/); // biome.json and src/ok.ts

    // …and still fails on a badly formatted source file.
    writeFileSync(join(dir, "src/bad.ts"), "export const  bad=1\n");
    await expect(exec(biome, ["check", "."], { cwd: dir })).rejects.toMatchObject({ code: 1 });
  });
});

describe("offline by default", () => {
  it("runs every npm script that starts wrangler through the offline wrapper", () => {
    const direct = Object.entries(pkg.scripts).filter(([, command]) => /(^|[\s&|;])(npx\s+)?wrangler\s/.test(command));
    expect(direct).toEqual([]);
    expect(pkg.scripts.build).toMatch(/node scripts\/wrangler\.mjs /);
    // types runs wrangler itself, with the offline environment (the test below reads it).
    expect(pkg.scripts.types).toBe("node scripts/types.mjs");
    // setup and deploy run every wrangler command through scripts/wrangler.mjs (lib/deploy-env.mjs).
    expect(pkg.scripts.setup).toBe("node scripts/setup.mjs");
    expect(pkg.scripts.deploy).toBe("node scripts/deploy.mjs");
    expect(read("scripts/lib/deploy-env.mjs")).toMatch(/join\(dirname\(fileURLToPath\(import\.meta\.url\)\), "\.\.", "wrangler\.mjs"\)/);
  });

  it("gives every script that spawns wrangler or miniflare the offline environment", () => {
    const files = [
      ...readdirSync(join(ROOT, "scripts")).map((f) => `scripts/${f}`),
      ...readdirSync(join(ROOT, "scripts/lib")).map((f) => `scripts/lib/${f}`),
      "bench/run.mjs",
      "bench/ab.mjs",
      "bench/lib/seed.mjs",
      "bench/lib/workerd.mjs",
    ].filter((f) => f.endsWith(".mjs") && f !== "scripts/lib/offline.mjs");
    const runsWrangler = files.filter((f) => /wrangler\/bin\/wrangler\.js|"wrangler"|new Miniflare/.test(read(f)));
    expect(runsWrangler.length).toBeGreaterThanOrEqual(4);
    for (const file of runsWrangler) {
      const text = read(file);
      // spawnWrangler (scripts/lib/cli.mjs, itself checked here) passes offlineEnv() to every run.
      const offline =
        /offlineEnv\(|spawnWrangler\(/.test(text) ||
        (/WRANGLER_SEND_METRICS: "false"/.test(text) && /CLOUDFLARE_CF_FETCH_ENABLED: "false"/.test(text));
      expect(offline, file).toBe(true);
    }
  });

  it("turns off wrangler's metrics in its config, and miniflare's Request.cf download, unless the operator opts in", () => {
    for (const config of ["wrangler.toml", "bench/floor/wrangler.toml"]) expect(read(config), config).toMatch(/^send_metrics = false$/m);
    expect(OFFLINE_DEFAULTS).toEqual({
      WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_HIDE_BANNER: "true",
    });
    expect(offlineEnv({ PATH: "/bin" })).toEqual({ PATH: "/bin", ...OFFLINE_DEFAULTS });
    expect(offlineEnv({ WRANGLER_SEND_METRICS: "true" }).WRANGLER_SEND_METRICS).toBe("true");
  });

  it("turns off swagger-ui-dist's install analytics (Scarf)", () => {
    expect(pkg.scarfSettings).toEqual({ enabled: false });
  });
});

describe("licence", () => {
  it("is MIT, in LICENSE and in package.json", () => {
    expect(pkg.license).toBe("MIT");
    const text = read("LICENSE");
    expect(text).toMatch(/^MIT License/);
    expect(text).toContain("Copyright (c) 2026 Latchkey contributors");
  });
});

describe("secrets the operator scripts handle", () => {
  const scratch = () => {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-secrets-"));
    dirs.push(dir);
    return dir;
  };

  it("never reach wrangler: its processes get no LATCHKEY_* variable (the admin password, the mail API key)", async () => {
    const dir = scratch();
    const fake = join(dir, "print-env.mjs");
    writeFileSync(fake, "process.stdout.write(JSON.stringify(Object.keys(process.env)));\n");
    const script = join(dir, "spawn.mjs");
    writeFileSync(
      script,
      `import { spawnWrangler } from ${JSON.stringify(join(ROOT, "scripts/lib/cli.mjs"))};\nprocess.stdout.write(await spawnWrangler(${JSON.stringify(fake)}, []));\n`,
    );
    const { stdout } = await exec(process.execPath, [script], {
      env: { ...process.env, LATCHKEY_ADMIN_PASSWORD: "pale-blue-dot-1990", LATCHKEY_MAIL_API_KEY: "re_secret" },
    });
    const names = JSON.parse(stdout) as string[];
    expect(names.filter((name) => name.startsWith("LATCHKEY_"))).toEqual([]);
    expect(names).toContain("WRANGLER_SEND_METRICS");
  });

  it("are written only into a private temporary folder that is gone even after Ctrl-C", async () => {
    const dir = scratch();
    const script = join(dir, "interrupted.mjs");
    writeFileSync(
      script,
      `import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { withPrivateTempDir } from ${JSON.stringify(join(ROOT, "scripts/lib/cli.mjs"))};
await withPrivateTempDir("latchkey-test-", async (temp) => {
  writeFileSync(join(temp, "admin.sql"), "-- a password hash", { mode: 0o600 });
  process.stdout.write(JSON.stringify({ temp, mode: statSync(temp).mode & 0o777 }));
  process.kill(process.pid, "SIGINT"); // the operator presses Ctrl-C while wrangler runs
  await new Promise((resolve) => setTimeout(resolve, 5000));
});
`,
    );
    const result = await exec(process.execPath, [script]).catch((error) => error);
    expect(result.code).toBe(130);
    const { temp, mode } = JSON.parse(result.stdout) as { temp: string; mode: number };
    expect(mode).toBe(0o700);
    expect(existsSync(temp)).toBe(false);
  });

  it("are never committed: git ignores wrangler's and the scripts' secret files", async () => {
    const candidates = [
      ".dev.vars",
      ".dev.vars.production",
      ".dev.vars.staging",
      ".env",
      ".env.production",
      "production.vars",
      "keys/staging.vars",
    ];
    const { stdout } = await exec("git", ["check-ignore", "--no-index", ...candidates], { cwd: ROOT });
    expect(stdout.trim().split("\n")).toEqual(candidates);
  });
});

describe("npm run bench:ab", () => {
  it("names a directory that is not a Latchkey checkout, instead of failing deep in a build", async () => {
    const result = await exec(process.execPath, [join(ROOT, "bench/ab.mjs"), "/nonexistent-variant", ROOT]).catch((error) => error);
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe("not a Latchkey checkout (no wrangler.toml): /nonexistent-variant");
  });
});
