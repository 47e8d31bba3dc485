// The camera benchmark's browser side (run by `cargo bench --bench
// venuebox -- camera`): Debian's headless Chromium at phone size, its fake
// camera playing a video of distinct demo tickets' QR codes, against the
// release binary over HTTPS (trusting only the box's CA). A door phone
// pairs, signs in and starts the camera; then, SCANS times: "Next guest"
// (the camera already sees a code, as when staff point it at the next
// ticket) until the verdict is on screen, timed inside the page from the
// click to the first animation frame after the verdict was drawn.
import { chromium } from "playwright-core";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";

const { BOX, CA_PEM, PAIR_CODE, VIDEO, SCANS } = process.env;
const ca = new X509Certificate(readFileSync(CA_PEM));
const spki = createHash("sha256").update(ca.publicKey.export({ type: "spki", format: "der" })).digest("base64");
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    `--use-file-for-fake-video-capture=${VIDEO}`,
    `--ignore-certificate-errors-spki-list=${spki}`,
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  await context.grantPermissions(["camera"], { origin: BOX });
  const page = await context.newPage();
  await page.goto(`${BOX}/#pair=${PAIR_CODE}`);
  await page.getByRole("button", { name: "Pair" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  for (const d of "1111") await page.getByRole("button", { name: d, exact: true }).click();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByLabel("Ticket code").waitFor();
  await page.evaluate(() => {
    window.__clicked = [];
    window.__shown = [];
    document.addEventListener("click", () => window.__clicked.push(performance.now()), true);
    new MutationObserver((changes) => {
      for (const c of changes) {
        for (const n of c.addedNodes) {
          if (n.classList && n.classList.contains("verdict")) {
            requestAnimationFrame(() => window.__shown.push(performance.now()));
          }
        }
      }
    }).observe(document.getElementById("main"), { childList: true, subtree: true });
  });
  const verdicts = [];
  const total = Number(SCANS) + 1;
  for (let i = 0; i < total; i++) {
    // The first round starts the camera (and loads the QR decoder).
    const button = i === 0 ? "Scan with camera" : "Next guest";
    await page.evaluate(() => (window.__clicked = []));
    await page.getByRole("button", { name: button }).click();
    await page.waitForFunction((n) => window.__shown.length >= n, i + 1, { timeout: 10000 });
    const ms = await page.evaluate((n) => window.__shown[n] - window.__clicked[0], i);
    verdicts.push({ ms, big: await page.locator(".verdict .big").textContent() });
  }
  console.log(JSON.stringify({ verdicts }));
} finally {
  await browser.close();
}
