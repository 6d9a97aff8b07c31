/**
 * Client addresses as stored with sessions and activity. `CF-Connecting-IP` is set by
 * Cloudflare, but anything can reach a worker run elsewhere (wrangler dev, a misrouted origin),
 * so the header is kept only when it is an IPv4 or IPv6 address, in canonical form; otherwise
 * the request has no known address (null) and per-IP limits count it as "unknown".
 */

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;

/** The address in canonical form, or null when `text` is not an IPv4 or IPv6 address. */
export function parseIp(text: string | undefined | null): string | null {
  if (!text) return null;
  const candidate = text.trim();
  if (IPV4.test(candidate)) return candidate;
  // IPv6 (RFC 4291 §2.2, with an embedded IPv4 tail): the URL parser validates and canonicalises
  // it (RFC 5952 lower case, zeros compressed). Zone ids ("%eth0") and brackets are refused.
  if (!candidate.includes(":") || !IPV6_CHARS.test(candidate)) return null;
  try {
    const host = new URL(`http://[${candidate}]/`).hostname;
    return host.slice(1, -1);
  } catch {
    return null;
  }
}

/** The eight 16-bit groups of a canonical IPv6 address (as `parseIp` gives it), as numbers. */
function ipv6Groups(address: string): number[] {
  const [head = "", tail] = address.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  return [...front, ...Array(8 - front.length - back.length).fill(0), ...back];
}

/**
 * What per-client limits count under: an IPv4 address as it is; an IPv6 address by its /64, the
 * smallest block a subscriber or a server is normally given (RFC 6177), so stepping through the
 * addresses of one's own /64 does not multiply the allowance; an IPv4-mapped IPv6 address as its
 * IPv4 address; "unknown" for a request with no known address (they share one allowance).
 */
export function clientKey(ip: string | null): string {
  if (ip === null) return "unknown";
  if (!ip.includes(":")) return ip;
  const g = ipv6Groups(ip);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return [(g[6] ?? 0) >> 8, (g[6] ?? 0) & 255, (g[7] ?? 0) >> 8, (g[7] ?? 0) & 255].join(".");
  }
  return `${g
    .slice(0, 4)
    .map((x) => x.toString(16))
    .join(":")}::/64`;
}
