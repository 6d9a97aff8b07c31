// Nothing local needs the network, so every wrangler and miniflare run started from this repo
// gets these defaults: no wrangler usage metrics, no download of the `Request.cf` sample from
// workers.cloudflare.com (miniflare falls back to a built-in placeholder), and no banner: printing
// it is what asks registry.npmjs.org for a newer wrangler (wrangler 4.86's update check has no
// switch of its own). A value already set in the environment wins, so an operator can opt back in.
export const OFFLINE_DEFAULTS = Object.freeze({
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
});

/** `env` (default: this process's environment) with the offline defaults filled in. */
export function offlineEnv(env = process.env) {
  return { ...OFFLINE_DEFAULTS, ...env };
}
