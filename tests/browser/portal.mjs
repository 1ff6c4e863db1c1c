// Walks the pickup portal in Debian's Chromium, as a patient would: the link from the
// notification, the code from the SMS outbox, the message, the attachment, a reply. Each page
// is checked with axe-core and photographed. Run by tests/portal.rs, which gives:
//   PORTAL   https://portal.test:PORT (Chromium maps portal.test to 127.0.0.1)
//   LINK     /r/<id>/<secret>
//   OUTBOX   the SMS outbox file (one JSON line per SMS)
//   SHOTS    where to put the screenshots
//   STEPS    "full" (the whole walk) or "complete:<path>" (the sender's completion page)
// Prints one JSON object with what it saw; tests/portal.rs checks it.
import { chromium } from 'playwright-core';
import { auditor, launch } from './audit.mjs';
import { readFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';

const { PORTAL, LINK, OUTBOX, SHOTS, STEPS = 'full' } = process.env;
const port = new URL(PORTAL).port;

const out = { pages: {}, console: [], violations: [] };
const audit = auditor(out, SHOTS);

async function smsCount() {
  return existsSync(OUTBOX) ? readFileSync(OUTBOX, 'utf8').trim().split('\n').filter(Boolean).length : 0;
}

async function lastCode(before) {
  for (let i = 0; i < 100; i++) {
    if (await smsCount() > before) {
      const lines = readFileSync(OUTBOX, 'utf8').trim().split('\n');
      const text = JSON.parse(lines[lines.length - 1]).text;
      return text.match(/\b\d{6,8}\b/)[0];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no SMS arrived');
}

const browser = await launch(chromium, ['portal.test']);
try {
  // The test CA is not in Chromium's store; the certificate itself is checked by the Rust side.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, locale: 'nl-NL' });
  const page = await context.newPage();
  page.on('console', (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));

  if (STEPS.startsWith('complete:')) {
    await page.goto(PORTAL + STEPS.slice('complete:'.length));
    await audit(page, 'completion');
    const field = page.locator('input[name="code"]').first();
    await field.fill('ZH-4417-AB');
    await page.locator('form button[type="submit"]').first().click();
    await page.waitForLoadState();
    out.completed = await page.locator('[role="status"]').innerText().catch(() => '');
  } else {
    // 1. The link: a page and a button; nothing is sent yet.
    const before = await smsCount();
    await page.goto(PORTAL + LINK);
    await audit(page, 'landing');
    out.sms_after_get = (await smsCount()) - before;
    await page.getByRole('button', { name: 'Stuur mij de code' }).click();
    await page.waitForURL('**/code?s=sent');
    out.url_after_post = page.url().replace(PORTAL, '');
    // 2. The code, as the patient reads it from their phone.
    await audit(page, 'code');
    const code = await lastCode(before);
    await page.getByLabel('Code').fill(code);
    await page.getByRole('button', { name: 'Openen' }).click();
    await page.waitForURL('**/message');
    // 3. The message.
    await audit(page, 'message');
    out.message_text = await page.locator('main').innerText();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('a[href="/message/attachment/0"]').click(),
    ]);
    const saved = await download.path();
    out.attachment_sha256 = createHash('sha256').update(readFileSync(saved)).digest('hex');
    out.attachment_name = download.suggestedFilename();
    // 4. A reply, with a file.
    await page.getByLabel('Uw antwoord').fill('Dank u wel. browser-reply-marker');
    await page.setInputFiles('#files', { name: 'foto.txt', mimeType: 'text/plain', buffer: Buffer.from('een bijlage van de patient') });
    await page.getByRole('button', { name: 'Antwoord versturen' }).click();
    await page.waitForURL('**/message?s=replied');
    out.reply_status = await page.locator('[role="status"]').innerText();
    // 5. English, then log out.
    await page.goto(PORTAL + '/message?lang=en');
    await audit(page, 'message-en');
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForLoadState();
    await audit(page, 'logged-out');
    out.after_logout = (await page.goto(PORTAL + '/message')).status();
    // The cookies as Chromium keeps them.
    out.cookies = (await context.cookies()).map((c) => ({
      name: c.name, secure: c.secure, httpOnly: c.httpOnly, sameSite: c.sameSite,
    }));
    out.port = port;
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
