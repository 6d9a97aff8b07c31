import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { createBackgroundDeps } from "../../src/deps";
import { AVATAR_SWEEP_GRACE_MS, AVATAR_SWEEP_POSITION_KEY, sweepOrphanAvatars } from "../../src/features/profiles/avatar.service";
import { DRAIN_MAX_BYTES } from "../../src/lib/drain";
import { probeD1 } from "../d1-wrap";
import { AVATAR_CACHE_BASE, BASE, harness } from "../helpers";

const h = harness();
const AVATAR = "/api/v1/me/avatar";
const MiB = 1024 * 1024;

// ---- Small real images, built byte by byte -------------------------------------------------

const bytes = (...parts: (number[] | Uint8Array | string)[]) => {
  const arrays = parts.map((p) => (typeof p === "string" ? new TextEncoder().encode(p) : p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
};
const be32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const le16 = (n: number) => [n & 255, (n >>> 8) & 255];
const le24 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255];
const le32 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) c = (CRC_TABLE[(c ^ byte) & 255] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function pngChunk(type: string, data: Uint8Array) {
  const body = bytes(type, data);
  return bytes(be32(data.length), body, be32(crc32(body)));
}
async function deflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A decodable 8-bit grayscale PNG; `rows` lets a header announce more rows than are encoded. */
async function png(width: number, height: number, rows = height) {
  const raw = new Uint8Array((Math.min(width, 4096) + 1) * Math.min(rows, 4096)).fill(128);
  for (let r = 0; r < Math.min(rows, 4096); r++) raw[r * (Math.min(width, 4096) + 1)] = 0; // filter: none
  const ihdr = bytes(be32(width), be32(height), [8, 0, 0, 0, 0]);
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  return bytes(sig, pngChunk("IHDR", ihdr), pngChunk("IDAT", await deflate(raw)), pngChunk("IEND", new Uint8Array(0)));
}

/** GIF89a: a `width`×`height` canvas with one 1×1 frame (a real, decodable file). */
function gif(width: number, height: number, extra: Uint8Array = new Uint8Array(0)) {
  return bytes(
    "GIF89a",
    le16(width),
    le16(height),
    [0x80, 0, 0], // global colour table of 2 entries
    [0, 0, 0, 255, 255, 255],
    extra,
    [0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0], // image descriptor: 1×1 at 0,0
    [2, 2, 0x44, 0x01, 0], // LZW minimum code size 2, one sub-block, terminator
    [0x3b],
  );
}

/** `n` more 1×1 frames for `gif`'s `extra` (2 MiB holds tens of thousands of them). */
function gifFrames(n: number) {
  const frame = bytes([0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0], [2, 2, 0x44, 0x01, 0]);
  return bytes(...Array.from({ length: n }, () => frame));
}

/** A JPEG's tables and frame header (DQT, SOF `sof` with 1 component, DHT): what comes before its scans. */
function jpegTables(sof: 0xc0 | 0xc2, width: number, height: number) {
  return bytes(
    [0xff, 0xdb, 0, 67, 0],
    new Uint8Array(64).fill(1),
    [0xff, sof, 0, 11, 8],
    [(height >> 8) & 255, height & 255, (width >> 8) & 255, width & 255],
    [1, 1, 0x11, 0],
    [0xff, 0xc4, 0, 20, 0x00, 1, ...new Array(15).fill(0), 0],
  );
}

/** Baseline JPEG structure: SOI, APP0 JFIF, DQT, SOF0 (1 component), DHT, SOS, scan data, EOI. */
function jpeg(width: number, height: number, trailer: Uint8Array = new Uint8Array(0)) {
  return bytes(
    [0xff, 0xd8],
    [0xff, 0xe0, 0, 16],
    "JFIF\0",
    [1, 1, 0, 0, 1, 0, 1, 0, 0],
    jpegTables(0xc0, width, height),
    [0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0],
    [0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56], // entropy data with a stuffed FF and a restart marker
    [0xff, 0xd9],
    trailer,
  );
}

/** Progressive JPEG (SOF2, 1 component) with `scans` scans of one entropy byte each: every scan is another pass a decoder makes over the whole image. */
function progressiveJpeg(width: number, height: number, scans: number) {
  const scan = [0xff, 0xda, 0, 8, 1, 1, 0, 0, 0, 0, 0x00];
  const allScans = new Uint8Array(scan.length * scans);
  for (let i = 0; i < scans; i++) allScans.set(scan, i * scan.length);
  return bytes([0xff, 0xd8], jpegTables(0xc2, width, height), allScans, [0xff, 0xd9]);
}

function riff(chunk: string, data: number[] | Uint8Array) {
  const payload = bytes(chunk, le32(data.length), data, data.length % 2 ? [0] : []);
  return bytes("RIFF", le32(4 + payload.length), "WEBP", payload);
}
/** Lossless WebP (VP8L): 14-bit width−1 and height−1 after the 0x2f signature. */
const webpLossless = (width: number, height: number) =>
  riff("VP8L", [
    0x2f,
    ...le32(((width - 1) & 0x3fff) | (((height - 1) & 0x3fff) << 14)),
    0x00,
    0x07,
    0x10,
    0x11,
    0x11,
    0x88,
    0x88,
    0xfe,
    0x07,
    0x00,
  ]);
/** Lossy WebP (VP8): frame tag, start code 9d 01 2a, 14-bit width and height. */
const webpLossy = (width: number, height: number) =>
  riff("VP8 ", [0x30, 0x01, 0x00, 0x9d, 0x01, 0x2a, ...le16(width), ...le16(height), 0x01, 0x40, 0x25, 0xa4, 0x00, 0x03, 0x70, 0x00]);
/** Extended WebP (VP8X): 24-bit canvas width−1 and height−1, followed by the image chunk. */
function webpExtended(width: number, height: number) {
  const vp8x = bytes("VP8X", le32(10), [0, 0, 0, 0], le24(width - 1), le24(height - 1));
  const image = bytes("VP8L", le32(6), [0x2f, 0, 0, 0, 0, 0]);
  return bytes("RIFF", le32(4 + vp8x.length + image.length), "WEBP", vp8x, image);
}

// ---- Helpers ---------------------------------------------------------------------------------

async function upload(token: string, body: BodyInit, contentType?: string, opts: { env?: Env } = {}) {
  return h.call("PUT", AVATAR, undefined, { token, raw: body, headers: contentType ? { "content-type": contentType } : {}, env: opts.env });
}

async function avatarRow(userId: string) {
  return env.DB.prepare("SELECT avatar_key, avatar_content_type, avatar_etag FROM profiles WHERE user_id = ?")
    .bind(userId)
    .first<{ avatar_key: string | null; avatar_content_type: string | null; avatar_etag: string | null }>();
}

async function activityTypes(userId: string) {
  const { results } = await env.DB.prepare("SELECT type FROM activity WHERE user_id = ? ORDER BY created_at, rowid")
    .bind(userId)
    .all<{ type: string }>();
  return results.map((r) => r.type).filter((t) => t.startsWith("avatar_"));
}

async function objectsOf(userId: string) {
  return (await env.AVATARS.list({ prefix: `avatars/${userId}/` })).objects.map((o) => o.key);
}

/** GET through the worker, keeping the body as bytes. */
async function fetchRaw(path: string, headers: Record<string, string> = {}) {
  const res = await h.app.fetch(new Request(`${BASE}${path}`, { headers }), env);
  return { status: res.status, headers: res.headers, body: new Uint8Array(await res.arrayBuffer()) };
}

describe("avatar upload: accepted images", () => {
  const cases: [string, () => Promise<Uint8Array> | Uint8Array, string, string][] = [
    ["PNG", () => png(64, 48), "image/png", "png"],
    ["JPEG", () => jpeg(640, 480), "image/jpeg", "jpg"],
    ["GIF", () => gif(32, 32), "image/gif", "gif"],
    ["lossless WebP", () => webpLossless(100, 50), "image/webp", "webp"],
    ["lossy WebP", () => webpLossy(320, 240), "image/webp", "webp"],
    ["extended WebP", () => webpExtended(4096, 4096), "image/webp", "webp"],
  ];
  for (const [name, make, contentType, ext] of cases) {
    it(`stores a ${name} under a server-made key and serves the same bytes as ${contentType}`, async () => {
      const u = await h.signedInUser();
      const image = await make();
      const res = await upload(u.access_token, image, contentType);
      expect(res.status, res.text).toBe(200);
      expect(res.json.avatar_url).toMatch(new RegExp(`^/api/v1/profiles/${u.id}/avatar\\?v=[A-Za-z0-9_-]{22}$`));

      const row = await avatarRow(u.id);
      expect(row?.avatar_key).toMatch(new RegExp(`^avatars/${u.id}/[A-Za-z0-9_-]{22}\\.${ext}$`));
      expect(row?.avatar_content_type).toBe(contentType);
      const object = await env.AVATARS.head(row?.avatar_key as string);
      expect(object?.httpMetadata?.contentType).toBe(contentType);
      const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", image))].map((b) => b.toString(16).padStart(2, "0")).join("");
      expect(object?.customMetadata?.sha256).toBe(digest);

      const served = await fetchRaw(res.json.avatar_url);
      expect(served.status).toBe(200);
      expect(served.headers.get("content-type")).toBe(contentType);
      expect(served.body).toEqual(image);
      expect(await activityTypes(u.id)).toEqual(["avatar_updated"]);
      const profile = await h.call("GET", "/api/v1/me/profile", undefined, { token: u.access_token });
      expect(profile.json.profile.avatar_url).toBe(res.json.avatar_url);
    });
  }

  it("decides the type by the bytes, not the declared Content-Type", async () => {
    const u = await h.signedInUser();
    const res = await upload(u.access_token, await png(8, 8), "image/gif");
    expect(res.status).toBe(200);
    expect((await avatarRow(u.id))?.avatar_content_type).toBe("image/png");
    expect((await avatarRow(u.id))?.avatar_key).toMatch(/\.png$/);
  });

  it("accepts multipart/form-data with the file in the field avatar (what curl -F sends)", async () => {
    const u = await h.signedInUser();
    const image = await png(16, 16);
    const form = new FormData();
    form.append("avatar", new File([image], "me.png", { type: "image/png" }));
    const res = await h.call("PUT", AVATAR, undefined, { token: u.access_token, raw: form });
    expect(res.status, res.text).toBe(200);
    const served = await fetchRaw(res.json.avatar_url);
    expect(served.body).toEqual(image);
  });

  it("accepts the largest allowed canvas, 4096×4096", async () => {
    const u = await h.signedInUser();
    expect((await upload(u.access_token, gif(4096, 4096), "image/gif")).status).toBe(200);
  });

  it("shows the avatar_url in the public profile and the directory", async () => {
    const u = await h.signedInUser();
    const { json } = await upload(u.access_token, gif(10, 10), "image/gif");
    expect((await h.call("GET", `/api/v1/profiles/${u.id}`)).json.profile.avatar_url).toBe(json.avatar_url);
    expect((await h.call("GET", `/api/v1/profiles?q=${u.username}`)).json.items[0].avatar_url).toBe(json.avatar_url);
  });
});

describe("avatar upload: refused input", () => {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(document.cookie)</script></svg>';
  const html = "<!doctype html><html><body><script>fetch('/api/v1/me')</script></body></html>";

  async function expectRefused(body: BodyInit, contentType: string | undefined, status: number) {
    const u = await h.signedInUser();
    const res = await upload(u.access_token, body, contentType);
    expect(res.status, res.text).toBe(status);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(await avatarRow(u.id)).toMatchObject({ avatar_key: null });
    expect(await objectsOf(u.id)).toEqual([]);
    expect(await activityTypes(u.id)).toEqual([]);
    return res;
  }

  it("refuses an SVG with a script (415)", async () => {
    await expectRefused(svg, "image/svg+xml", 415);
  });

  it("refuses an SVG sent as multipart with an image/png label (415)", async () => {
    const u = await h.signedInUser();
    const form = new FormData();
    form.append("avatar", new File([svg], "me.png", { type: "image/png" }));
    expect((await h.call("PUT", AVATAR, undefined, { token: u.access_token, raw: form })).status).toBe(415);
  });

  it("refuses a body with a content coding (415, Accept-Encoding: identity), never storing the bytes as they came", async () => {
    const image = await png(4, 4);
    const gzipped = new Uint8Array(await new Response(new Blob([image]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
    // A real gzip of the image, and a plain image falsely labelled br: neither is decoded, neither stored.
    for (const [body, coding] of [
      [gzipped, "gzip"],
      [image, "br"],
    ] as const) {
      const u = await h.signedInUser();
      const res = await h.call("PUT", AVATAR, undefined, {
        token: u.access_token,
        raw: body,
        headers: { "content-type": "image/png", "content-encoding": coding },
      });
      expect(res.status, `${coding}: ${res.text}`).toBe(415);
      expect(res.json.code).toBe("unsupported_media_type");
      expect(res.headers.get("accept-encoding")).toBe("identity");
      expect(await avatarRow(u.id)).toMatchObject({ avatar_key: null });
      expect(await objectsOf(u.id)).toEqual([]);
    }
  });

  it("refuses HTML labelled image/png (415)", async () => {
    const res = await expectRefused(html, "image/png", 415);
    expect(res.json.code).toBe("unsupported_media_type");
  });

  it("refuses a PNG with HTML appended after IEND, a polyglot (415)", async () => {
    await expectRefused(bytes(await png(4, 4), html), "image/png", 415);
  });

  it("refuses a JPEG with data after EOI (415)", async () => {
    await expectRefused(jpeg(4, 4, bytes("PK\u0003\u0004zip-payload")), "image/jpeg", 415);
  });

  it("refuses a GIF carrying a script in a comment block (415)", async () => {
    const comment = bytes([0x21, 0xfe, 27], "<script>alert(1)</script>!!", [0]);
    await expectRefused(gif(4, 4, comment), "image/gif", 415);
  });

  it("refuses a GIF carrying any markup a page would run or render: event handlers, styles, forms, meta refresh (415)", async () => {
    for (const markup of [
      '<img src=x onerror="alert(1)">',
      "<style>body{background:url(//evil.example)}</style>",
      '<meta http-equiv="refresh" content="0;url=//evil.example">',
      '<form action="//evil.example"><input name=p></form>',
      '<link rel="stylesheet" href="//evil.example/x.css">',
      '<p onmouseover = "steal()">x</p>',
      // HTML also takes a slash between a tag's name and its attributes.
      "<video/src/onerror=alert(1)>",
      "<input/autofocus/onfocus=alert(1)>",
      // And right after a quoted value.
      '<video src="x"onerror=alert(1)>',
      "<video src='x'onerror=alert(1)>",
    ]) {
      const comment = bytes([0x21, 0xfe, markup.length], markup, [0]);
      await expectRefused(gif(4, 4, comment), "image/gif", 415);
    }
  });

  it("refuses a WebP whose RIFF size leaves bytes after it (415)", async () => {
    await expectRefused(bytes(webpLossless(4, 4), "<html>"), "image/webp", 415);
  });

  it("refuses a PNG header announcing 100000×100000 pixels (422)", async () => {
    const res = await expectRefused(await png(100_000, 100_000, 1), "image/png", 422);
    expect(res.json.code).toBe("unprocessable_image");
    expect(res.json.detail).toContain("100000×100000");
  });

  it("refuses each format over 4096 pixels on a side (422)", async () => {
    await expectRefused(gif(4097, 1), "image/gif", 422);
    await expectRefused(jpeg(1, 4097), "image/jpeg", 422);
    await expectRefused(webpExtended(5000, 10), "image/webp", 422);
  });

  it("refuses an animation whose frames would make a viewer's browser decode more than 16 full-size images (422)", async () => {
    // Each frame is a whole canvas to composite.
    const refused = await expectRefused(gif(4096, 4096, gifFrames(16)), "image/gif", 422);
    expect(refused.json.detail).toContain("17 frames");
    await expectRefused(gif(1024, 1024, gifFrames(256)), "image/gif", 422);
    // APNG (one fcTL chunk per frame) and animated WebP (one ANMF chunk per frame) alike.
    const fctl = pngChunk("fcTL", new Uint8Array(26));
    const still = await png(4096, 4096, 1);
    const apng = bytes(still.subarray(0, 33), ...Array.from({ length: 17 }, () => fctl), still.subarray(33));
    await expectRefused(apng, "image/png", 422);
    const anmf = bytes("ANMF", le32(16), new Uint8Array(16));
    const webp = webpExtended(4096, 4096);
    const animated = bytes(
      webp.subarray(0, 4),
      le32(webp.length - 8 + 17 * anmf.length),
      webp.subarray(8),
      ...Array.from({ length: 17 }, () => anmf),
    );
    await expectRefused(animated, "image/webp", 422);
  });

  it("refuses a progressive JPEG of more scans than any encoder writes: each one makes every viewer decode the image again (422)", async () => {
    // 150,000 scans of a 4096² image fit in 1.6 MB; a decoder without its own cap spends minutes on it.
    const bomb = progressiveJpeg(4096, 4096, 150_000);
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
    const refused = await expectRefused(bomb, "image/jpeg", 422);
    expect(refused.json.detail).toContain("150000 scans");
    await expectRefused(progressiveJpeg(64, 64, 101), "image/jpeg", 422);
    // Encoders write about 10 (libjpeg's progressive script), mozjpeg's optimised scripts a few more.
    const u = await h.signedInUser();
    expect((await upload(u.access_token, progressiveJpeg(4096, 4096, 100), "image/jpeg")).status).toBe(200);
  });

  it("accepts an animation within that budget: many frames on a small canvas, a few on a large one", async () => {
    const u = await h.signedInUser();
    expect((await upload(u.access_token, gif(256, 256, gifFrames(999)), "image/gif")).status).toBe(200);
    expect((await upload(u.access_token, gif(4096, 4096, gifFrames(15)), "image/gif")).status).toBe(200);
  });

  it("refuses a zero-sized image (422)", async () => {
    await expectRefused(await png(0, 10, 1), "image/png", 422);
    await expectRefused(jpeg(10, 0), "image/jpeg", 422);
    await expectRefused(webpLossy(0, 0), "image/webp", 422);
  });

  it("refuses a truncated PNG (422)", async () => {
    const whole = await png(8, 8);
    await expectRefused(whole.subarray(0, whole.length - 12), "image/png", 422);
  });

  it("refuses a 3 MiB body (413)", async () => {
    const big = bytes(await png(8, 8), new Uint8Array(3 * MiB));
    const res = await expectRefused(big, "image/png", 413);
    expect(res.json.code).toBe("payload_too_large");
  });

  it("refuses a streamed body without Content-Length once it passes 2 MiB (413), draining the rest without keeping it", async () => {
    // The rest is read and dropped so the connection stays usable for the next request (lib/drain.ts).
    const u = await h.signedInUser();
    const CHUNK = 64 * 1024;
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled * CHUNK >= 3 * MiB) return controller.close();
        pulled++;
        controller.enqueue(new Uint8Array(CHUNK));
      },
    });
    const res = await upload(u.access_token, stream, "image/png");
    expect(res.status).toBe(413);
    expect(pulled * CHUNK).toBe(3 * MiB);
    expect(await objectsOf(u.id)).toEqual([]);
  });

  it("stops draining an endless streamed body after DRAIN_MAX_BYTES (413)", async () => {
    const u = await h.signedInUser();
    const CHUNK = 64 * 1024;
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(CHUNK));
      },
    });
    const res = await upload(u.access_token, endless, "image/png");
    expect(res.status).toBe(413);
    // the limit, then at most DRAIN_MAX_BYTES more, give or take the chunks a stream pulls ahead
    expect(pulled * CHUNK).toBeLessThanOrEqual(2 * MiB + DRAIN_MAX_BYTES + 4 * CHUNK);
  });

  it("refuses a multipart body over the limit (413)", async () => {
    const u = await h.signedInUser();
    const form = new FormData();
    form.append("avatar", new File([bytes(await png(8, 8), new Uint8Array(3 * MiB))], "me.png", { type: "image/png" }));
    expect((await h.call("PUT", AVATAR, undefined, { token: u.access_token, raw: form })).status).toBe(413);
  });

  it("refuses an empty body (400 naming avatar)", async () => {
    const res = await expectRefused(new Uint8Array(0), "image/png", 400);
    expect(res.json.errors[0].path).toBe("avatar");
  });

  it("refuses multipart without an avatar file (400)", async () => {
    const u = await h.signedInUser();
    const form = new FormData();
    form.append("avatar", "not a file");
    const res = await h.call("PUT", AVATAR, undefined, { token: u.access_token, raw: form });
    expect(res.status).toBe(400);
    expect(res.json.errors[0].path).toBe("avatar");
  });

  it("requires a token", async () => {
    expect((await h.call("PUT", AVATAR, undefined, { raw: gif(1, 1), headers: { "content-type": "image/gif" } })).status).toBe(401);
    expect((await h.call("DELETE", AVATAR)).status).toBe(401);
  });
});

describe("avatar lifecycle", () => {
  it("deletes the previous object when the avatar is replaced, and the URL changes", async () => {
    const u = await h.signedInUser();
    const first = await upload(u.access_token, await png(8, 8), "image/png");
    const oldKey = (await avatarRow(u.id))?.avatar_key as string;
    const second = await upload(u.access_token, jpeg(8, 8), "image/jpeg");
    expect(second.status).toBe(200);
    const newKey = (await avatarRow(u.id))?.avatar_key as string;
    expect(newKey).not.toBe(oldKey);
    expect(second.json.avatar_url).not.toBe(first.json.avatar_url);
    expect(await env.AVATARS.get(oldKey)).toBeNull();
    expect(await objectsOf(u.id)).toEqual([newKey]);
    expect(await activityTypes(u.id)).toEqual(["avatar_updated", "avatar_updated"]);
    // The old URL now shows the current image, but must not be cached as immutable.
    const stale = await fetchRaw(first.json.avatar_url);
    expect(stale.headers.get("content-type")).toBe("image/jpeg");
    expect(stale.headers.get("cache-control")).not.toContain("immutable");
  });

  it("DELETE /me/avatar removes the object and the URL (204), and is idempotent", async () => {
    const u = await h.signedInUser();
    const { json } = await upload(u.access_token, gif(2, 2), "image/gif");
    const key = (await avatarRow(u.id))?.avatar_key as string;
    const res = await h.call("DELETE", AVATAR, undefined, { token: u.access_token });
    expect(res.status).toBe(204);
    expect(await env.AVATARS.get(key)).toBeNull();
    expect(await avatarRow(u.id)).toEqual({ avatar_key: null, avatar_content_type: null, avatar_etag: null });
    expect((await h.call("GET", "/api/v1/me/profile", undefined, { token: u.access_token })).json.profile.avatar_url).toBeNull();
    expect((await fetchRaw(json.avatar_url)).status).toBe(404);
    expect((await h.call("DELETE", AVATAR, undefined, { token: u.access_token })).status).toBe(204);
    expect(await activityTypes(u.id)).toEqual(["avatar_updated", "avatar_deleted"]);
  });

  it("deleting the account removes the avatar object", async () => {
    const u = await h.signedInUser();
    await upload(u.access_token, gif(2, 2), "image/gif");
    const key = (await avatarRow(u.id))?.avatar_key as string;
    expect(await env.AVATARS.head(key)).not.toBeNull();
    const res = await h.call("DELETE", "/api/v1/me", { current_password: u.password }, { token: u.access_token });
    expect(res.status).toBe(204);
    expect(await env.AVATARS.get(key)).toBeNull();
    expect(await objectsOf(u.id)).toEqual([]);
  });

  it("leaves the profile and the old avatar unchanged when the R2 write fails (503)", async () => {
    const u = await h.signedInUser();
    await upload(u.access_token, gif(2, 2), "image/gif");
    const before = await avatarRow(u.id);
    const failingBucket = {
      put: async () => {
        throw new Error("R2 is down");
      },
      get: (key: string) => env.AVATARS.get(key),
      head: (key: string) => env.AVATARS.head(key),
      delete: (keys: string | string[]) => env.AVATARS.delete(keys),
      list: (options?: R2ListOptions) => env.AVATARS.list(options),
    } as unknown as R2Bucket;
    const res = await upload(u.access_token, await png(4, 4), "image/png", { env: { ...env, AVATARS: failingBucket } });
    expect(res.status).toBe(503);
    expect(res.json.code).toBe("service_unavailable");
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    expect(await avatarRow(u.id)).toEqual(before);
    expect(await objectsOf(u.id)).toEqual([before?.avatar_key]);
    expect(await activityTypes(u.id)).toEqual(["avatar_updated"]);
  });

  it("deletes the new object when the database write fails after the upload (503, no orphan)", async () => {
    const u = await h.signedInUser();
    await upload(u.access_token, gif(2, 2), "image/gif");
    const before = await avatarRow(u.id);
    const probe = probeD1(env.DB);
    probe.failWhen(/update .profiles/i);
    const res = await upload(u.access_token, await png(4, 4), "image/png", { env: { ...env, DB: probe.db } });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    expect(probe.statements.some((s) => /update .profiles/i.test(s))).toBe(true);
    expect(await avatarRow(u.id)).toEqual(before);
    expect(await objectsOf(u.id)).toEqual([before?.avatar_key]);
    expect(await activityTypes(u.id)).toEqual(["avatar_updated"]);
  });
});

describe("avatar changes racing each other or the account's deletion", () => {
  it("two removals at once record one avatar_deleted: the second removed nothing", async () => {
    const u = await h.signedInUser();
    expect((await upload(u.access_token, gif(2, 2), "image/gif")).status).toBe(200);
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/^update "profiles"/, async () => {
      expect((await h.call("DELETE", AVATAR, undefined, { token: u.access_token })).status).toBe(204);
    });
    const second = await h.call("DELETE", AVATAR, undefined, { token: u.access_token, env: { ...env, DB: probe.db } });
    expect(staged.done).toBe(true);
    expect(second.status).toBe(204);
    expect(await activityTypes(u.id)).toEqual(["avatar_updated", "avatar_deleted"]);
  });

  it("an upload whose account is deleted meanwhile answers 401 and leaves no object behind", async () => {
    const u = await h.signedInUser();
    await h.call("GET", "/api/v1/me/profile", undefined, { token: u.access_token });
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/^update "profiles"/, async () => {
      expect((await h.call("DELETE", "/api/v1/me", { current_password: u.password }, { token: u.access_token })).status).toBe(204);
    });
    const res = await upload(u.access_token, gif(2, 2), "image/gif", { env: { ...env, DB: probe.db } });
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(401);
    expect(await objectsOf(u.id)).toEqual([]);
  });

  it("a profile change whose account is deleted meanwhile answers 401, not 500", async () => {
    const u = await h.signedInUser();
    await h.call("GET", "/api/v1/me/profile", undefined, { token: u.access_token });
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/^update "profiles"/, async () => {
      expect((await h.call("DELETE", "/api/v1/me", { current_password: u.password }, { token: u.access_token })).status).toBe(204);
    });
    const res = await h.call("PATCH", "/api/v1/me/profile", { name: "Ada" }, { token: u.access_token, env: { ...env, DB: probe.db } });
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(401);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM activity WHERE user_id = ?").bind(u.id).first<{ n: number }>()).toEqual({
      n: 0,
    });
  });
});

describe("an upload whose database reply is lost", () => {
  it("keeps the new object when the write committed after all: the profile never points at a missing image", async () => {
    const u = await h.signedInUser();
    const probe = probeD1(env.DB);
    probe.loseReplyWhen(/update .profiles/i);
    const res = await upload(u.access_token, await png(4, 4), "image/png", { env: { ...env, DB: probe.db } });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    const row = await avatarRow(u.id);
    expect(await objectsOf(u.id)).toEqual([row?.avatar_key]);
    expect((await fetchRaw(res.json.avatar_url)).status).toBe(200);
  });
});

describe("avatar failures in the log", () => {
  it("name the object without the account's id (logs name users only by user_ref)", async () => {
    const u = await h.signedInUser();
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const probe = probeD1(env.DB);
      probe.failWhen(/update .profiles/i);
      // R2 refuses the cleanup too, so every failure line of the upload path is printed.
      const bucket = { put: env.AVATARS.put.bind(env.AVATARS), delete: () => Promise.reject(new Error("r2 down")) };
      const res = await upload(u.access_token, await png(4, 4), "image/png", {
        env: { ...env, DB: probe.db, AVATARS: bucket as unknown as R2Bucket },
      });
      expect(res.status).toBe(503);
      const printed = errors.mock.calls.map((args) => args.map(String).join(" ")).join("\n");
      expect(printed).toContain('"event":"avatar.profile_update_failed","key":"avatars/…/');
      expect(printed).not.toContain(u.id);
    } finally {
      errors.mockRestore();
    }
  });
});

describe("serving avatars", () => {
  it("streams with the stored type, an ETag and long-lived, locked-down caching headers", async () => {
    const u = await h.signedInUser();
    const { json } = await upload(u.access_token, await png(8, 8), "image/png");
    const res = await fetchRaw(json.avatar_url);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("etag")).toBe((await avatarRow(u.id))?.avatar_etag);
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
  });

  it("answers a matching If-None-Match with 304 and no body, a different one with 200", async () => {
    const u = await h.signedInUser();
    const { json } = await upload(u.access_token, gif(3, 3), "image/gif");
    const etag = (await fetchRaw(json.avatar_url)).headers.get("etag") as string;
    const same = await fetchRaw(json.avatar_url, { "if-none-match": etag });
    expect(same.status).toBe(304);
    expect(same.body).toHaveLength(0);
    expect(same.headers.get("etag")).toBe(etag);
    expect((await fetchRaw(json.avatar_url, { "if-none-match": `"other", W/${etag}` })).status).toBe(304);
    expect((await fetchRaw(json.avatar_url, { "if-none-match": '"something-else"' })).status).toBe(200);
  });

  it("declares in the OpenAPI document the caching headers its 200 and 304 carry, for a generated client to read", async () => {
    const u = await h.signedInUser();
    const { json } = await upload(u.access_token, gif(3, 3), "image/gif");
    const ok = await fetchRaw(json.avatar_url);
    const notModified = await fetchRaw(json.avatar_url, { "if-none-match": ok.headers.get("etag") as string });
    const doc = (await h.call("GET", "/openapi.json")).json;
    const responses = doc.paths["/api/v1/profiles/{user_id}/avatar"].get.responses;
    for (const res of [ok, notModified]) {
      const declared = Object.keys(responses[String(res.status)].headers ?? {}).map((name) => name.toLowerCase());
      for (const header of ["etag", "cache-control"]) {
        expect(res.headers.get(header), `${res.status} ${header}`).not.toBeNull();
        expect(declared, `${res.status}`).toContain(header);
      }
    }
  });

  it("answers 404 without an avatar, for an unknown user, and for unverified or disabled accounts", async () => {
    const u = await h.signedInUser();
    expect((await fetchRaw(`/api/v1/profiles/${u.id}/avatar`)).status).toBe(404);
    expect((await fetchRaw("/api/v1/profiles/nobody/avatar")).status).toBe(404);
    const { json } = await upload(u.access_token, gif(3, 3), "image/gif");
    // The flags are changed in the database directly, before any GET: nothing is in the edge
    // cache yet (the services that change them purge it; see "avatars from the edge cache").
    await env.DB.prepare("UPDATE users SET email_verified = 0 WHERE id = ?").bind(u.id).run();
    expect((await fetchRaw(json.avatar_url)).status).toBe(404);
    await env.DB.prepare("UPDATE users SET email_verified = 1, is_active = 0 WHERE id = ?").bind(u.id).run();
    expect((await fetchRaw(json.avatar_url)).status).toBe(404);
    await env.DB.prepare("UPDATE users SET is_active = 1 WHERE id = ?").bind(u.id).run();
    expect((await fetchRaw(json.avatar_url)).status).toBe(200);
  });
});

describe("avatars from the edge cache", () => {
  /** The bucket with every `get` counted (the edge-cache path must make none). */
  function countingBucket() {
    const counter = { gets: 0 };
    const bucket = new Proxy(env.AVATARS, {
      get(target, prop) {
        if (prop === "get")
          return (...args: Parameters<R2Bucket["get"]>) => {
            counter.gets++;
            return target.get(...args);
          };
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    return { counter, bucket };
  }

  /** The edge cache's copy under a URL of this worker's host (undefined: none). */
  const cached = (path: string) => caches.default.match(`${AVATAR_CACHE_BASE}${path}`);

  /** A user with an avatar whose versioned URL has been requested once (so it is in the cache). */
  async function cachedAvatar() {
    const u = await h.signedInUser();
    const image = await png(6, 6);
    const { json } = await upload(u.access_token, image, "image/png");
    const first = await fetchRaw(json.avatar_url);
    expect(first.status).toBe(200);
    expect(first.body).toEqual(image);
    expect(await cached(json.avatar_url)).toBeTruthy();
    return { u, image, url: json.avatar_url as string, etag: first.headers.get("etag") as string };
  }

  it("answers a repeat request for the current versioned URL from the cache, without D1 or R2", async () => {
    const { image, url, etag } = await cachedAvatar();
    const probe = probeD1(env.DB);
    const { counter, bucket } = countingBucket();
    const probed = { ...env, DB: probe.db, AVATARS: bucket };
    const res = await h.app.fetch(new Request(`${BASE}${url}`), probed);
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(image);
    expect(res.headers.get("etag")).toBe(etag);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
    // If-None-Match is answered from the cached ETag, also without D1 or R2.
    const revalidated = await h.app.fetch(new Request(`${BASE}${url}`, { headers: { "if-none-match": etag } }), probed);
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.get("etag")).toBe(etag);
    expect(probe.statements).toEqual([]);
    expect(counter.gets).toBe(0);
  });

  it("keeps serving the cached copy when the R2 object is gone behind its back", async () => {
    const { u, image, url } = await cachedAvatar();
    for (const key of await objectsOf(u.id)) await env.AVATARS.delete(key);
    const res = await fetchRaw(url);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(image);
  });

  it("caches only the current version of a versioned URL, under its canonical key", async () => {
    const { u, url } = await cachedAvatar();
    expect(await cached(url)).toBeTruthy();
    const unversioned = `/api/v1/profiles/${u.id}/avatar`;
    const wrongVersion = `${unversioned}?v=not-the-version`;
    expect((await fetchRaw(unversioned)).status).toBe(200);
    expect((await fetchRaw(wrongVersion)).status).toBe(200);
    expect(await cached(unversioned)).toBeUndefined();
    expect(await cached(wrongVersion)).toBeUndefined();
    // Each answer still reads the profile: only the canonical versioned URL is served from the cache.
    const probe = probeD1(env.DB);
    expect((await h.app.fetch(new Request(`${BASE}${wrongVersion}`), { ...env, DB: probe.db })).status).toBe(200);
    expect(probe.statements.length).toBeGreaterThan(0);
  });

  it("does not make a new cache entry for an extra query parameter, nor serve it stale after a replace", async () => {
    const { u, image, url } = await cachedAvatar();
    const variant = `${url}&cachebust=1`;
    const res = await fetchRaw(variant);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(image);
    expect(await cached(variant)).toBeUndefined();
    // A variant requested before the first plain request fills only the canonical key.
    const other = await h.signedInUser();
    const { json } = await upload(other.access_token, gif(2, 2), "image/gif");
    await fetchRaw(`${json.avatar_url}&x=${"a".repeat(40)}`);
    expect(await cached(`${json.avatar_url}&x=${"a".repeat(40)}`)).toBeUndefined();
    expect(await cached(json.avatar_url)).toBeTruthy();
    // After a replace neither the old URL nor its variant answers with the old image.
    await upload(u.access_token, jpeg(4, 4), "image/jpeg");
    for (const path of [url, variant]) {
      const after = await fetchRaw(path);
      expect(after.body).not.toEqual(image);
      expect(after.headers.get("cache-control")).not.toContain("immutable");
    }
  });

  it("purges the old URL when the avatar is replaced", async () => {
    const { u, image, url } = await cachedAvatar();
    const replaced = await upload(u.access_token, jpeg(4, 4), "image/jpeg");
    expect(replaced.status).toBe(200);
    expect(await cached(url)).toBeUndefined();
    const old = await fetchRaw(url);
    expect(old.body).not.toEqual(image);
    expect(old.headers.get("content-type")).toBe("image/jpeg");
    expect((await fetchRaw(replaced.json.avatar_url)).headers.get("content-type")).toBe("image/jpeg");
  });

  it("purges the URL when the avatar is deleted", async () => {
    const { u, url } = await cachedAvatar();
    expect((await h.call("DELETE", AVATAR, undefined, { token: u.access_token })).status).toBe(204);
    expect(await cached(url)).toBeUndefined();
    expect((await fetchRaw(url)).status).toBe(404);
  });

  it("keeps one copy per host whatever the scheme, so a purge through one scheme ends the copy served over the other", async () => {
    const { u, url } = await cachedAvatar();
    // Someone asks for it over the other scheme (the requests above use plain http), then the
    // owner deletes it: the copy that request found or made must go too.
    const other = `${AVATAR_CACHE_BASE}${url}`;
    expect((await h.app.fetch(new Request(other), env)).status).toBe(200);
    expect((await h.call("DELETE", AVATAR, undefined, { token: u.access_token })).status).toBe(204);
    expect((await h.app.fetch(new Request(other), env)).status).toBe(404);
  });

  it("purges the URL when the account is deleted", async () => {
    const { u, url } = await cachedAvatar();
    const res = await h.call("DELETE", "/api/v1/me", { current_password: u.password }, { token: u.access_token });
    expect(res.status).toBe(204);
    expect(await cached(url)).toBeUndefined();
    expect((await fetchRaw(url)).status).toBe(404);
  });

  it("purges the URL when the account is deleted, even when R2 fails to list or delete its objects", async () => {
    const { u, url } = await cachedAvatar();
    const failing = {
      ...env.AVATARS,
      list: () => Promise.reject(new Error("r2 down")),
      delete: () => Promise.reject(new Error("r2 down")),
    };
    const res = await h.call(
      "DELETE",
      "/api/v1/me",
      { current_password: u.password },
      { token: u.access_token, env: { ...env, AVATARS: failing as unknown as R2Bucket } },
    );
    expect(res.status).toBe(204);
    expect(await cached(url)).toBeUndefined();
  });

  it("purges the URL when staff disable the account or mark its address unverified", async () => {
    const admin = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(admin.id).run();
    for (const patch of [{ is_active: false }, { email_verified: false }]) {
      const { u, url } = await cachedAvatar();
      const res = await h.call("PATCH", `/api/v1/admin/users/${u.id}`, patch, { token: admin.access_token });
      expect(res.status).toBe(200);
      expect(await cached(url)).toBeUndefined();
      expect((await fetchRaw(url)).status).toBe(404);
    }
  });

  it("purges the URL when a staff change or a deletion committed but its reply was lost: on the retry, or at once", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const admin = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(admin.id).run();
    const disabled = await cachedAvatar();
    const lost = probeD1(env.DB);
    lost.loseReplyWhen(/update "users" set "is_active"/i);
    const path = `/api/v1/admin/users/${disabled.u.id}`;
    expect((await h.call("PATCH", path, { is_active: false }, { token: admin.access_token, env: { ...env, DB: lost.db } })).status).toBe(
      500,
    );
    // The retry finds nothing left to change, and still makes sure the copy is gone.
    expect((await h.call("PATCH", path, { is_active: false }, { token: admin.access_token })).status).toBe(200);
    expect(await cached(disabled.url)).toBeUndefined();

    const deleted = await cachedAvatar();
    const gone = probeD1(env.DB);
    gone.loseReplyWhen(/delete from "users"/i);
    const res = await h.call(
      "DELETE",
      "/api/v1/me",
      { current_password: deleted.u.password },
      { token: deleted.u.access_token, env: { ...env, DB: gone.db } },
    );
    expect(res.status).toBe(500);
    // A retry can do nothing (401: the account is gone), so the copy went with the failed answer.
    expect(await cached(deleted.url)).toBeUndefined();
  });

  it("answers a staff change that committed as done when only the purge of the avatar's copy fails after it", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const admin = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(admin.id).run();
    const { u } = await cachedAvatar();
    const probe = probeD1(env.DB);
    // The profile read that names the copy to purge fails, after the change committed.
    probe.beforeBatch(async (statements) => {
      if (statements.some((sql) => /update "users" set "is_active"/i.test(sql))) probe.failWhen(/^select .* from "profiles" where/i);
    });
    const res = await h.call(
      "PATCH",
      `/api/v1/admin/users/${u.id}`,
      { is_active: false },
      { token: admin.access_token, env: { ...env, DB: probe.db } },
    );
    expect(res.status, res.text).toBe(200);
    expect(res.json.is_active).toBe(false);
  });

  it("serves from D1 and R2 when the cache throws, and a failing purge does not fail a replace", async () => {
    const { u, image, url } = await cachedAvatar();
    const broken = () => Promise.reject(new Error("cache is down"));
    const spies = [
      vi.spyOn(caches.default, "match").mockImplementation(broken),
      vi.spyOn(caches.default, "put").mockImplementation(broken),
      vi.spyOn(caches.default, "delete").mockImplementation(broken),
    ];
    try {
      const res = await fetchRaw(url);
      expect(res.status).toBe(200);
      expect(res.body).toEqual(image);
      const fresh = await h.signedInUser();
      const { json } = await upload(fresh.access_token, gif(2, 2), "image/gif");
      expect((await fetchRaw(json.avatar_url)).status).toBe(200);
      expect((await upload(u.access_token, jpeg(4, 4), "image/jpeg")).status).toBe(200);
      for (const spy of spies) expect(spy).toHaveBeenCalled();
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });
});

describe("the daily sweep of avatar objects nothing points at", () => {
  const sweep = () => sweepOrphanAvatars(createBackgroundDeps(env, h.clock), { maxPages: 5 });

  it("deletes a deleted account's objects at once, and another account's stray objects once past the grace", async () => {
    const u = await h.signedInUser();
    const { json } = await upload(u.access_token, await png(3, 3), "image/png");
    const current = (await avatarRow(u.id))?.avatar_key as string;
    // What failures leave behind: a replaced object whose delete failed, and a deleted account's folder.
    await env.AVATARS.put(`avatars/${u.id}/left-behind.png`, await png(2, 2));
    await env.AVATARS.put("avatars/no-such-account/old.png", await png(2, 2));
    await env.AVATARS.put("elsewhere/not-an-avatar.png", await png(2, 2));

    const first = await sweep();
    expect(first.complete).toBe(true);
    expect(await objectsOf(u.id)).toEqual([current, `avatars/${u.id}/left-behind.png`].sort());
    expect(await env.AVATARS.head("avatars/no-such-account/old.png")).toBeNull();

    // An hour later the stray object may no longer be an upload in flight: it goes; the current one stays.
    h.clock.advance(AVATAR_SWEEP_GRACE_MS + 60_000);
    await sweep();
    expect(await objectsOf(u.id)).toEqual([current]);
    expect((await fetchRaw(json.avatar_url)).status).toBe(200);
    expect(await env.AVATARS.head("elsewhere/not-an-avatar.png")).not.toBeNull();
  });

  it("stops early, deleting nothing more, when R2 fails, and keeps where the last run stopped", async () => {
    await env.CONFIG.put(AVATAR_SWEEP_POSITION_KEY, "avatars/some-account/");
    const failing = { ...env, AVATARS: { list: () => Promise.reject(new Error("r2 down")) } as unknown as R2Bucket };
    expect(await sweepOrphanAvatars(createBackgroundDeps(failing, h.clock), { maxPages: 5 })).toEqual({ deleted: 0, complete: false });
    expect(await env.CONFIG.get(AVATAR_SWEEP_POSITION_KEY)).toBe("avatars/some-account/");
    await env.CONFIG.delete(AVATAR_SWEEP_POSITION_KEY);
  });

  it("goes on where the last run stopped, so a bucket larger than one run's listings is swept in full", async () => {
    // Objects of accounts that no longer exist, sorted after every real avatar key ("~" follows
    // every character of the base64url ids), so a run that always starts at the top never reaches them.
    const gone = ["~gone-1/a.png", "~gone-2/a.png", "~gone-3/a.png"].map((key) => `avatars/${key}`);
    await Promise.all(gone.map(async (key) => env.AVATARS.put(key, await png(2, 2))));
    // Live accounts' current avatars in front of them, which every run must step past.
    for (let i = 0; i < 3; i++) await upload((await h.signedInUser()).access_token, await png(3, 3), "image/png");
    const listed = await env.AVATARS.list({ prefix: "avatars/" });
    expect(listed.truncated).toBe(false);
    const left = async () => (await Promise.all(gone.map((key) => env.AVATARS.head(key)))).filter(Boolean).length;

    // Two objects a run: the runs it takes to walk the listing once, and not one more.
    const runs = Math.ceil(listed.objects.length / 2);
    const results = [];
    for (let i = 0; i < runs; i++) results.push(await sweepOrphanAvatars(createBackgroundDeps(env, h.clock), { maxPages: 1, pageSize: 2 }));
    expect(await left()).toBe(0);
    expect(results.reduce((sum, r) => sum + r.deleted, 0)).toBeGreaterThanOrEqual(gone.length);
    // The run that reached the end says so and clears the position: the next run starts at the top.
    expect(results.some((r) => r.complete)).toBe(true);
    expect(await env.CONFIG.get(AVATAR_SWEEP_POSITION_KEY)).toBeNull();
  });

  it("starts at the top when KV cannot say where the last run stopped", async () => {
    await env.AVATARS.put("avatars/~gone-kv/a.png", await png(2, 2));
    const kvDown = {
      ...env,
      CONFIG: {
        get: () => Promise.reject(new Error("kv down")),
        put: () => Promise.reject(new Error("kv down")),
        delete: () => Promise.reject(new Error("kv down")),
      } as unknown as KVNamespace,
    };
    expect((await sweepOrphanAvatars(createBackgroundDeps(kvDown, h.clock), { maxPages: 5 })).complete).toBe(true);
    expect(await env.AVATARS.head("avatars/~gone-kv/a.png")).toBeNull();
  });
});
