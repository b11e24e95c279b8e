// End-to-end test of the dashboard: Debian's Chromium, driven by
// playwright-core, against a real nimbus-operator (with its cluster and
// PostgreSQL) serving the built dashboard. test/integration/test_dashboard.py
// starts the operator and runs this script; it can also be run by hand:
//
//   NIMBUS_URL=http://127.0.0.1:8080 NIMBUS_ADMIN_PASSWORD=... node e2e/dashboard.e2e.mjs
//
// Environment:
//   NIMBUS_URL             the operator's API address (required)
//   NIMBUS_ADMIN_PASSWORD  the administrator's password (required)
//   E2E_ARTIFACTS          where screenshots go (default ../test-artifacts/dashboard)
//   E2E_RESTART            "1": ask the caller to restart the operator (a line
//                          "E2E: restart-operator" on stdout, answered by creating
//                          the file E2E_RESTART_DONE) to check the live banner
//   CHROMIUM               the browser (default /usr/bin/chromium)
//
// Prints "N passed, N failed" and exits non-zero when a step fails.
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const BASE = process.env.NIMBUS_URL;
const PASSWORD = process.env.NIMBUS_ADMIN_PASSWORD;
const ART = resolve(process.env.E2E_ARTIFACTS ?? join(here, '..', '..', 'test-artifacts', 'dashboard'));
const RESTART = process.env.E2E_RESTART === '1';
if (!BASE || !PASSWORD) {
  console.error('set NIMBUS_URL and NIMBUS_ADMIN_PASSWORD');
  process.exit(2);
}
mkdirSync(ART, { recursive: true });

const suffix = Math.random().toString(16).slice(2, 8);
const A = `e2e-a-${suffix}`;
const B = `e2e-b-${suffix}`;
const results = [];
let page;

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, true]);
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  } catch (e) {
    results.push([name, false]);
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    try {
      await page.screenshot({ path: join(ART, `failed-${name.replace(/[^a-z0-9]+/gi, '-')}.png`), fullPage: true });
    } catch {
      /* the browser is gone */
    }
    throw e;
  }
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const a11yProblems = [];

/** WCAG 2 A and AA rules (labels, contrast, names, landmarks) with axe-core. */
async function a11y(name) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
  for (const v of violations) a11yProblems.push(`${name}: ${v}`);
}

async function shot(name) {
  await page.waitForTimeout(300); // let charts settle
  await page.screenshot({ path: join(ART, `${name}.png`), fullPage: true });
  await a11y(name);
}

/** Client-side navigation through the menu (no page load). */
async function go(label) {
  const toggle = page.getByRole('button', { name: 'Menu' });
  if (await toggle.isVisible()) await toggle.click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { level: 1 }).first().waitFor();
}

async function signInAdmin() {
  await page.getByLabel('Administrator').check();
  await page.getByLabel('User').fill('admin');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('who').getByText('Administrator').waitFor();
  await noteToken();
}

async function createTenant(name, cpu, memory) {
  const form = page.getByRole('form', { name: 'Create a tenant' });
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('CPU quota').fill(cpu);
  await form.getByLabel('Memory quota').fill(memory);
  await form.getByRole('button', { name: 'Create tenant' }).click();
  const dialog = page.getByRole('dialog', { name: `Tenant ${name} created` });
  const key = await dialog.getByTestId('new-api-key').inputValue();
  if (!/^nmbk_[0-9a-f]{16}_/.test(key)) throw new Error(`unexpected API key ${key}`);
  await dialog.getByRole('button', { name: 'Done' }).click();
  // The namespace becomes Active through the live stream.
  await page.locator(`tr[data-tenant="${name}"] .badge`, { hasText: 'Active' }).waitFor({ timeout: 60_000 });
  return key;
}

async function createWorkload(tenant, name, replicas) {
  const form = page.getByRole('form', { name: 'Create a workload' });
  await form.getByLabel('Tenant').selectOption(tenant);
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Image').fill('nginx');
  await form.getByLabel('CPU per pod').fill('200m');
  await form.getByLabel('Memory per pod').fill('128Mi');
  await form.getByLabel('Replicas').fill(String(replicas));
  await form.getByRole('button', { name: 'Create workload' }).click();
  await page.getByText(`Workload ${name} created in nimbus-${tenant}.`).waitFor();
}

const row = (name, tenant = A) => page.locator(`tr[data-workload="${name}"][data-tenant="${tenant}"]`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--disable-extensions',
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
page = await context.newPage();
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(`console: ${m.text()}`));
// Every address the page asks for, websockets included: no token may be in one.
const urls = [];
page.on('request', (r) => urls.push(r.url()));
page.on('websocket', (ws) => urls.push(ws.url()));
const tokensSeen = new Set();
async function noteToken() {
  const t = await page.evaluate(() => JSON.parse(sessionStorage.getItem('nimbus.session') ?? 'null')?.token);
  if (t) tokensSeen.add(t);
}

let keyA;
let exitCode = 0;
try {
  await step('login page', async () => {
    await page.goto(BASE + '/');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shot('login');
    // Wrong password: an error, still on the login page.
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Those credentials were not accepted.').waitFor();
  });

  await step('admin signs in; the token stays out of the URL', async () => {
    await signInAdmin();
    const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem('nimbus.session') ?? 'null'));
    if (!stored?.token || stored.role !== 'admin') throw new Error('no admin session in sessionStorage');
    if (page.url().includes(stored.token)) throw new Error('token in the page URL');
    await page.getByTestId('live-status').filter({ hasText: 'Live' }).waitFor({ timeout: 15_000 });
  });

  await step('create two tenants with quotas', async () => {
    // A marker in the page's JS realm: a full page load would lose it.
    await page.evaluate(() => (window.__sameDocument = true));
    await go('Tenants');
    keyA = await createTenant(A, '2', '2Gi');
    await createTenant(B, '1', '1Gi');
  });

  await step('create a workload and watch it become Ready live', async () => {
    await go('Workloads');
    await createWorkload(A, 'web', 2);
    await row('web').waitFor();
    // Ready arrives through the event stream: this page does not poll the list.
    await page.locator(`tr[data-workload="web"][data-tenant="${A}"][data-ready="true"]`).waitFor({ timeout: 90_000 });
    await row('web').getByTestId('ready-count').filter({ hasText: '2/2' }).waitFor();
    await row('web').locator('.badge', { hasText: 'Ready=True' }).waitFor();
    await createWorkload(B, 'secret-b', 1);
    await page.locator(`tr[data-workload="secret-b"][data-tenant="${B}"][data-ready="true"]`).waitFor({ timeout: 90_000 });
  });

  await step('scale the workload through the API', async () => {
    await row('web').getByLabel('Replicas of web').fill('3');
    await row('web').getByRole('button', { name: 'Scale' }).click();
    await row('web').getByTestId('ready-count').filter({ hasText: '3/3' }).waitFor({ timeout: 90_000 });
    await row('web').getByRole('button', { name: 'web', exact: true }).click(); // details: conditions and events
    await page.getByRole('heading', { name: 'Conditions' }).waitFor();
    await page.locator('.details .events li').first().waitFor({ timeout: 30_000 });
    await page.getByLabel('Tenant', { exact: true }).first().selectOption(A);
    await shot('workloads');
  });

  await step('scheduler shows nodes and the placements with reasons', async () => {
    await go('Scheduler');
    await page.getByTestId('node-heatmap').waitFor();
    await page.getByTestId('placements-table').getByText(`nimbus-${A}/nimbus-web-`).first().waitFor({ timeout: 30_000 });
    await page.getByTestId('placements-table').getByText(/highest bin-packing score/).first().waitFor();
    await shot('scheduler');
  });

  await step('usage appears and an invoice opens with a CSV', async () => {
    await go('Billing');
    await page.getByTestId('usage-table').getByRole('rowheader', { name: A }).waitFor({ timeout: 150_000 });
    // The chart comes from the stored usage rows (GET /api/v1/billing/usage/history).
    await page.getByTestId('usage-chart').locator('.recharts-legend-item', { hasText: A }).waitFor({ timeout: 30_000 });
    await page.getByLabel('Window').selectOption('24h');
    await page.getByTestId('usage-chart').locator('.recharts-legend-item', { hasText: A }).waitFor({ timeout: 30_000 });
    await page.getByLabel('Window').selectOption('1h');
    await page.getByLabel('Tenant', { exact: true }).selectOption(A);
    const inv = page.getByTestId('invoice');
    await inv.getByText(`${A} · `).waitFor();
    await inv.getByRole('rowheader', { name: 'CPU' }).waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), inv.getByRole('button', { name: 'Download CSV' }).click()]);
    const path = join(ART, download.suggestedFilename());
    await download.saveAs(path);
    const csv = readFileSync(path, 'utf8');
    if (!csv.startsWith(`tenant,${A}\r\n`) || !/\r\ncpu,[0-9.]+,core-hour,/.test(csv) || !/\r\ntotal,,,,[0-9.]+\r\n$/.test(csv))
      throw new Error(`unexpected CSV:\n${csv}`);
    // Let a few billing samples draw the curve.
    await page.waitForTimeout(6000);
    await shot('billing');
  });

  await step('overview shows capacity, requests and use', async () => {
    await go('Overview');
    await page.getByTestId('capacity-figures').getByText(/requested [1-9]/).first().waitFor({ timeout: 30_000 });
    await page.locator('.events li').first().waitFor();
    await shot('overview');
    await go('Tenants');
    await shot('tenants');
  });

  await step('no full page loads after login', async () => {
    if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error('the page was reloaded');
  });

  if (RESTART) {
    await step('a banner while the event stream is down, and when it is back', async () => {
      await go('Workloads');
      await page.evaluate(() => {
        window.__banner = [];
        const el = document.querySelector('[data-testid="live-banner"]');
        new MutationObserver(() => window.__banner.push(el.textContent)).observe(el, { childList: true, subtree: true, characterData: true });
      });
      const done = process.env.E2E_RESTART_DONE;
      console.log('E2E: restart-operator');
      await page.getByTestId('live-banner').getByText('Live updates reconnected').waitFor({ timeout: 90_000 });
      const seen = await page.evaluate(() => window.__banner.join(' | '));
      if (!seen.includes('Live updates interrupted')) throw new Error(`no outage banner; saw: ${seen}`);
      if (done && !existsSync(done)) throw new Error('reconnected before the operator restarted?');
      // The lists are still right after the reload the reconnection triggers.
      await row('web').getByTestId('ready-count').filter({ hasText: '3/3' }).waitFor();
    });
  }

  await step('narrow window', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await go('Overview');
    await shot('overview-narrow');
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workloads' }).waitFor();
    await shot('menu-narrow');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workloads' }).click();
    await page.getByRole('heading', { name: 'Workloads' }).waitFor();
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step('keyboard: skip link, menu and dialogs', async () => {
    // A reload keeps the session (sessionStorage) and starts focus at the top.
    await go('Tenants');
    await page.reload();
    await page.getByRole('heading', { name: 'Tenants', exact: true }).waitFor();
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => document.activeElement?.textContent);
    if (first !== 'Skip to content') throw new Error(`first Tab lands on ${first}`);
    // Open the delete dialog from the keyboard, then cancel with Escape.
    const del = page.getByRole('button', { name: `Delete tenant ${B}` });
    await del.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: `Delete tenant ${B}?` });
    await dialog.waitFor();
    const focused = await page.evaluate(() => document.activeElement?.textContent);
    if (focused !== 'Cancel') throw new Error(`focus in the dialog is on ${focused}`);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    if (!(await del.evaluate((el) => el === document.activeElement))) throw new Error('focus did not return to the Delete button');
  });

  await step('sign out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    const stored = await page.evaluate(() => sessionStorage.getItem('nimbus.session'));
    if (stored) throw new Error('the session survived sign-out');
  });

  await step(`tenant ${A} sees only its own tenant`, async () => {
    await page.getByLabel('Tenant API key').check();
    await page.getByLabel('API key', { exact: true }).fill(keyA);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').getByText(A).waitFor();
    await noteToken();
    if (await page.getByRole('link', { name: 'Scheduler' }).count()) throw new Error('a tenant sees the Scheduler page');
    await go('Tenant');
    const tenants = page.getByTestId('tenants-table').locator('tbody tr');
    await tenants.first().waitFor();
    if ((await tenants.count()) !== 1 || (await tenants.first().getAttribute('data-tenant')) !== A)
      throw new Error('the tenant list is not just the tenant itself');
    if (await page.getByRole('form', { name: 'Create a tenant' }).count()) throw new Error('a tenant can create tenants');
    await go('Workloads');
    await row('web').waitFor();
    if (await row('secret-b', B).count()) throw new Error(`tenant ${A} sees ${B}'s workload`);
    await go('Billing');
    await page.getByTestId('usage-table').getByRole('rowheader', { name: A }).waitFor({ timeout: 30_000 });
    if (await page.getByTestId('usage-table').getByRole('rowheader', { name: B }).count()) throw new Error(`tenant ${A} sees ${B}'s usage`);
    await page.getByTestId('usage-chart').locator('.recharts-legend-item', { hasText: A }).waitFor({ timeout: 30_000 });
    if (await page.getByTestId('usage-chart').locator('.recharts-legend-item', { hasText: B }).count())
      throw new Error(`tenant ${A} sees ${B}'s usage over time`);
    await page.getByTestId('invoice').getByText(`${A} · `).waitFor();
    if (await page.getByLabel('Tenant', { exact: true }).count()) throw new Error('a tenant can pick another tenant');
    await go('Overview');
    await page.getByRole('heading', { name: `Quota of ${A}` }).waitFor();
    const text = await page.locator('main').innerText();
    if (text.includes(B)) throw new Error(`${B} appears on ${A}'s overview`);
    await shot('tenant-overview');
    // Whatever the page shows, the API refuses the other tenant too.
    const status = await page.evaluate(async (b) => {
      const s = JSON.parse(sessionStorage.getItem('nimbus.session'));
      const r = await fetch(`/api/v1/tenants/${b}/workloads`, { headers: { Authorization: `Bearer ${s.token}` } });
      return r.status;
    }, B);
    if (status !== 404) throw new Error(`GET another tenant's workloads answered ${status}`);
  });

  await step('an expired or refused token returns to login with a message', async () => {
    await page.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem('nimbus.session'));
      s.token = s.token.slice(0, -4) + 'AAAA'; // what the API says of an expired token too: 401
      sessionStorage.setItem('nimbus.session', JSON.stringify(s));
    });
    // The next request (billing polls every 5 s) gets 401.
    await go('Billing');
    await page.getByTestId('login-message').getByText('Your session expired').waitFor({ timeout: 15_000 });
  });

  await step('admin deletes a workload and the tenants, each after confirming', async () => {
    await signInAdmin();
    await go('Workloads');
    await row('web').getByRole('button', { name: 'Delete workload web' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete workload web?' });
    await dialog.getByRole('button', { name: 'Delete workload' }).click();
    await row('web').waitFor({ state: 'detached', timeout: 60_000 });
    await go('Tenants');
    for (const t of [A, B]) {
      await page.getByRole('button', { name: `Delete tenant ${t}` }).click();
      await page.getByRole('dialog', { name: `Delete tenant ${t}?` }).getByRole('button', { name: 'Delete tenant' }).click();
      await page.getByRole('dialog').waitFor({ state: 'detached' });
    }
    // The row says "deleting" until the namespace is gone, then leaves.
    for (const t of [A, B]) {
      await page.locator(`tr[data-tenant="${t}"] .badge`, { hasText: /deleting|Terminating/ }).or(page.locator('body:not(:has(tr[data-tenant="' + t + '"]))')).first().waitFor({ timeout: 30_000 });
    }
  });

  await step('no token ever travels in a URL (the event stream uses tickets)', async () => {
    const ws = urls.filter((u) => u.startsWith('ws'));
    if (!ws.length) throw new Error('no websocket was opened');
    const leaks = urls.filter((u) => /access_token/.test(u) || [...tokensSeen].some((t) => u.includes(t)));
    if (leaks.length) throw new Error(`a token in a URL:\n${leaks.join('\n')}`);
    if (tokensSeen.size < 2) throw new Error(`only ${tokensSeen.size} session token(s) were checked`);
  });

  await step('no accessibility violations (axe-core, WCAG 2.1 A/AA) on any page', async () => {
    if (a11yProblems.length) throw new Error(a11yProblems.join('\n'));
  });

  await step('no errors in the browser console', async () => {
    // A refused websocket (the forged token above) and the 401s are expected.
    const real = consoleErrors.filter((e) => !/401|WebSocket|Unauthorized|Failed to load resource/.test(e));
    if (real.length) throw new Error(real.join('\n'));
  });
} catch {
  exitCode = 1;
} finally {
  await browser.close();
}
const passed = results.filter((r) => r[1]).length;
console.log(`screenshots in ${ART}`);
console.log(`${passed} passed, ${results.length - passed} failed`);
process.exit(exitCode || results.some((r) => !r[1]) ? 1 : 0);
