// Exits 0 when a Chromium for the website tests starts on this machine, 1 (with the reason) when
// none does. .ci/run uses it to decide whether Debian's chromium must be installed.
import { launchBrowser } from "./lib/browser.mjs";

try {
  const browser = await launchBrowser();
  console.log(`chromium ${browser.version()} starts`);
  await browser.close();
} catch (error) {
  console.error(String(error instanceof Error ? error.message : error));
  process.exit(1);
}
