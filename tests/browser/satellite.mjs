// The staff app at a second entrance. A phone pairs at the satellite's
// own address from the printed link (the code made on the primary), signs
// in and admits a ticket: the primary decides. READY is written and the
// test kills the primary. With nothing touched, the app says it is apart
// from the main box, and goes on admitting from the satellite's copy.
// Run by tests/web_app.rs.
import { chromium } from "playwright-core";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const { CA_PEM, PAIR_URL, APP, APP_HOST, FIRST_CODE, SECOND_CODE, READY, SHOTS, PROFILE } = process.env;
const ca = new X509Certificate(readFileSync(CA_PEM));
const spki = createHash("sha256").update(ca.publicKey.export({ type: "spki", format: "der" })).digest("base64");
const context = await chromium.launchPersistentContext(PROFILE, {
  executablePath: "/usr/bin/chromium",
  viewport: { width: 390, height: 844 },
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    `--ignore-certificate-errors-spki-list=${spki}`,
    `--host-resolver-rules=MAP ${APP_HOST} 127.0.0.1`,
  ],
});
const errors = [];
try {
  await context.grantPermissions(["camera"], { origin: APP });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(PAIR_URL);
  await page.getByRole("link", { name: new RegExp(`^https://${APP_HOST}:`) }).click();
  await page.waitForURL(`${APP}/**`);
  await page.getByRole("button", { name: "Pair" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  for (const d of "1111") await page.getByRole("button", { name: d, exact: true }).click();
  await page.getByRole("button", { name: "Sign in" }).click();
  const manual = page.getByRole("button", { name: "Type a code or find a guest" });
  await manual.waitFor();
  const verdict = page.locator(".verdict");
  const scan = async (code) => {
    if (await page.locator("#manual").isHidden()) await manual.click();
    await page.getByLabel("Ticket code").fill(code);
    await page.getByRole("button", { name: "Check in", exact: true }).click();
    await verdict.waitFor();
    const big = await verdict.locator(".big").textContent();
    await page.getByRole("button", { name: "Next guest" }).click({ timeout: 3000 }).catch(() => {});
    await verdict.waitFor({ state: "detached", timeout: 5000 }).catch(() => {});
    return big;
  };
  const first = await scan(FIRST_CODE);
  const apartBefore = await page.locator("#apart").count();
  writeFileSync(READY, "ready");
  // The test kills the primary now; the app notices by itself.
  const started = Date.now();
  await page.locator("#apart").waitFor({ timeout: 30000 });
  const apartMs = Date.now() - started;
  const apartText = await page.locator("#apart").textContent();
  const second = await scan(SECOND_CODE);
  const again = await scan(FIRST_CODE);
  await page.screenshot({ path: `${SHOTS}/satellite-apart.png` });
  const origin = await page.evaluate(() => location.origin);
  console.log(JSON.stringify({ first, apartBefore, apartMs, apartText, second, again, origin, errors }));
} finally {
  await context.close();
}
