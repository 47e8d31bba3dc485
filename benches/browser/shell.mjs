// The shell benchmark's browser side (`cargo bench --bench venuebox --
// shell`): a phone's first visit to the box, in Debian's headless
// Chromium with the CPU slowed 4× and a slow venue Wi-Fi (DevTools:
// 1.6 Mbit/s down, 750 kbit/s up, 150 ms round trip), no cache, against
// the release binary over HTTPS. Prints the bytes that crossed the network
// (compressed, headers included) until the pairing screen can be used, and
// the time from the navigation to that moment; then the same with the
// app's files already cached (a second visit).
import { chromium } from "playwright-core";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";

const { BOX, CA_PEM } = process.env;
const ca = new X509Certificate(readFileSync(CA_PEM));
const spki = createHash("sha256").update(ca.publicKey.export({ type: "spki", format: "der" })).digest("base64");
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", `--ignore-certificate-errors-spki-list=${spki}`],
});
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: 4 });
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 150, downloadThroughput: (1.6 * 1024 * 1024) / 8, uploadThroughput: (750 * 1024) / 8,
  });
  const visit = async () => {
    const files = new Map();
    const onDone = (e) => files.set(e.requestId, e.encodedDataLength);
    cdp.on("Network.loadingFinished", onDone);
    const start = Date.now();
    await page.goto(`${BOX}/`);
    await page.getByRole("button", { name: "Pair" }).waitFor();
    const ms = Date.now() - start;
    await page.waitForTimeout(300);
    cdp.off("Network.loadingFinished", onDone);
    return { ms, bytes: [...files.values()].reduce((a, b) => a + b, 0), requests: files.size };
  };
  const first = await visit();
  const again = await visit();
  console.log(JSON.stringify({ first, again }));
} finally {
  await browser.close();
}
