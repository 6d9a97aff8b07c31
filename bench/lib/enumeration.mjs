// Does a code endpoint answer an unknown address as fast as an existing one?
//
// The worker runs the same statements and the same crypto for both (test/features/
// code-guessing.test.ts pins the statements); this measures what a caller would see. For each
// endpoint it sends `pairs` alternating requests — existing address, unknown address — one at a
// time, each from its own client IP (per-IP limits measure nothing but themselves), and compares
// the medians. The run-to-run noise is the difference between the medians of the existing
// address's even and odd requests: two samples of the very same thing. A gap smaller than that
// noise tells an observer nothing.

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The four endpoints that take an address, with a request body for `email`. */
export const ENUMERATION_ENDPOINTS = [
  { name: "POST /auth/otp", path: "/api/v1/auth/otp", body: (email) => ({ email, purpose: "login" }) },
  { name: "POST /auth/login/otp", path: "/api/v1/auth/login/otp", body: (email) => ({ email, code: "123456" }) },
  {
    name: "POST /auth/verify-email",
    path: "/api/v1/auth/verify-email",
    body: (email) => ({ email, code: "123456", password: "enumeration-bench-pass-1" }),
  },
  {
    name: "POST /auth/password/reset",
    path: "/api/v1/auth/password/reset",
    body: (email) => ({ email, code: "123456", new_password: "enumeration-bench-pass-1" }),
  },
];

/**
 * Measures every endpoint; `knownEmail(i)` gives an existing, verified address, `nextIp()` a
 * fresh client IP. Returns one row per endpoint with medians in microseconds.
 */
export async function measureEnumeration({ origin, knownEmail, nextIp, pairs = 40 }) {
  const rows = [];
  for (const endpoint of ENUMERATION_ENDPOINTS) {
    const known = [];
    const unknown = [];
    const statuses = new Set();
    const time = async (email) => {
      const t0 = process.hrtime.bigint();
      const res = await fetch(`${origin}${endpoint.path}`, {
        method: "POST",
        headers: { "content-type": "application/json", "cf-connecting-ip": nextIp() },
        body: JSON.stringify(endpoint.body(email)),
      });
      await res.arrayBuffer();
      statuses.add(res.status);
      return Number(process.hrtime.bigint() - t0) / 1000;
    };
    // A few unmeasured requests first, so neither side pays for warming the isolate.
    for (let i = 0; i < 3; i++) await time(knownEmail(i));
    for (let i = 0; i < pairs; i++) {
      known.push(await time(knownEmail(i)));
      unknown.push(await time(`enumeration-${Date.now()}-${i}@example.com`));
    }
    const knownMedian = median(known);
    const unknownMedian = median(unknown);
    const noise = Math.abs(median(known.filter((_, i) => i % 2 === 0)) - median(known.filter((_, i) => i % 2 === 1)));
    rows.push({
      endpoint: endpoint.name,
      statuses: [...statuses].sort(),
      knownUs: Math.round(knownMedian),
      unknownUs: Math.round(unknownMedian),
      gapUs: Math.round(unknownMedian - knownMedian),
      noiseUs: Math.round(noise),
      withinNoise: Math.abs(unknownMedian - knownMedian) <= noise,
    });
  }
  return rows;
}
