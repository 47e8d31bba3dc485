// The staff app at a second entrance. A phone pairs at the satellite's
// own address from the printed link (the code made on the primary), signs
// in and admits a ticket: the primary decides. READY is written and the
// test kills the primary. With nothing touched, the app says it is apart
// from the main box, and goes on admitting from the satellite's copy.
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
  const { scan } = await pairAndSignIn(page, PAIR_URL, APP, APP_HOST, "1111");
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
