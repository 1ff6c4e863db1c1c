// What every browser walk shares: Debian's Chromium started headless and kept off the network
// (the test host names mapped to 127.0.0.1), and on each page axe-core's accessibility check (injected through
// the DevTools protocol, so the page's CSP, which allows no script, stays as it is) and a
// screenshot. `out` collects the violations and each page's title and language.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export function auditor(out, shots, prefix = '') {
  return async function audit(page, name) {
    await page.evaluate(axeSource);
    const result = await page.evaluate(() =>
      // eslint-disable-next-line no-undef
      axe.run(document, { resultTypes: ['violations'] }));
    for (const v of result.violations) {
      out.violations.push({ page: name, id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length });
    }
    await page.screenshot({ path: join(shots, `${prefix}${name}.png`), fullPage: true });
    out.pages[name] = { title: await page.title(), lang: await page.getAttribute('html', 'lang') };
  };
}

export async function launch(chromium, hosts) {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
      '--disable-gpu', '--no-first-run', '--disable-sync',
      `--host-resolver-rules=${hosts.map((h) => `MAP ${h} 127.0.0.1`).join(', ')}`,
    ],
  });
}
