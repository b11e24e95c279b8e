// Screenshots of each page for the README (docs/screenshots/), taken from a
// running operator with some tenants and workloads in it:
//
//   NIMBUS_URL=http://127.0.0.1:8080 NIMBUS_ADMIN_PASSWORD=... [TENANT_KEY=nmbk_...] \
//     node e2e/readme-shots.mjs
//
// It stays on the Billing page for BILLING_WAIT seconds (default 150) so that
// the usage chart has a few billing periods to draw and the Overview and
// Tenants pages have two usage samples to measure each tenant's rate from.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const OUT = resolve(process.env.OUT ?? join(here, '..', '..', 'docs', 'screenshots'));
const BASE = process.env.NIMBUS_URL;
mkdirSync(OUT, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const nav = async (label) => {
  const menu = page.getByRole('button', { name: 'Menu' });
  if (await menu.isVisible()) await menu.click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await page.waitForTimeout(1500);
};
const shot = (name, fullPage = false) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage });

await page.goto(BASE + '/');
await page.getByRole('heading', { name: 'Sign in' }).waitFor();
await shot('login');
await page.getByLabel('Password').fill(process.env.NIMBUS_ADMIN_PASSWORD);
await page.getByRole('button', { name: 'Sign in' }).click();
await page.getByTestId('who').waitFor();
await nav('Billing');
await page.waitForTimeout(Number(process.env.BILLING_WAIT ?? 150) * 1000);
await shot('billing', true);
await nav('Overview');
await shot('overview');
await nav('Tenants');
await shot('tenants');
await nav('Workloads');
await page.locator('tr[data-workload="web"]').first().getByRole('button', { name: 'web', exact: true }).click();
await page.waitForTimeout(500);
await shot('workloads', true);
await nav('Scheduler');
await shot('scheduler', true);
await page.setViewportSize({ width: 390, height: 760 });
await nav('Overview');
await shot('overview-narrow');
if (process.env.TENANT_KEY) {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Tenant API key').check();
  await page.getByLabel('API key', { exact: true }).fill(process.env.TENANT_KEY);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('who').waitFor();
  await page.waitForTimeout(1500);
  await shot('tenant-overview');
}
await browser.close();
console.log(`screenshots in ${OUT}`);
