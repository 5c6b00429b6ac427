// DEVELOPMENT ONLY: screenshots of every dashboard page against fake-api.mjs, to look at.
import { launchBrowser, outDir } from '../support.mjs';
const base = process.argv[2] || 'http://127.0.0.1:18099';
const out = outDir('dev');
const b = await launchBrowser();
const page = await (await b.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
page.on('pageerror', (e) => console.error('page error', e.message));
page.on('console', (m) => console.log('console', m.text()));
await page.goto(base);
await page.screenshot({ path: `${out}/login.png` });
await page.getByTestId('username').fill('admin');
await page.getByTestId('password').fill('admin');
await page.getByTestId('login').click();
await page.waitForTimeout(5000);
await page.screenshot({ path: `${out}/overview.png`, fullPage: true });
for (const r of ['clients', 'subscriptions', 'retained', 'topics', 'users', 'acl']) {
  await page.getByTestId(`nav-${r}`).click();
  await page.waitForTimeout(2500);
  await page.screenshot({ path: `${out}/${r}.png`, fullPage: true });
}
await b.close();
