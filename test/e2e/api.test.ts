/**
 * Every route of the API, driven through the real dev server (`npm run dev`: wrangler's proxy,
 * workerd, local D1/KV/R2 and the mail queue) the way clients drive it: `fetch` and a spawned
 * `curl`, with and without bodies. The steps share one story (accounts, tokens, ids), so they run
 * in order; the last one checks against /openapi.json that every documented operation was sent.
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { uniqueId } from "../ids";
import { API, call, codeFromInbox, codeFromLog, curl, meProfile, meUser, pngImage, ROOT_DIR, sent, server } from "./client";

const exec = promisify(execFile);
const JSON_TYPE = ["-H", "content-type: application/json"];
const bearer = (token: string) => ["-H", `authorization: Bearer ${token}`];
const PASSWORDS = { alice: "analytical-engine-1843", bob: "difference-engine-1822", ops: "pale-blue-dot-1990" };
// Also the passwords Bob and Alice change to below.
const run = uniqueId(...Object.values(PASSWORDS), "difference-engine-1833", "analytical-engine-1852");
const alice = { email: `alice-${run}@example.com`, username: `alice-${run}`, password: PASSWORDS.alice };
const bob = { email: `bob-${run}@example.com`, username: `bob-${run}`, password: PASSWORDS.bob };
const ops = { email: `ops-${run}@example.com`, password: PASSWORDS.ops };

/** State the steps hand on. */
const s = {
  aliceId: "",
  access: "",
  refresh: "",
  bobId: "",
  bobAccess: "",
  adminAccess: "",
  statusId: "",
  avatarUrl: "",
};

async function login(email: string, password: string) {
  const res = await call("POST", `${API}/auth/login`, { json: { email, password } });
  expect(res.status, res.text).toBe(200);
  return res.json as { access_token: string; refresh_token: string };
}

describe.sequential("the API through the real dev server", () => {
  it("serves health, the JWKS, the OpenAPI document and the docs page", async () => {
    const health = await curl("GET", "/health");
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: "ok" });
    expect(health.headers.get("x-request-id")).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    const ready = await call("GET", "/health/ready");
    expect(ready.json).toEqual({ status: "ready", checks: { d1: "ok", kv: "ok", r2: "ok" } });
    const jwks = await call("GET", "/.well-known/jwks.json");
    expect(jwks.json.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA" });
    const doc = await call("GET", "/openapi.json");
    expect(doc.json.openapi).toBe("3.1.0");
    const docs = await curl("GET", "/docs");
    expect(docs.status).toBe(200);
    expect(docs.headers.get("content-type")).toMatch(/^text\/html/);
  });

  it("serves the static files (stylesheet, scripts, favicon, Swagger UI) with the hardening headers every worker answer has", async () => {
    // Workers Static Assets answers these before the worker runs; public/_headers gives them the
    // worker's hardening headers (setSecurityHeaders), compared here with a worker answer's values.
    const worker = await call("GET", "/health");
    const hardening = [
      "x-content-type-options",
      "strict-transport-security",
      "referrer-policy",
      "x-frame-options",
      "content-security-policy",
    ];
    for (const path of [
      "/favicon.svg",
      "/web/site.css",
      "/web/avatar-preview.js",
      "/docs-assets/init.js",
      "/docs-assets/vendor/swagger-ui-bundle.js",
    ]) {
      const res = await call("GET", path);
      expect(res.status, path).toBe(200);
      for (const header of hardening) expect(res.headers.get(header), `${path} ${header}`).toBe(worker.headers.get(header));
    }
    expect((await call("GET", "/_headers")).status).toBe(404);
  });

  it("registers, mails the activation code to the log and the inbox, verifies and signs in", async () => {
    const reg = await call("POST", `${API}/auth/register`, { json: alice });
    expect(reg.status, reg.text).toBe(201);
    s.aliceId = reg.json.user.id;
    const code = await codeFromLog(alice.email, "verify_email");
    expect(await codeFromInbox(alice.email, "verify_email")).toBe(code);
    // Before verification, password login is refused.
    const early = await curl("POST", `${API}/auth/login`, [
      ...JSON_TYPE,
      "-d",
      JSON.stringify({ email: alice.email, password: alice.password }),
    ]);
    expect(early.status).toBe(403);
    const verified = await curl("POST", `${API}/auth/verify-email`, [
      ...JSON_TYPE,
      "-d",
      JSON.stringify({ email: alice.email, code, password: alice.password }),
    ]);
    expect(verified.status, verified.text).toBe(200);
    expect(verified.json.user.email_verified).toBe(true);
    const tokens = await curl("POST", `${API}/auth/login`, [
      ...JSON_TYPE,
      "-d",
      JSON.stringify({ email: alice.email, password: alice.password }),
    ]);
    expect(tokens.status, tokens.text).toBe(200);
    expect(tokens.headers.get("cache-control")).toBe("no-store");
    s.access = tokens.json.access_token;
    s.refresh = tokens.json.refresh_token;
    const me = await call("GET", `${API}/me`, { token: s.access });
    expect(meUser(me.json)).toMatchObject({ id: s.aliceId, email: alice.email, username: alice.username });
  });

  it("rotates the refresh token, refuses the old one and logs out", async () => {
    const refreshed = await call("POST", `${API}/auth/refresh`, { json: { refresh_token: s.refresh } });
    expect(refreshed.status, refreshed.text).toBe(200);
    expect((await call("POST", `${API}/auth/refresh`, { json: { refresh_token: s.refresh } })).status).toBe(401);
    const out = await curl("POST", `${API}/auth/logout`, [
      ...JSON_TYPE,
      "-d",
      JSON.stringify({ refresh_token: refreshed.json.refresh_token }),
    ]);
    expect(out.status).toBe(204);
    const again = await login(alice.email, alice.password);
    s.access = again.access_token;
    s.refresh = again.refresh_token;
  });

  it("signs in with an emailed code", async () => {
    const asked = await call("POST", `${API}/auth/otp`, { json: { email: alice.email, purpose: "login" } });
    expect(asked.status).toBe(202);
    const code = await codeFromInbox(alice.email, "login");
    const res = await curl("POST", `${API}/auth/login/otp`, [...JSON_TYPE, "-d", JSON.stringify({ email: alice.email, code })]);
    expect(res.status, res.text).toBe(200);
    expect(res.json.access_token).toEqual(expect.any(String));
  });

  it("resets a forgotten password with an emailed code", async () => {
    const reg = await call("POST", `${API}/auth/register`, { json: bob });
    expect(reg.status, reg.text).toBe(201);
    s.bobId = reg.json.user.id;
    const verifyCode = await codeFromInbox(bob.email, "verify_email");
    expect(
      (await call("POST", `${API}/auth/verify-email`, { json: { email: bob.email, code: verifyCode, password: bob.password } })).status,
    ).toBe(200);
    expect((await call("POST", `${API}/auth/otp`, { json: { email: bob.email, purpose: "reset_password" } })).status).toBe(202);
    const code = await codeFromInbox(bob.email, "reset_password");
    bob.password = "difference-engine-1833";
    const reset = await call("POST", `${API}/auth/password/reset`, { json: { email: bob.email, code, new_password: bob.password } });
    expect(reset.status, reset.text).toBe(204);
    s.bobAccess = (await login(bob.email, bob.password)).access_token;
  });

  it("changes the account and the password", async () => {
    const put = await call("PUT", `${API}/me`, { token: s.access, json: { email: alice.email, username: `${alice.username}-2` } });
    expect(put.status, put.text).toBe(200);
    const patch = await curl("PATCH", `${API}/me`, [...bearer(s.access), ...JSON_TYPE, "-d", JSON.stringify({ username: alice.username })]);
    expect(patch.status, patch.text).toBe(200);
    expect(patch.json.user.username).toBe(alice.username);
    // An email change stays pending until the code mailed to the new address comes back.
    const newEmail = alice.email.replace("@", "+moved@");
    const pending = await call("PATCH", `${API}/me`, { token: s.access, json: { email: newEmail, current_password: alice.password } });
    expect(pending.status, pending.text).toBe(200);
    expect(pending.json.user).toMatchObject({ email: alice.email, pending_email: newEmail });
    const changeCode = await codeFromInbox(newEmail, "change_email");
    const confirmed = await curl("POST", `${API}/me/email/verify`, [
      ...bearer(s.access),
      ...JSON_TYPE,
      "-d",
      JSON.stringify({ code: changeCode }),
    ]);
    expect(confirmed.status, confirmed.text).toBe(200);
    expect(confirmed.json.user).toMatchObject({ email: newEmail, pending_email: null, email_verified: true });
    alice.email = newEmail;
    const newPassword = "analytical-engine-1852";
    const changed = await call("POST", `${API}/me/password`, {
      token: s.access,
      json: { current_password: alice.password, new_password: newPassword },
    });
    expect(changed.status, changed.text).toBe(204);
    alice.password = newPassword;
    // Every earlier access token is cut off, with the challenge that tells a client to sign in again.
    const cutOff = await call("GET", `${API}/me`, { token: s.access });
    expect(cutOff.status).toBe(401);
    expect(cutOff.headers.get("www-authenticate")).toMatch(/^Bearer realm="latchkey", error="invalid_token"/);
    const tokens = await login(alice.email, alice.password);
    s.access = tokens.access_token;
    s.refresh = tokens.refresh_token;
  });

  it("edits the profile and shows it in the directory", async () => {
    const put = await call("PUT", `${API}/me/profile`, { token: s.access, json: { name: "Ada", surname: "Lovelace", age: 36 } });
    expect(put.status, put.text).toBe(200);
    const patch = await curl("PATCH", `${API}/me/profile`, [...bearer(s.access), ...JSON_TYPE, "-d", '{"profession":"Analyst"}']);
    expect(patch.status, patch.text).toBe(200);
    const get = await call("GET", `${API}/me/profile`, { token: s.access });
    expect(get.json.profile).toMatchObject({ name: "Ada", surname: "Lovelace", age: 36, profession: "Analyst" });
    expect(meProfile((await call("GET", `${API}/me`, { token: s.access })).json)).toMatchObject({ name: "Ada" });
    const directory = await curl("GET", `${API}/profiles?q=${alice.username}&limit=20`);
    expect(directory.json.items.map((p: { user_id: string }) => p.user_id)).toContain(s.aliceId);
    const one = await call("GET", `${API}/profiles/${s.aliceId}`);
    expect(one.json.profile ?? one.json).toMatchObject({ user_id: s.aliceId, name: "Ada" });
  });

  it("uploads an avatar as raw bytes and as multipart, serves it, and removes it with a body-less DELETE", async () => {
    const png = pngImage(8);
    const file = join(server().workDir, "avatar.png");
    writeFileSync(file, png);
    const raw = await curl("PUT", `${API}/me/avatar`, [...bearer(s.access), "-H", "content-type: image/png", "--data-binary", `@${file}`]);
    expect(raw.status, raw.text).toBe(200);
    const multipart = await curl("PUT", `${API}/me/avatar`, [...bearer(s.access), "-F", `avatar=@${file}`]);
    expect(multipart.status, multipart.text).toBe(200);
    const form = new FormData();
    form.append("avatar", new Blob([new Uint8Array(pngImage(16))], { type: "image/png" }), "me.png");
    const fetched = await call("PUT", `${API}/me/avatar`, { token: s.access, body: form });
    expect(fetched.status, fetched.text).toBe(200);
    s.avatarUrl = fetched.json.avatar_url;
    const image = await fetch(`${server().url}${s.avatarUrl}`);
    sent.push(`GET ${s.avatarUrl.split("?")[0]}`);
    expect(image.status).toBe(200);
    expect(image.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await image.arrayBuffer()).equals(pngImage(16))).toBe(true);
    const removed = await curl("DELETE", `${API}/me/avatar`, bearer(s.access));
    expect(removed.status, removed.text).toBe(204);
  });

  it("posts, reads, edits and deletes statuses; DELETE needs no body or content type", async () => {
    const created = await curl("POST", `${API}/statuses`, [...bearer(s.access), ...JSON_TYPE, "-d", '{"content":"Hello"}']);
    expect(created.status, created.text).toBe(201);
    s.statusId = created.json.status.id;
    const list = await call("GET", `${API}/statuses?user_id=${s.aliceId}&limit=20`);
    expect(list.json.items[0].id).toBe(s.statusId);
    expect((await curl("GET", `${API}/statuses/${s.statusId}`)).json.status.content).toBe("Hello");
    const put = await call("PUT", `${API}/statuses/${s.statusId}`, { token: s.access, json: { content: "Hello again" } });
    expect(put.status, put.text).toBe(200);
    const patch = await curl("PATCH", `${API}/statuses/${s.statusId}`, [...bearer(s.access), ...JSON_TYPE, "-d", '{"content":"Hi"}']);
    expect(patch.json.status.content).toBe("Hi");
    // fetch's DELETE and curl's -X DELETE, neither with a body.
    const viaFetch = await call("DELETE", `${API}/statuses/${s.statusId}`, { token: s.access });
    expect(viaFetch.status, viaFetch.text).toBe(204);
    const second = await call("POST", `${API}/statuses`, { token: s.access, json: { content: "Another" } });
    const viaCurl = await curl("DELETE", `${API}/statuses/${second.json.status.id}`, bearer(s.access));
    expect(viaCurl.status, viaCurl.text).toBe(204);
  });

  it("lists activity and sessions, ends one session with a body-less DELETE, and exports the account", async () => {
    const activity = await curl("GET", `${API}/me/activity?type=login`, bearer(s.access));
    expect(activity.status).toBe(200);
    expect(activity.json.items.length).toBeGreaterThan(0);
    const other = await login(alice.email, alice.password);
    const sessions = await call("GET", `${API}/me/sessions`, { token: s.access });
    const notCurrent = sessions.json.items.find((x: { current: boolean }) => !x.current);
    const ended = await curl("DELETE", `${API}/me/sessions/${notCurrent.id}`, bearer(s.access));
    expect(ended.status, ended.text).toBe(204);
    expect((await call("GET", `${API}/me`, { token: other.access_token })).status).toBe(401);
    const again = await login(alice.email, alice.password);
    const viaFetch = await call("GET", `${API}/me/sessions`, { token: s.access });
    const id = viaFetch.json.items.find((x: { current: boolean }) => !x.current).id;
    expect((await call("DELETE", `${API}/me/sessions/${id}`, { token: s.access })).status).toBe(204);
    expect((await call("GET", `${API}/me`, { token: again.access_token })).status).toBe(401);
    const exported = await curl("GET", `${API}/me/export`, bearer(s.access));
    expect(exported.status).toBe(200);
    expect(exported.headers.get("content-disposition")).toContain("latchkey-export.json");
  });

  it("administers config and users as staff made with npm run admin:create", async () => {
    await exec(process.execPath, ["scripts/admin-create.mjs", "--email", ops.email, "--persist-to", server().stateDir], {
      cwd: ROOT_DIR,
      env: { ...process.env, LATCHKEY_ADMIN_PASSWORD: ops.password },
    });
    s.adminAccess = (await login(ops.email, ops.password)).access_token;
    const admin = bearer(s.adminAccess);
    expect((await curl("GET", `${API}/admin/config`, admin)).json.config.length).toBeGreaterThan(0);
    const patched = await call("PATCH", `${API}/admin/config`, { token: s.adminAccess, json: { otp_max_attempts: 7 } });
    expect(patched.status, patched.text).toBe(200);
    const reset = await curl("DELETE", `${API}/admin/config/otp_max_attempts`, admin);
    expect(reset.status, reset.text).toBe(200);
    const resetByFetch = await call("DELETE", `${API}/admin/config/access_token_ttl`, { token: s.adminAccess });
    expect(resetByFetch.status, resetByFetch.text).toBe(200);
    const users = await call("GET", `${API}/admin/users?q=${encodeURIComponent(bob.email)}`, { token: s.adminAccess });
    expect(users.json.items.map((u: { id: string }) => u.id)).toContain(s.bobId);
    const bobAsStaffSees = await curl("GET", `${API}/admin/users/${s.bobId}`, admin);
    expect(bobAsStaffSees.status, bobAsStaffSees.text).toBe(200);
    expect(bobAsStaffSees.text).toContain(bob.email);
    const flag = await curl("PATCH", `${API}/admin/users/${s.bobId}`, [...admin, ...JSON_TYPE, "-d", '{"email_verified":true}']);
    expect(flag.status, flag.text).toBe(200);
    const out = await curl("POST", `${API}/admin/users/${s.bobId}/logout-all`, admin);
    expect(out.status, out.text).toBe(204);
    expect((await call("GET", `${API}/me`, { token: s.bobAccess })).status).toBe(401);
    s.bobAccess = (await login(bob.email, bob.password)).access_token;
    const outByFetch = await call("POST", `${API}/admin/users/${s.bobId}/logout-all`, { token: s.adminAccess });
    expect(outByFetch.status, outByFetch.text).toBe(204);
    const audit = await call("GET", `${API}/admin/audit?limit=5`, { token: s.adminAccess });
    expect(audit.json.items.length).toBeGreaterThan(0);
  });

  it("ends every session with a body-less POST, from fetch and from curl", async () => {
    // A fresh access token: the one from the earlier tests may have outlived its lifetime by now on a slow machine.
    s.access = (await login(alice.email, alice.password)).access_token;
    const viaCurl = await curl("POST", `${API}/auth/logout-all`, bearer(s.access));
    expect(viaCurl.status, viaCurl.text).toBe(204);
    expect((await call("GET", `${API}/me`, { token: s.access })).status).toBe(401);
    s.access = (await login(alice.email, alice.password)).access_token;
    const viaFetch = await call("POST", `${API}/auth/logout-all`, { token: s.access });
    expect(viaFetch.status, viaFetch.text).toBe(204);
    s.access = (await login(alice.email, alice.password)).access_token;
    // An empty chunked body, and curl's -d '' (Content-Length: 0, a form content type): still no body.
    const empty = join(server().workDir, "empty");
    writeFileSync(empty, "");
    const chunked = await curl("POST", `${API}/auth/logout-all`, [
      ...bearer(s.access),
      "-H",
      "transfer-encoding: chunked",
      "--data-binary",
      `@${empty}`,
    ]);
    expect(chunked.status, chunked.text).toBe(204);
    s.access = (await login(alice.email, alice.password)).access_token;
    const emptyForm = await curl("POST", `${API}/auth/logout-all`, [...bearer(s.access), "-d", ""]);
    expect(emptyForm.status, emptyForm.text).toBe(204);
    s.access = (await login(alice.email, alice.password)).access_token;
  });

  it("answers a missing body with 400, a wrong method with 405 and Allow, an unknown path with 404", async () => {
    const noBody = await curl("POST", `${API}/auth/login`);
    expect(noBody.status).toBe(400);
    expect(noBody.json.errors).toEqual([{ path: "body", message: expect.any(String) }]);
    const wrong = await curl("PUT", `${API}/auth/login`, [...JSON_TYPE, "-d", "{}"]);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("OPTIONS, POST");
    expect(wrong.json.code).toBe("method_not_allowed");
    const unknownMethod = await call("PROPFIND", `${API}/me`, { token: s.access });
    expect(unknownMethod.status).toBe(405);
    expect(unknownMethod.headers.get("allow")).toBe("DELETE, GET, HEAD, OPTIONS, PATCH, PUT");
    const text = await curl("POST", `${API}/auth/login`, ["-H", "content-type: text/plain", "-d", "hello"]);
    expect(text.status).toBe(415);
    expect((await curl("DELETE", `${API}/nowhere`)).status).toBe(404);
  });

  it("shows the development inbox as an HTML page, only at a local name", async () => {
    const page = await curl("GET", "/dev/mail");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.text).toContain(alice.email);
    // What a DNS-rebinding page's request looks like to the server: its own name as the Host.
    const port = new URL(server().url).port;
    for (const host of [`rebind.evil.example:${port}`, `localhost.evil.example:${port}`]) {
      const rebound = await curl("GET", "/dev/mail?format=json", ["-H", `host: ${host}`]);
      expect(rebound.status, host).toBe(403);
      expect(rebound.text).not.toContain(alice.email);
    }
    expect((await curl("GET", "/dev/mail?format=json", ["-H", `host: 127.0.0.1:${port}`])).status).toBe(200);
  });

  it("deletes an account with its password", async () => {
    s.bobAccess = (await login(bob.email, bob.password)).access_token;
    const gone = await call("DELETE", `${API}/me`, { token: s.bobAccess, json: { current_password: bob.password } });
    expect(gone.status, gone.text).toBe(204);
    expect((await call("POST", `${API}/auth/login`, { json: { email: bob.email, password: bob.password } })).status).toBe(401);
  });

  it("has sent every operation in the OpenAPI document", async () => {
    const doc = (await call("GET", "/openapi.json")).json as { paths: Record<string, Record<string, unknown>> };
    const missing: string[] = [];
    for (const [template, operations] of Object.entries(doc.paths)) {
      const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
      for (const method of Object.keys(operations).map((m) => m.toUpperCase())) {
        if (!sent.some((line) => line.startsWith(`${method} `) && pattern.test(line.slice(method.length + 1)))) {
          missing.push(`${method} ${template}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });
});
