/**
 * Decides what an uploaded avatar is from its bytes alone — never from the declared Content-Type
 * or a file name — and reads its pixel size from the header, so a decompression bomb (a tiny file
 * announcing a huge canvas) is refused before any client tries to decode it. Pure: no I/O.
 *
 * Each format is walked to its end marker (PNG IEND, JPEG EOI, GIF trailer, WebP RIFF size):
 * bytes after the image are how polyglots (image + HTML/ZIP/script) are usually built, so they are
 * refused, and so is markup anywhere in the file.
 */

export const AVATAR_FORMATS = {
  png: { contentType: "image/png", extension: "png" },
  jpeg: { contentType: "image/jpeg", extension: "jpg" },
  gif: { contentType: "image/gif", extension: "gif" },
  webp: { contentType: "image/webp", extension: "webp" },
} as const;
export type AvatarFormat = keyof typeof AVATAR_FORMATS;

/** Issue 4's upload limit: small enough to buffer in a Worker and cheap to serve. */
export const AVATAR_MAX_BYTES = 2 * 1024 * 1024;
/** Per side: 4096² RGBA is 64 MiB decoded, the most a client should ever be asked to allocate. */
export const AVATAR_MAX_SIDE = 4096;
/**
 * Canvas pixels over all frames of an animation: each frame is a whole canvas a viewer's browser
 * composites, and 2 MiB holds tens of thousands of empty frames. 16 frames at the largest canvas,
 * about a thousand at 512².
 */
const AVATAR_MAX_FULL_FRAMES = 16;
export const AVATAR_MAX_ANIMATION_PIXELS = AVATAR_MAX_FULL_FRAMES * AVATAR_MAX_SIDE * AVATAR_MAX_SIDE;
/**
 * Scans of a JPEG: a decoder makes one pass over the whole image per scan, and 2 MiB holds
 * hundreds of thousands of one-byte scans (minutes of decoding for each viewer). Encoders write
 * about 10 (libjpeg's progressive script); 100 is the cap libjpeg-turbo suggests applications set
 * (its `-maxscans` option, from its advice on progressive-JPEG denial of service).
 */
export const AVATAR_MAX_JPEG_SCANS = 100;

export interface ImageInfo {
  format: AvatarFormat;
  contentType: string;
  extension: string;
  width: number;
  height: number;
}

export type InspectResult =
  | { ok: true; image: ImageInfo }
  /** `unsupported` and `polyglot` are 415s; `corrupt` and `dimensions` are 422s. */
  | { ok: false; reason: "unsupported" | "polyglot" | "corrupt" | "dimensions"; detail: string };

/** What a format walker found: the canvas size (if the header could be read) and how the file ends. */
interface Walk {
  width?: number;
  height?: number;
  /** Animation frames counted (GIF image blocks, APNG fcTL, WebP ANMF); a still image has none or one. */
  frames?: number;
  /** JPEG scans (SOS segments). */
  scans?: number;
  end: "complete" | "truncated" | "trailing" | "malformed";
}

const u16be = (b: Uint8Array, i: number) => ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
const u16le = (b: Uint8Array, i: number) => (b[i] ?? 0) | ((b[i + 1] ?? 0) << 8);
const u24le = (b: Uint8Array, i: number) => u16le(b, i) + (b[i + 2] ?? 0) * 0x10000;
const u32be = (b: Uint8Array, i: number) => u16be(b, i) * 0x10000 + u16be(b, i + 2);
const u32le = (b: Uint8Array, i: number) => u16le(b, i) + u16le(b, i + 2) * 0x10000;
const ascii = (b: Uint8Array, i: number, n: number) => String.fromCharCode(...b.subarray(i, i + n));

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function detectFormat(b: Uint8Array): AvatarFormat | null {
  if (PNG_SIGNATURE.every((byte, i) => b[i] === byte)) return "png";
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  const head = ascii(b, 0, 6);
  if (head === "GIF87a" || head === "GIF89a") return "gif";
  if (ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP") return "webp";
  return null;
}

/** PNG: IHDR must be the first chunk; chunks are walked to IEND, which must end the file. */
function walkPng(b: Uint8Array): Walk {
  if (b.length < 8 + 8 + 13 || ascii(b, 12, 4) !== "IHDR" || u32be(b, 8) !== 13) return { end: "malformed" };
  const walk: Walk = { width: u32be(b, 16), height: u32be(b, 20), end: "truncated" };
  let offset = 8;
  let sawData = false;
  while (offset + 12 <= b.length) {
    const length = u32be(b, offset);
    const type = ascii(b, offset + 4, 4);
    if (!/^[A-Za-z]{4}$/.test(type)) return { ...walk, end: "malformed" };
    const next = offset + 12 + length;
    if (next > b.length) return walk;
    if (type === "IDAT") sawData = true;
    if (type === "fcTL") walk.frames = (walk.frames ?? 0) + 1;
    if (type === "IEND") return { ...walk, end: !sawData ? "malformed" : next === b.length ? "complete" : "trailing" };
    offset = next;
  }
  return walk;
}

/** JPEG: marker segments are walked (through entropy-coded scans) to EOI, which must end the file. */
function walkJpeg(b: Uint8Array): Walk {
  const walk: Walk = { end: "truncated" };
  let offset = 2;
  while (offset < b.length) {
    if (b[offset] !== 0xff) return { ...walk, end: "malformed" };
    while (b[offset] === 0xff) offset++; // fill bytes
    const marker = b[offset++];
    if (marker === undefined) return walk;
    if (marker === 0xd9) return { ...walk, end: offset === b.length ? "complete" : "trailing" };
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue; // no length field
    if (offset + 2 > b.length) return walk;
    const length = u16be(b, offset);
    if (length < 2) return { ...walk, end: "malformed" };
    // SOF0–SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc && walk.width === undefined) {
      if (offset + 7 > b.length) return walk;
      walk.height = u16be(b, offset + 3);
      walk.width = u16be(b, offset + 5);
    }
    offset += length;
    if (marker === 0xda) {
      walk.scans = (walk.scans ?? 0) + 1;
      // Entropy-coded data runs to the next marker that is neither stuffing (FF 00) nor a restart (FF D0–D7).
      while (offset + 1 < b.length) {
        const next = b[offset + 1] ?? 0;
        if (b[offset] === 0xff && next !== 0x00 && !(next >= 0xd0 && next <= 0xd7) && next !== 0xff) break;
        offset++;
      }
      if (offset + 1 >= b.length) return walk;
    }
  }
  return walk;
}

/** GIF: extension and image blocks (with their sub-blocks) are walked to the trailer byte. */
function walkGif(b: Uint8Array): Walk {
  if (b.length < 13) return { end: "truncated" };
  const walk: Walk = { width: u16le(b, 6), height: u16le(b, 8), end: "truncated" };
  const screen = { width: walk.width ?? 0, height: walk.height ?? 0 };
  const colorTable = (flags: number) => (flags & 0x80 ? 3 * 2 ** ((flags & 0x07) + 1) : 0);
  let offset = 13 + colorTable(b[10] ?? 0);
  const skipSubBlocks = () => {
    while (offset < b.length) {
      const size = b[offset] ?? 0;
      offset += 1 + size;
      if (size === 0) return true;
    }
    return false;
  };
  while (offset < b.length) {
    const block = b[offset];
    if (block === 0x3b) return { ...walk, end: offset + 1 === b.length ? "complete" : "trailing" };
    if (block === 0x21) {
      offset += 2; // introducer + label
      if (!skipSubBlocks()) return walk;
    } else if (block === 0x2c) {
      if (offset + 10 > b.length) return walk;
      // A frame larger than the logical screen grows the canvas in browsers: it counts as the size.
      walk.width = Math.max(screen.width, u16le(b, offset + 1) + u16le(b, offset + 5));
      walk.height = Math.max(screen.height, u16le(b, offset + 3) + u16le(b, offset + 7));
      screen.width = walk.width;
      screen.height = walk.height;
      walk.frames = (walk.frames ?? 0) + 1;
      offset += 10 + colorTable(b[offset + 9] ?? 0) + 1; // descriptor, local table, LZW code size
      if (!skipSubBlocks()) return walk;
    } else {
      return { ...walk, end: "malformed" };
    }
  }
  return walk;
}

/** WebP: the size comes from the VP8, VP8L or VP8X chunk; the RIFF length must be the file length. */
function walkWebp(b: Uint8Array): Walk {
  if (b.length < 30) return { end: "truncated" };
  const walk: Walk = { end: "complete" };
  const chunk = ascii(b, 12, 4);
  const data = 20;
  if (chunk === "VP8 ") {
    if (b[data + 3] !== 0x9d || b[data + 4] !== 0x01 || b[data + 5] !== 0x2a) return { end: "malformed" };
    walk.width = u16le(b, data + 6) & 0x3fff;
    walk.height = u16le(b, data + 8) & 0x3fff;
  } else if (chunk === "VP8L") {
    if (b[data] !== 0x2f) return { end: "malformed" };
    const bits = u32le(b, data + 1);
    walk.width = (bits & 0x3fff) + 1;
    walk.height = ((bits >>> 14) & 0x3fff) + 1;
  } else if (chunk === "VP8X") {
    walk.width = u24le(b, data + 4) + 1;
    walk.height = u24le(b, data + 7) + 1;
  } else {
    return { end: "malformed" };
  }
  const riffEnd = 8 + u32le(b, 4);
  if (riffEnd > b.length) return { ...walk, end: "truncated" };
  let offset = 12;
  while (offset + 8 <= riffEnd) {
    if (ascii(b, offset, 4) === "ANMF") walk.frames = (walk.frames ?? 0) + 1;
    offset += 8 + u32le(b, offset + 4);
    offset += offset % 2; // chunks are padded to an even length
  }
  // Some encoders drop the last chunk's pad byte; anything else not filling the RIFF is malformed.
  if (offset !== riffEnd && offset !== riffEnd + 1) return { ...walk, end: "malformed" };
  if (riffEnd < b.length) return { ...walk, end: "trailing" };
  return walk;
}

const WALKERS: Record<AvatarFormat, (b: Uint8Array) => Walk> = { png: walkPng, jpeg: walkJpeg, gif: walkGif, webp: walkWebp };

/**
 * Markup that makes a file something a browser could run or render as a page: the tags that
 * script, style, frame, redirect or post, and event-handler attributes. Each needle is a tag name
 * followed by a delimiter, or long enough on its own (`on` + at least four letters after
 * whitespace, a `/` or a closing quote, each of which HTML takes before an attribute), so chance
 * matches inside compressed pixel data stay rare (about 1e-4 for a 2 MiB file, nearly all of it
 * `<img`), while XMP/EXIF metadata (XML) does not trip them.
 */
const MARKUP =
  /<(?:script|html|svg|body|iframe|object|embed|style|meta|form|link|base|img|!doctype|\?xml-stylesheet)[\s/>]|javascript:|[\s/"']on[a-z]{4,}\s*=/i;

/** Scans in windows (overlapping by more than the longest needle) to keep each string small. */
function containsMarkup(b: Uint8Array): boolean {
  const WINDOW = 16 * 1024;
  const OVERLAP = 32;
  for (let start = 0; start < b.length; start += WINDOW - OVERLAP) {
    // One char per byte (latin1-style), so the regex sees raw bytes without any decoding.
    if (MARKUP.test(String.fromCharCode(...b.subarray(start, start + WINDOW)))) return true;
    if (start + WINDOW >= b.length) break;
  }
  return false;
}

/** Inspects an upload: format by magic bytes, canvas size, completeness, no polyglot payload. */
export function inspectImage(bytes: Uint8Array): InspectResult {
  const format = detectFormat(bytes);
  if (!format) return { ok: false, reason: "unsupported", detail: "Upload a PNG, JPEG, WebP or GIF image." };
  const walk = WALKERS[format](bytes);
  const { width, height } = walk;
  if (width === undefined || height === undefined) {
    return { ok: false, reason: "corrupt", detail: `The ${format.toUpperCase()} header cannot be read.` };
  }
  if (width === 0 || height === 0 || width > AVATAR_MAX_SIDE || height > AVATAR_MAX_SIDE) {
    return {
      ok: false,
      reason: "dimensions",
      detail: `The image is ${width}×${height} pixels; each side must be 1 to ${AVATAR_MAX_SIDE}.`,
    };
  }
  const frames = Math.max(1, walk.frames ?? 1);
  if (frames * width * height > AVATAR_MAX_ANIMATION_PIXELS) {
    return {
      ok: false,
      reason: "dimensions",
      detail: `The animation has ${frames} frames of ${width}×${height} pixels; all frames together may hold at most ${AVATAR_MAX_ANIMATION_PIXELS} pixels (${AVATAR_MAX_FULL_FRAMES} frames of ${AVATAR_MAX_SIDE}×${AVATAR_MAX_SIDE}).`,
    };
  }
  if ((walk.scans ?? 0) > AVATAR_MAX_JPEG_SCANS) {
    return {
      ok: false,
      reason: "dimensions",
      detail: `The JPEG has ${walk.scans} scans; at most ${AVATAR_MAX_JPEG_SCANS} are allowed (encoders write about 10).`,
    };
  }
  if (walk.end === "truncated" || walk.end === "malformed") {
    return { ok: false, reason: "corrupt", detail: `The ${format.toUpperCase()} file is ${walk.end}.` };
  }
  if (walk.end === "trailing" || containsMarkup(bytes)) {
    return { ok: false, reason: "polyglot", detail: "The file carries data besides the image; upload a plain image." };
  }
  return { ok: true, image: { format, ...AVATAR_FORMATS[format], width, height } };
}
