// Drives the staff app in Debian's headless Chromium (playwright-core),
// at phone size, against the real box over HTTPS trusting only the box's
// CA: pair with a code from the link, sign in on the keypad, check a
// ticket in by typing its code (admit), then again (refused, with the
// first admission named). Screenshots go to SHOTS. Run by tests/web_app.rs.
import { chromium } from "playwright-core";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";

const { BOX, CA_PEM, PAIR_CODE, TICKET_CODE, SHOTS } = process.env;
const ca = new X509Certificate(readFileSync(CA_PEM));
const spki = createHash("sha256")
  .update(ca.publicKey.export({ type: "spki", format: "der" }))
  .digest("base64");

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // Trust the box's own CA and nothing else extra.
    `--ignore-certificate-errors-spki-list=${spki}`,
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${BOX}/#code=${PAIR_CODE}`);
  await page.screenshot({ path: `${SHOTS}/1-pair.png` });
  await page.getByRole("button", { name: "Pair" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  await page.screenshot({ path: `${SHOTS}/2-sign-in.png` });
  for (const d of "1111") await page.getByRole("button", { name: d, exact: true }).click();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByLabel("Ticket code").waitFor();
  await page.screenshot({ path: `${SHOTS}/3-door.png` });

  const scan = async (shot) => {
    await page.getByLabel("Ticket code").fill(TICKET_CODE);
    await page.getByRole("button", { name: "Check in" }).click();
    const verdict = page.locator(".verdict");
    await verdict.waitFor();
    await page.screenshot({ path: `${SHOTS}/${shot}.png` });
    const result = {
      class: await verdict.getAttribute("class"),
      big: await verdict.locator(".big").textContent(),
      message: await verdict.locator(".message").textContent(),
      holder: (await verdict.locator(".holder").count()) ? await verdict.locator(".holder").textContent() : null,
      status: await page.locator("#status").textContent(),
    };
    await page.getByRole("button", { name: "Next guest" }).click();
    await verdict.waitFor({ state: "detached" });
    return result;
  };
  const first = await scan("4-admit");
  const second = await scan("5-already-in");
  console.log(JSON.stringify({ first, second, who: await page.locator("#who").textContent(), errors }));
} finally {
  await browser.close();
}
