/**
 * Starts the real `npm run dev` (scripts/dev.mjs → `wrangler dev`, its proxy included) the way a
 * developer does, on free ports and with its own temporary local state, and stops it again. The
 * child runs in its own process group, so stopping it ends npm, node, wrangler and workerd alike
 * — also when the test run itself dies (an exit hook kills the group).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "../net";

export const ROOT = resolve(import.meta.dirname, "../..");
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 10_000;

/** What the e2e tests are given about the running server (see global-setup.ts). */
export interface DevServerInfo {
  url: string;
  /** The `--persist-to` directory: the operator scripts take it too. */
  stateDir: string;
  /** The dev server's stdout and stderr, as it prints them. */
  logFile: string;
  /** A scratch directory for files the tests write (images, downloads). */
  workDir: string;
}

export interface DevServer extends DevServerInfo {
  output(): string;
  stop(): Promise<void>;
}

/** Signals the child's whole process group (npm, node, wrangler, workerd); false once none is left. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals | 0): boolean {
  if (child.pid === undefined) return false;
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

/**
 * Starts `npm run dev`; `args` go on to `wrangler dev` (e.g. `--var NAME:value`). A port found
 * free can be taken before wrangler binds it (by another process, or by wrangler's own other
 * listeners): that start is retried once on new ports.
 */
export async function startDevServer({ args = [] as string[] } = {}): Promise<DevServer> {
  try {
    return await startOnce(args);
  } catch (error) {
    if (!/EADDRINUSE|address already in use/i.test((error as Error).message)) throw error;
    return startOnce(args);
  }
}

async function startOnce(extra: string[]): Promise<DevServer> {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-e2e-"));
  const stateDir = join(dir, "state");
  const workDir = join(dir, "work");
  const logFile = join(dir, "dev-server.log");
  mkdirSync(workDir);
  const port = await freePort();
  let inspectorPort = await freePort();
  while (inspectorPort === port) inspectorPort = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = ["run", "dev", "--", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort)];
  args.push("--persist-to", stateDir, "--show-interactive-dev-session=false");
  args.push(...extra);
  const child = spawn("npm", args, {
    cwd: ROOT,
    detached: true, // its own process group, killed as a whole
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" },
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    output += text;
    appendFileSync(logFile, text);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  // If the test run ends without teardown (a crash, Ctrl-C), the group must not outlive it.
  const onExit = () => killGroup(child, "SIGKILL");
  const onSignal = (signal: NodeJS.Signals) => {
    killGroup(child, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.once("exit", onExit);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, onSignal);

  async function stop() {
    process.removeListener("exit", onExit);
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.removeListener(signal, onSignal);
    killGroup(child, "SIGTERM");
    // wrangler stops workerd on SIGTERM; whatever is left after the grace period is killed.
    for (const deadline = Date.now() + STOP_TIMEOUT_MS; killGroup(child, 0) && Date.now() < deadline; ) {
      await new Promise((done) => setTimeout(done, 100));
    }
    killGroup(child, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }

  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`npm run dev exited (${child.exitCode ?? child.signalCode})`);
      if (Date.now() > deadline) throw new Error(`npm run dev was not ready within ${READY_TIMEOUT_MS / 1000} s`);
      if (/Ready on http/.test(output)) {
        const health = await fetch(`${url}/health`).catch(() => null);
        if (health?.ok) break;
      }
      await new Promise((done) => setTimeout(done, 250));
    }
  } catch (error) {
    const tail = output.split("\n").slice(-40).join("\n");
    await stop();
    throw new Error(`${(error as Error).message}; its output ended with:\n${tail}`);
  }
  return { url, stateDir, logFile, workDir, output: () => output, stop };
}

/** POSTs JSON to the dev server; answers the status and the parsed body (or null). */
export async function postJson(server: DevServerInfo, path: string, body: unknown, headers: Record<string, string> = {}) {
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
    const codes = [...server.output().matchAll(pattern)].map((match) => match[1] as string);
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
  const verified = await postJson(server, "/api/v1/auth/verify-email", { email, code, password });
  if (verified.status !== 200) throw new Error(`verify-email: ${verified.status} ${verified.text}`);
  const login = await postJson(server, "/api/v1/auth/login", { email, password });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${login.text}`);
  return { accessToken: String(login.json?.access_token), refreshToken: String(login.json?.refresh_token) };
}
