// Door staff with an event imported from pretix, in Debian's headless
// Chromium at phone size, against the real box over HTTPS trusting only
// the box's CA: pair, sign in on the keypad, then scan (type) two pretix
// tickets. Bo's product asks for a wristband: ADMIT with that note. Di's
// order is unpaid on a list that includes pending orders and asks staff
// to check ID: the screen says UNPAID with the attention mark and both
// notes; staff let Di in anyway, answer the question pretix asks at
// check-in, and Di is admitted. Prints one JSON line. Run by
// tests/pretix.rs.
import { chromium } from "playwright-core";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";

const { BOX, CA_PEM, PAIR_CODE, BO_CODE, DI_CODE, SHOTS } = process.env;
const ca = new X509Certificate(readFileSync(CA_PEM));
const spki = createHash("sha256")
  .update(ca.publicKey.export({ type: "spki", format: "der" }))
  .digest("base64");
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", `--ignore-certificate-errors-spki-list=${spki}`],
});
try {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${BOX}/#pair=${PAIR_CODE}`);
  await page.getByRole("button", { name: "Pair" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  for (const d of "1111") await page.getByRole("button", { name: d, exact: true }).click();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByLabel("Ticket code").waitFor();

  const verdict = page.locator(".verdict");
  const texts = (l) => l.evaluateAll((es) => es.map((e) => e.textContent));
  const read = async (shot) => {
    await verdict.waitFor();
    await page.screenshot({ path: `${SHOTS}/${shot}.png`, fullPage: true });
    return {
      class: await verdict.getAttribute("class"),
      big: await verdict.locator(".big").textContent(),
      attention: await verdict.locator("#attention").count() === 1,
      notes: await texts(verdict.locator(".checkin-text")),
      questions: await texts(verdict.locator("#checkin-questions label")),
    };
  };
  const scan = async (code, shot) => {
    await page.getByLabel("Ticket code").fill(code);
    await page.getByRole("button", { name: "Check in" }).click();
    return read(shot);
  };
  const bo = await scan(BO_CODE, "pretix-1-note");
  await page.getByRole("button", { name: "Next guest" }).click();
  await verdict.waitFor({ state: "detached" });
  const di = await scan(DI_CODE, "pretix-2-unpaid");
  await page.getByRole("button", { name: "Unpaid: let in anyway" }).click();
  await verdict.locator("#checkin-questions").waitFor();
  const asked = await read("pretix-3-question");
  await page.getByLabel("Wristband number").fill("W-99");
  await page.getByRole("button", { name: "Check in with these answers" }).click();
  await verdict.locator("#checkin-questions").waitFor({ state: "detached" });
  const answered = await read("pretix-4-admitted");
  console.log(JSON.stringify({ bo, di, asked, answered, errors }));
} finally {
  await browser.close();
}
