// The staff app at a second entrance. A phone pairs at the satellite's
// own address from the printed link (the code made on the primary), signs
// in and admits a ticket: the primary decides. READY is written and the
// test kills the primary. With nothing touched, the app says it is apart
// from the main box, goes on admitting from the satellite's copy, and
// sells a walk-up ticket out of the satellite's escrow of seats.
// Run by tests/web_app.rs.
import { writeFileSync } from "node:fs";
import { launchPhone, pairAndSignIn } from "./phone.mjs";

const { CA_PEM, PAIR_URL, APP, APP_HOST, FIRST_CODE, SECOND_CODE, READY, SHOTS, PROFILE } = process.env;
const context = await launchPhone(PROFILE, CA_PEM, APP_HOST);
const errors = [];
try {
  await context.grantPermissions(["camera"], { origin: APP });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => errors.push(String(e)));
  const { scan } = await pairAndSignIn(page, PAIR_URL, APP, APP_HOST, "4444");
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
  // The merch table sells a walk-up ticket apart: a seat of its escrow.
  await page.getByRole("button", { name: "Merch" }).click();
  await page.getByRole("tab", { name: "Walk-up ticket" }).click();
  await page.getByLabel("Cash given for the ticket").fill("30");
  await page.getByRole("button", { name: "Sell ticket for cash" }).click();
  await page.locator("#walkup-qr").waitFor({ timeout: 15000 });
  const walkup = {
    change: await page.locator("#walkup-change").textContent(),
    apart: await page.locator("#apart").isVisible(),
  };
  await page.screenshot({ path: `${SHOTS}/satellite-apart-walkup.png`, fullPage: true });
  const origin = await page.evaluate(() => location.origin);
  console.log(JSON.stringify({ first, apartBefore, apartMs, apartText, second, again, walkup, origin, errors }));
} finally {
  await context.close();
}
