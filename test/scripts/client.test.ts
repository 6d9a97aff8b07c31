/**
 * The typed client as another project meets it: a separate TypeScript project with its own
 * tsconfig and no Workers types installs `latchkey-client` (the client/ folder) as the README says,
 * which brings openapi-fetch; it loads, type-checks a correct program, and gets compile errors for
 * misspelt fields.
 */
import { execFile } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, "../..");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

async function tsc(dir: string) {
  try {
    await exec(process.execPath, [TSC, "-p", dir, "--pretty", "false"]);
    return { code: 0, out: "" };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: `${e.stdout}${e.stderr}` };
  }
}

const GOOD = `import { createLatchkeyClient, type Schema } from "latchkey-client";

const api = createLatchkeyClient({ baseUrl: "https://auth.example.com" });

export async function signIn(email: string, password: string): Promise<string> {
  const { data, error } = await api.POST("/api/v1/auth/login", { body: { email, password } });
  if (error) throw new Error(\`\${error.code}: \${error.detail}\`);
  return data.access_token;
}

export async function latestStatuses(): Promise<string[]> {
  const { data } = await api.GET("/api/v1/statuses", { params: { query: { limit: 5 } } });
  return (data?.items ?? []).map((status) => status.content);
}

export const describeProblem = (problem: Schema<"Problem">) => \`\${problem.status} \${problem.title}\`;
`;

describe("the typed client in a project without Workers types", () => {
  let dir = "";
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-consumer-"));
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    // The README's command. Without --install-links npm links the folder instead, and installs
    // none of its dependencies: openapi-fetch would then be missing. From npm's cache when it can.
    await exec("npm", ["install", "--install-links", "--prefer-offline", "--no-audit", "--no-fund", join(ROOT, "client")], {
      cwd: dir,
    });
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          lib: ["ES2022", "DOM"],
          types: [],
          strict: true,
          noEmit: true,
          skipLibCheck: false,
        },
        include: ["src"],
      }),
    );
    mkdirSync(join(dir, "src"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("installs as a copy with its dependency, and loads", async () => {
    expect(lstatSync(join(dir, "node_modules/latchkey-client")).isSymbolicLink()).toBe(false);
    expect(lstatSync(join(dir, "node_modules/openapi-fetch")).isDirectory()).toBe(true);
    const { stdout } = await exec(
      process.execPath,
      ["--input-type=module", "-e", 'const m = await import("latchkey-client"); console.log(typeof m.createLatchkeyClient)'],
      { cwd: dir },
    );
    expect(stdout.trim()).toBe("function");
  });

  it("type-checks a program that signs in and reads statuses", async () => {
    writeFileSync(join(dir, "src/app.ts"), GOOD);
    const res = await tsc(dir);
    expect(res.out).toBe("");
    expect(res.code).toBe(0);
  });

  it("fails to compile a misspelt request field and a misspelt response field", async () => {
    writeFileSync(join(dir, "src/app.ts"), GOOD.replace("body: { email, password }", "body: { email, passwrd: password }"));
    const request = await tsc(dir);
    expect(request.code).not.toBe(0);
    expect(request.out).toMatch(/src\/app\.ts\(\d+,\d+\): error TS\d+:.*passwrd/);

    writeFileSync(join(dir, "src/app.ts"), GOOD.replace("data.access_token", "data.acess_token"));
    const response = await tsc(dir);
    expect(response.code).not.toBe(0);
    expect(response.out).toMatch(/error TS2551: Property 'acess_token' does not exist.*Did you mean 'access_token'/);
  });

  it("holds no Workers, Hono or zod types: the generated file is self-contained", () => {
    const types = readFileSync(join(ROOT, "client/openapi.d.ts"), "utf8");
    expect(types).not.toMatch(/\bimport\b|D1Database|KVNamespace|R2Bucket|\bEnv\b|hono|zod/);
    expect(types).toMatch(/export interface paths \{/);
  });
});

describe("npm run client:generate -- --check", () => {
  it("passes: the committed client/openapi.d.ts is what the worker's OpenAPI document generates", async () => {
    const { stdout } = await exec(process.execPath, [join(ROOT, "scripts/client-generate.mjs"), "--check"]);
    expect(stdout).toMatch(/is current/);
  });
});
