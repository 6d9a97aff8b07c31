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
