// A minimal PNG encoder (8-bit RGB, one IDAT chunk, no dependencies): the demo avatars, the
// benchmark's seeded avatars and the e2e tests' uploads all use it.
import { deflateSync } from "node:zlib";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** A `side`×`side` PNG whose pixel (x, y) is `pixel(x, y)` → [r, g, b]. */
export function encodePng(side, pixel) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter method, no interlace
  const raw = Buffer.alloc(side * (side * 3 + 1)); // each row: filter byte 0, then RGB triples
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) raw.set(pixel(x, y), y * (side * 3 + 1) + 1 + x * 3);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

/** A round "badge" avatar: a disc of `fg` on `bg`, so each demo user is told apart at a glance. */
export function badgePng(side, bg, fg) {
  const r = side * 0.36;
  const c = (side - 1) / 2;
  return encodePng(side, (x, y) => ((x - c) ** 2 + (y - c) ** 2 <= r * r ? fg : bg));
}
