// The camera benchmark's browser side (run by `cargo bench --bench
// venuebox -- camera`): Debian's headless Chromium at phone size, its fake
// camera playing a video of distinct demo tickets' QR codes with an empty
// frame between two guests, against the release binary over HTTPS
// (trusting only the box's CA), the CPU slowed RATE times (DevTools'
// Emulation.setCPUThrottlingRate; 1: not slowed). A door phone pairs and
// signs in; the door opens the camera by itself and scans continuously.
// For each ticket: from the first video frame that shows it (seen by a
// tiny probe of each frame's middle) to the first animation frame after
// its verdict is on screen.
import { chromium } from "playwright-core";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";

const { BOX, CA_PEM, PAIR_CODE, VIDEO, TICKETS, RATE } = process.env;
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
  const cdp = await context.newCDPSession(page);
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: Number(RATE) });
  await page.goto(`${BOX}/#pair=${PAIR_CODE}`);
  await page.getByRole("button", { name: "Pair" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  for (const d of "1111") await page.getByRole("button", { name: d, exact: true }).click();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForFunction(() => document.getElementById("camera")?.srcObject);
  await page.evaluate(() => {
    window.__appeared = [];
    window.__verdicts = [];
    const video = document.getElementById("camera");
    const probe = document.createElement("canvas");
    probe.width = 16;
    probe.height = 12;
    const g = probe.getContext("2d", { willReadFrequently: true });
    let code = false;
    const frame = (now) => {
      g.drawImage(video, 0, 0, 16, 12);
      const px = g.getImageData(4, 3, 8, 6).data;
      let dark = false;
      for (let i = 0; i < px.length; i += 4) if (px[i] < 200) dark = true;
      if (dark && !code) window.__appeared.push(now);
      code = dark;
      video.requestVideoFrameCallback(frame);
    };
    video.requestVideoFrameCallback(frame);
    new MutationObserver((changes) => {
      for (const c of changes) {
        for (const n of c.addedNodes) {
          if (n.classList && n.classList.contains("verdict")) {
            const big = n.querySelector(".big")?.textContent;
            requestAnimationFrame(() => window.__verdicts.push({ at: performance.now(), big }));
          }
        }
      }
    }).observe(document.getElementById("verdict-layer"), { childList: true });
  });
  const want = Number(TICKETS) - 2;
  await page.waitForFunction((n) => window.__verdicts.length >= n || window.__verdicts.some((v) => v.big !== "ADMIT"),
    want, { timeout: 180000, polling: 500 });
  const { appeared, verdicts } = await page.evaluate(() => ({ appeared: window.__appeared, verdicts: window.__verdicts }));
  // Each verdict belongs to the latest appearance before it, once.
  const ms = [];
  let used = -1;
  for (const v of verdicts) {
    if (v.big !== "ADMIT") break;
    let i = appeared.length - 1;
    while (i >= 0 && appeared[i] > v.at) i--;
    if (i > used) {
      ms.push(v.at - appeared[i]);
      used = i;
    }
  }
  console.log(JSON.stringify({ ms, verdicts: verdicts.length, appeared: appeared.length }));
} finally {
  await browser.close();
}
