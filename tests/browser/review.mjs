// Walks the reviewers' web interface in Debian's Chromium, as a compliance reviewer would:
// log in with password and TOTP code, the list, filter, an item (masked), show the original
// with a reason, release it with a reason. Each page is checked with axe-core and photographed.
// Run by tests/review_web.rs, which gives:
//   WEB       https://review.test:PORT (Chromium maps review.test to 127.0.0.1)
//   NAME, PASSWORD, CODE   the account and a current TOTP code
//   ITEM      the id of a held item
//   SENDER    the path of the link in that item's hold notice (the sender's page)
//   SHOTS     where to put the screenshots
// Prints one JSON object with what it saw; tests/review_web.rs checks it.
import { chromium } from 'playwright-core';
import { auditor, launch } from './audit.mjs';

const { WEB, NAME, PASSWORD, CODE, ITEM, SENDER, SHOTS } = process.env;

const out = { pages: {}, console: [], violations: [] };
const audit = auditor(out, SHOTS, 'review-');

const browser = await launch(chromium, ['review.test']);
try {
  // The test CA is not in Chromium's store; the certificate itself is checked by the Rust side.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'nl-NL' });
  const page = await context.newPage();
  page.on('console', (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));

  // 1. Anonymous: the login.
  await page.goto(WEB + '/quarantine');
  out.anonymous_url = page.url().replace(WEB, '');
  await audit(page, 'login');
  await page.getByLabel('Gebruikersnaam').fill(NAME);
  await page.getByLabel('Wachtwoord').fill(PASSWORD);
  await page.getByLabel('Code uit uw authenticator-app').fill(CODE);
  await page.getByRole('button', { name: 'Aanmelden' }).click();
  await page.waitForURL('**/quarantine');
  // 2. The list, then filtered.
  await audit(page, 'list');
  await page.getByLabel('Gevonden gegeven').selectOption('bsn');
  await page.getByRole('button', { name: 'Filteren' }).click();
  await page.waitForURL('**/quarantine?**');
  out.filtered_url = page.url().replace(WEB, '');
  await audit(page, 'list-filtered');
  // 3. The item, masked.
  await page.locator(`a[href="/quarantine/${ITEM}"]`).click();
  await page.waitForURL(`**/quarantine/${ITEM}`);
  await audit(page, 'item');
  out.item_text = await page.locator('main').innerText();
  // The sender's page, from the link in the hold notice (no login).
  const sender = await context.browser().newContext({ ignoreHTTPSErrors: true, locale: 'nl-NL' });
  const senderPage = await sender.newPage();
  await senderPage.goto(WEB + SENDER);
  await audit(senderPage, 'sender');
  out.sender_text = await senderPage.locator('main').innerText();
  await sender.close();
  // 4. The original, with a reason.
  await page.locator('#reason-reveal').fill('controle ontvanger');
  await page.getByRole('button', { name: 'Origineel tonen' }).click();
  await page.waitForURL(`**/quarantine/${ITEM}/reveal`);
  await audit(page, 'reveal');
  out.reveal_text = await page.locator('main').innerText();
  // 5. Release, with a reason.
  await page.goto(WEB + `/quarantine/${ITEM}`);
  await page.locator('#reason-release').fill('patiënt vroeg erom');
  await page.getByRole('button', { name: 'Vrijgeven' }).click();
  await page.waitForURL(`**/quarantine/${ITEM}/release`);
  await audit(page, 'released');
  out.release_text = await page.locator('main').innerText();
  // 6. The audit log, searched; then English.
  await page.goto(WEB + `/audit?transaction=${ITEM}`);
  await audit(page, 'audit');
  out.audit_text = await page.locator('main').innerText();
  await page.goto(WEB + '/quarantine?lang=en');
  await audit(page, 'list-en');
  out.cookies = (await context.cookies()).map((c) => ({
    name: c.name, secure: c.secure, httpOnly: c.httpOnly, sameSite: c.sameSite,
  }));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
