// What the browser scripts share: a phone (Chromium, trusting the box CA
// by its key, the app's name mapped to loopback), and pairing from the
// printed link, signing in with a PIN and scanning by hand in the app.
import { chromium } from "playwright-core";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";

/** A phone's browser that trusts the box CA at `caPem` and finds `appHost` on loopback. */
export async function launchPhone(profile, caPem, appHost) {
  const ca = new X509Certificate(readFileSync(caPem));
  const spki = createHash("sha256").update(ca.publicKey.export({ type: "spki", format: "der" })).digest("base64");
  return chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    viewport: { width: 390, height: 844 },
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      `--ignore-certificate-errors-spki-list=${spki}`,
      `--host-resolver-rules=MAP ${appHost} 127.0.0.1`,
    ],
  });
}

/** Pairs `page` from the printed link, signs in with `pin`; returns the hand scan. */
export async function pairAndSignIn(page, pairUrl, app, appHost, pin) {
  await page.goto(pairUrl);
  await page.getByRole("link", { name: new RegExp(`^https://${appHost}:`) }).click();
  await page.waitForURL(`${app}/**`);
  await page.getByRole("button", { name: "Pair" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  for (const d of pin) await page.getByRole("button", { name: d, exact: true }).click();
  await page.getByRole("button", { name: "Sign in" }).click();
  const manual = page.getByRole("button", { name: "Type a code or find a guest" });
  await manual.waitFor();
  const verdict = page.locator(".verdict");
  /** Types `code`, checks it in; the verdict's big word. */
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
  return { manual, scan };
}
