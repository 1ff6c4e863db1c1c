// Logs in to the reviewers' web interface through the OpenID provider (tests/browser/idp.mjs)
// in Debian's Chromium: the login page's provider button, the provider's own login form and
// consent, back to Sluis. Requests to anything but the two test hosts are aborted (the
// provider's development pages ask for a web font). Run by tests/review_web.rs, which gives:
//   WEB      https://review.test:PORT
//   ACCOUNT  the provider's account to log in as
//   SHOTS    where to put the screenshots
// Prints one JSON object with what it saw.
import { chromium } from 'playwright-core';
import { auditor, launch } from './audit.mjs';

const { WEB, ACCOUNT, SHOTS } = process.env;
const out = { pages: {}, console: [], violations: [], blocked: [] };
const audit = auditor(out, SHOTS, `oidc-${ACCOUNT}-`);

const browser = await launch(chromium, ['review.test']);
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'nl-NL' });
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === 'review.test' || host === 'localhost') return route.continue();
    out.blocked.push(host);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));

  await page.goto(WEB + '/login');
  await audit(page, 'login');
  await page.getByRole('link', { name: /Aanmelden met/ }).click();
  await page.waitForLoadState();
  out.provider_url = page.url();
  if (!page.url().startsWith('https://localhost')) {
    // Sluis could not send us there: say what it said.
    out.final_url = page.url().replace(WEB, '');
    out.final_text = await page.locator('body').innerText().catch(() => '');
    console.log(JSON.stringify(out));
    await browser.close();
    process.exit(0);
  }
  await page.locator('input[name="login"]').fill(ACCOUNT);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
  await page.waitForLoadState();
  if (page.url().startsWith('https://localhost')) {
    // Consent.
    out.consent_url = page.url();
    out.consent_text = await page.locator('body').innerText();
    await page.locator('button[type="submit"]').click({ timeout: 5000 });
  }
  await page.waitForURL(`${WEB}/**`);
  await page.waitForLoadState('networkidle');
  // The callback page moves on to the list by itself when the login holds.
  if (!page.url().endsWith('/quarantine')) {
    await page.waitForURL(`${WEB}/quarantine`, { timeout: 3000 }).catch(() => {});
  }
  out.final_url = page.url().replace(WEB, '');
  out.final_text = await page.locator('main').innerText().catch(() => '');
  await audit(page, 'after');
  out.cookies = (await context.cookies(WEB)).map((c) => ({
    name: c.name, secure: c.secure, httpOnly: c.httpOnly, sameSite: c.sameSite,
  }));
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
