// The staff app follows a takeover. A phone pairs with the primary from
// the printed link, signs in at the door and admits a ticket; the admin
// signs in on a second tab. READY is then written and the test kills the
// primary. The admin's tab finds the box gone and offers the standby; the
// admin opens it and promotes it on its admin screen. With nothing
// touched, the door tab finds the primary gone, asks the other box, moves
// there carrying its pairing and sign-in once it is the primary, and the
// next ticket is admitted on the new primary: no pairing page, no PIN.
// Run by tests/web_app.rs.
import { existsSync, writeFileSync } from "node:fs";
import { launchPhone, pairAndSignIn } from "./phone.mjs";

const { CA_PEM, PAIR_URL, APP, APP_HOST, FIRST_CODE, SECOND_CODE, STANDBY, READY, SHOTS, PROFILE } = process.env;
const context = await launchPhone(PROFILE, CA_PEM, APP_HOST);
// Whether a pairing or sign-in screen ever shows, in any document.
await context.addInitScript(() => {
  window.__asked = [];
  new MutationObserver(() => {
    for (const h of document.querySelectorAll("h2")) {
      if (/pair|sign in/i.test(h.textContent || "") && !window.__asked.includes(h.textContent)) window.__asked.push(h.textContent);
    }
  }).observe(document, { childList: true, subtree: true });
});
const errors = [];
try {
  await context.grantPermissions(["camera"], { origin: APP });
  await context.grantPermissions(["camera"], { origin: STANDBY });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => errors.push(String(e)));
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  const { manual, scan } = await pairAndSignIn(page, PAIR_URL, APP, APP_HOST, "1111");
  const first = await scan(FIRST_CODE);
  // The admin, on a second tab of the same phone: already paired.
  const admin = await context.newPage();
  admin.on("pageerror", (e) => errors.push(`admin: ${e}`));
  await admin.goto(`${APP}/`);
  await admin.getByRole("button", { name: "Sign in" }).waitFor();
  for (const d of "5555") await admin.getByRole("button", { name: d, exact: true }).click();
  await admin.getByRole("button", { name: "Sign in" }).click();
  await admin.locator("#nav-admin").click();
  // The primary's admin screen makes standby codes (the command to run).
  await admin.getByRole("button", { name: "New standby code" }).click();
  const joinCommand = await admin.locator("#join-command").textContent();
  const before = { origin: await page.evaluate(() => location.origin), token: await page.evaluate(() => sessionStorage.getItem("venuebox.token")) };
  await page.screenshot({ path: `${SHOTS}/takeover-1-primary.png` });
  const askedBefore = await page.evaluate(() => window.__asked.slice());
  writeFileSync(READY, "ready");
  // The test kills the primary now. The admin opens the standby from the
  // link bar and promotes it; the door tab is left alone until it moves.
  const started = Date.now();
  await admin.locator("#open-standby").click({ timeout: 30000 });
  await admin.waitForURL((u) => u.origin === STANDBY, { timeout: 15000 });
  await admin.locator("#nav-admin").click();
  await admin.getByRole("button", { name: "Promote this box" }).click();
  await admin.locator("#promoted").waitFor();
  const promotedMs = Date.now() - started;
  await admin.screenshot({ path: `${SHOTS}/takeover-0-promoted.png` });
  await page.waitForURL((u) => u.origin === STANDBY, { timeout: 60000 }).catch(async (e) => {
    const known = await page.evaluate(() => localStorage.getItem("venuebox.pair")).catch(() => "?");
    throw new Error(`${e.message}\nthe app never moved; it knew ${known}; url ${page.url()}\nconsole:\n${consoleLines.join("\n")}`);
  });
  await manual.waitFor({ timeout: 30000 });
  const movedMs = Date.now() - started;
  await page.screenshot({ path: `${SHOTS}/takeover-2-standby.png` });
  const after = {
    origin: await page.evaluate(() => location.origin),
    hash: await page.evaluate(() => location.hash),
    token: await page.evaluate(() => sessionStorage.getItem("venuebox.token")),
    known: await page.evaluate(() => JSON.parse(localStorage.getItem("venuebox.pair") || "null")),
  };
  const second = await scan(SECOND_CODE);
  const again = await scan(FIRST_CODE);
  const asked = await page.evaluate(() => window.__asked.slice());
  // The new primary's dashboard shows the pair.
  await admin.locator("#nav-dashboard").click();
  const pairRole = await admin.locator("#pair-role").textContent({ timeout: 15000 });
  const pairLink = await admin.locator("#pair-link").textContent();
  await admin.screenshot({ path: `${SHOTS}/takeover-3-dashboard.png`, fullPage: true });
  console.log(JSON.stringify({ first, second, again, before, after, movedMs, promotedMs, pairRole, pairLink, joinCommand, askedBefore, asked, errors, readyExists: existsSync(READY) }));
} finally {
  await context.close();
}
