/**
 * A client's view of the dev server: `fetch` and a spawned `curl`, both recording which
 * operation they reached so a test can check every documented route was driven; the emailed
 * codes read the two ways a developer reads them (the dev server's log line and /dev/mail); and
 * small fixtures (a real PNG).
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { inject } from "vitest";
import { encodePng } from "../../scripts/lib/png.mjs";

const exec = promisify(execFile);

export const server = () => inject("devServer");
export const API = "/api/v1";

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field
  json: any;
}

/** Every `METHOD path` sent, for the coverage check against /openapi.json. */
export const sent: string[] = [];

function parse(text: string) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/** `fetch` as a browser or Node client sends it: `json` is encoded with its content type, `body` is sent as is. */
export async function call(
  method: string,
  path: string,
  options: { token?: string; json?: unknown; body?: BodyInit; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers["content-type"] ??= "application/json";
  }
  sent.push(`${method} ${path.split("?")[0]}`);
  const res = await fetch(`${server().url}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: parse(text) };
}

/** A spawned `curl -s -i` with the given arguments after the URL; the reply parsed from its output. */
export async function curl(method: string, path: string, args: string[] = []): Promise<Reply> {
  sent.push(`${method} ${path.split("?")[0]}`);
  const { stdout } = await exec("curl", ["-s", "-i", "--max-time", "30", "-X", method, `${server().url}${path}`, ...args], {
    encoding: "buffer",
    maxBuffer: 16 * 1024 * 1024,
  });
  // Skip interim responses (100 Continue) to the final head.
  let raw = stdout.toString("latin1");
  while (/^HTTP\/\S+ 1\d\d/.test(raw)) raw = raw.slice(raw.indexOf("\r\n\r\n") + 4);
  const split = raw.indexOf("\r\n\r\n");
  const [statusLine = "", ...lines] = raw.slice(0, split).split("\r\n");
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const text = Buffer.from(raw.slice(split + 4), "latin1").toString("utf8");
  return { status: Number(statusLine.split(" ")[1]), headers, text, json: parse(text) };
}

/** The account in a GET /me answer, whether it is the top level or `{user: {…}}`. */
// biome-ignore lint/suspicious/noExplicitAny: either shape
export function meUser(json: any): { id: string; email: string; username: string | null; profile?: Record<string, unknown> } {
  return json?.user ?? json;
}

/** The profile in a GET /me answer: beside the account or inside it. */
// biome-ignore lint/suspicious/noExplicitAny: either shape
export function meProfile(json: any): Record<string, unknown> | undefined {
  return json?.profile ?? json?.user?.profile;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** The code of the newest `[mail] to=<email> purpose=<purpose> code=…` line the dev server printed. */
export async function codeFromLog(email: string, purpose: string, timeoutMs = 15_000): Promise<string> {
  const escaped = email.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`^\\[mail\\] to=${escaped} purpose=${purpose} code=(\\d{6})`, "gm");
  for (const deadline = Date.now() + timeoutMs; ; await sleep(200)) {
    const codes = [...readFileSync(server().logFile, "utf8").matchAll(pattern)].map((m) => m[1] as string);
    if (codes.length > 0) return codes.at(-1) as string;
    if (Date.now() > deadline) throw new Error(`no [mail] line for ${email} (${purpose}) in the dev server's output`);
  }
}

/** The code of the newest mail to `email` for `purpose` in /dev/mail that is not in `seen`. */
export async function codeFromInbox(email: string, purpose: string, seen: readonly string[] = [], timeoutMs = 15_000): Promise<string> {
  for (const deadline = Date.now() + timeoutMs; ; await sleep(200)) {
    const res = await fetch(`${server().url}/dev/mail?to=${encodeURIComponent(email)}`, { headers: { accept: "application/json" } });
    const { items } = (await res.json()) as { items: { purpose: string; code: string }[] };
    const mail = items.find((m) => m.purpose === purpose && !seen.includes(m.code));
    if (mail) return mail.code;
    if (Date.now() > deadline) throw new Error(`no new ${purpose} mail for ${email} in /dev/mail`);
  }
}

/** A valid `size`×`size` RGB PNG of one colour. */
export function pngImage(size = 8, rgb: [number, number, number] = [200, 60, 30]): Buffer {
  return encodePng(size, () => rgb);
}

export { ROOT as ROOT_DIR } from "./dev-server";
