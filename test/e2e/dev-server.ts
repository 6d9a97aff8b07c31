/**
 * The real dev server for end-to-end tests: `node scripts/dev.mjs --start` (what `npm run dev`
 * runs: migrations, then `wrangler dev`) on free ports, with its own temporary persisted state
 * and its own secrets file, so a test never touches the developer's .wrangler state, .dev.vars
 * or port 8787. The server runs in its own process group (npx → wrangler → workerd), which
 * `stop()` signals as a whole.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningJwk, randomSecret, writeDevVars } from "../../scripts/lib/keys.mjs";

export interface DevServer {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  port: number;
  /** The `--persist-to` directory, for the operator scripts to act on the same state. */
  state: string;
  /** Everything the server printed so far (wrangler's and the worker's logs). */
  logs(): string;
  stop(): Promise<void>;
}

/** A port nobody listens on right now (the OS picks it; it is free again once closed). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals) {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    // the group is already gone
  }
}

/** Starts the dev server and resolves once GET /health answers 200. `vars` are extra variables for the worker. */
export async function startDevServer({ startupMs = 90_000, vars = {} as Record<string, string> } = {}): Promise<DevServer> {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-e2e-"));
  const state = join(dir, "state");
  const envFile = join(dir, "secrets.env");
  writeDevVars(envFile, {
    JWT_KEYS: JSON.stringify({ keys: [await generateSigningJwk()] }),
    OTP_SECRET: randomSecret(),
    MAIL_API_KEY: "",
    ...vars,
  });
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    [
      "scripts/dev.mjs",
      "--start",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      state,
      "--env-file",
      envFile,
      "--show-interactive-dev-session=false",
    ],
    { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true" } },
  );
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    signalGroup(child, "SIGTERM");
    if (!(await exited(child, 5_000))) {
      signalGroup(child, "SIGKILL");
      await exited(child, 5_000);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + startupMs;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`the dev server exited with code ${child.exitCode}:\n${output}`);
    }
    try {
      const res = await fetch(`${url}/health`);
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the dev server did not answer /health within ${startupMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return { url, port, state, logs: () => output, stop };
}

/** POSTs JSON to the dev server; answers the status and the parsed body (or null). */
export async function postJson(server: DevServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON (wrangler's own 503 is plain text)
  }
  return { status: res.status, json, text };
}

/** The latest one-time code the console mail driver logged for `email` and `purpose`. */
export async function mailedCode(server: DevServer, email: string, purpose: string, timeoutMs = 15_000): Promise<string> {
  const pattern = new RegExp(`to=${email.replace(/[.+]/g, "\\$&")} purpose=${purpose} code=(\\d+)`, "g");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const codes = [...server.logs().matchAll(pattern)].map((match) => match[1] as string);
    if (codes.length > 0) return codes.at(-1) as string;
    if (Date.now() > deadline) throw new Error(`no ${purpose} code was mailed to ${email}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Registers, verifies the email with the mailed code, signs in: a user as a client makes one. */
export async function signedInUser(server: DevServer, email: string, password: string) {
  const registered = await postJson(server, "/api/v1/auth/register", { email, password });
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${registered.text}`);
  const code = await mailedCode(server, email, "verify_email");
  const verified = await postJson(server, "/api/v1/auth/verify-email", { email, code });
  if (verified.status !== 200) throw new Error(`verify-email: ${verified.status} ${verified.text}`);
  const login = await postJson(server, "/api/v1/auth/login", { email, password });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${login.text}`);
  return { accessToken: String(login.json?.access_token), refreshToken: String(login.json?.refresh_token) };
}
