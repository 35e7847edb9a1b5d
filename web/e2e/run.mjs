#!/usr/bin/env node
// Browser end-to-end run of the web app in real Chromium (playwright-core + Debian's /usr/bin/chromium).
//
//   node e2e/run.mjs                                   # starts its own stack (kez-server up) on free ports
//   KEZ_GATEWAY_URL=http://127.0.0.1:8080 node e2e/run.mjs   # uses a running stack (e.g. `./kez up`)
//
// Where the app comes from:
//   - no URL given: `kez-server up` ($KEZ_SERVER_BIN, else $CARGO_TARGET_DIR or ../target, {debug,release}/kez-server) is started
//     with a temporary data dir and free ports; the gateway serves web/dist (embedded when it was built)
//     and /v1 on one origin. Stopped (SIGINT) at the end.
//   - KEZ_GATEWAY_URL: the app is loaded from the gateway itself. With KEZ_E2E_SERVE_DIST=1 this script
//     serves web/dist on 127.0.0.1 instead and proxies /v1 to the gateway (only for a gateway without the
//     app whose NATS WebSocket accepts any origin: `kez-server up` allows only its own origin).
//   - KEZ_E2E_APP_URL: load the app from exactly there (its origin must also answer /v1).
// Other environment:
//   KEZ_E2E_WORDS        optional JSON {"alice":"<24 words>","bob":"<24 words>"}: sign in with these keys
//                        (restore, then register) instead of creating fresh ones.
//   KEZ_CLI_BIN          the kez-chat CLI for the interop steps (default ../target/{debug,release}/kez-chat
//                        when present); KEZ_E2E_NO_CLI=1 skips them.
//   CHROMIUM_BIN         default /usr/bin/chromium.   KEZ_E2E_HEADFUL=1 shows the browser.
// Screenshots go to web/e2e/screenshots/. Every page shown is also checked with axe-core (WCAG 2 A/AA rules):
// any violation fails the run. Every page reports Content-Security-Policy violations (securitypolicyviolation
// events); any fails the run. Exit code 0 only if every step passed, axe and the CSP found nothing and no page
// logged an unexpected console error. The last line is "e2e: N passed, N failed".
import { chromium } from 'playwright-core';
import http from 'node:http';
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '../dist');
const shots = join(here, 'screenshots');
const repo = resolve(here, '../..');
// Cargo's output folder: $CARGO_TARGET_DIR when set (as `./kez` honours it), else <repo>/target.
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(repo, 'target');
let gateway = process.env.KEZ_GATEWAY_URL?.replace(/\/$/, '');
const firstExisting = (...paths) => paths.find((p) => p && existsSync(p));
const fixedWords = process.env.KEZ_E2E_WORDS ? JSON.parse(process.env.KEZ_E2E_WORDS) : null;
const PASS = 'correct horse battery staple';
const suffix = randomBytes(3).toString('hex');

rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });

// ------------------------------------------------------------------ static server + /v1 proxy
async function serve() {
  if (!existsSync(join(dist, 'index.html'))) throw new Error('web/dist is missing: run `npm run build` first');
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      if (url.pathname.startsWith('/v1/')) {
        const chunks = [];
        for await (const c of req) chunks.push(c);
        const r = await fetch(gateway + url.pathname + url.search, {
          method: req.method,
          headers: { 'content-type': req.headers['content-type'] ?? 'application/json' },
          body: ['GET', 'HEAD'].includes(req.method) ? undefined : Buffer.concat(chunks),
        });
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
        res.end(Buffer.from(await r.arrayBuffer()));
        return;
      }
      const file = join(dist, url.pathname === '/' ? 'index.html' : url.pathname);
      if (!file.startsWith(dist) || !existsSync(file)) {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      res.end(readFileSync(file));
    } catch (e) {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unavailable', message: String(e) } }));
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

async function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
    srv.on('error', rej);
  });
}

/** Starts `kez-server up` on free ports with a throwaway data dir; resolves with its URL. */
async function startStack() {
  const bin = firstExisting(process.env.KEZ_SERVER_BIN, join(targetDir, 'debug/kez-server'), join(targetDir, 'release/kez-server'));
  if (!bin) throw new Error('no KEZ_GATEWAY_URL and no kez-server binary (cargo build -p kez-server, or set KEZ_SERVER_BIN)');
  const data = mkdtempSync(join(tmpdir(), 'kez-e2e-'));
  const [http, nats, ws, mon] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const args = ['up', '--http', `127.0.0.1:${http}`, '--nats-port', String(nats), '--ws-port', String(ws), '--monitor-port', String(mon), '--data-dir', data, '--domain', 'kez.test'];
  console.log(`starting ${bin} ${args.join(' ')}`);
  const child = spawn(bin, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`kez-server did not come up in 90 s:\n${out}`)), 90_000);
    child.on('exit', (c) => rej(new Error(`kez-server exited with ${c}:\n${out}`)));
    const poll = setInterval(() => {
      if (out.includes('kez-chat is up.')) {
        clearInterval(poll);
        clearTimeout(t);
        res();
      }
    }, 100);
  });
  let proc = child;
  const waitUp = (c, from) =>
    new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`kez-server did not come up in 90 s:\n${out.slice(from)}`)), 90_000);
      c.on('exit', (code) => rej(new Error(`kez-server exited with ${code}:\n${out.slice(from)}`)));
      const poll = setInterval(() => {
        if (out.slice(from).includes('kez-chat is up.')) {
          clearInterval(poll);
          clearTimeout(t);
          res();
        }
      }, 100);
    });
  const halt = async (c) => {
    if (c.exitCode !== null) return;
    const exited = new Promise((r) => c.on('exit', r));
    c.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (c.exitCode === null) c.kill('SIGKILL');
  };
  return {
    url: `http://127.0.0.1:${http}`,
    /** A real outage: the whole server (gateway, NATS, services) stops; the data dir is kept. */
    async down() {
      await halt(proc);
    },
    /** Starts it again on the same ports with the same data. */
    async up() {
      const from = out.length;
      proc = spawn(bin, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout.on('data', (d) => (out += d));
      proc.stderr.on('data', (d) => (out += d));
      await waitUp(proc, from);
    },
    async stop() {
      const child = proc;
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.on('exit', r));
        child.kill('SIGINT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(data, { recursive: true, force: true });
    },
    log: () => out,
  };
}

/** Runs the kez-chat CLI with its own home folder; resolves with stdout (rejects with stderr on failure). */
function cli(bin, home, server, args, { input, env } = {}) {
  return new Promise((res, rej) => {
    const child = execFile(
      bin,
      ['--server', server, '--passphrase-env', 'KEZ_E2E_PASS', ...args],
      { env: { ...process.env, KEZ_HOME: home, KEZ_E2E_PASS: PASS, KEZ_IROH_RELAY: 'off', ...env }, timeout: 60_000 },
      (err, stdout, stderr) => (err ? rej(new Error(`kez-chat ${args.join(' ')}: ${err.message}\n${stderr}`)) : res(stdout)),
    );
    if (input !== undefined) child.stdin.end(input);
  });
}

// ------------------------------------------------------------------ harness
const results = [];
const consoleErrors = [];
let shotNo = 0;
async function step(name, f) {
  const t = Date.now();
  try {
    await f();
    results.push({ name, ok: true, ms: Date.now() - t });
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    results.push({ name, ok: false, ms: Date.now() - t, error: e });
    console.log(`FAIL ${name}: ${e?.message ?? e}`);
    for (const [who, page] of openPages) {
      if (page.isClosed()) continue;
      await page.screenshot({ path: join(shots, `FAILED-${who}.png`), fullPage: true }).catch(() => undefined);
      const text = await page.locator('body').innerText().catch(() => '');
      console.log(`--- ${who} page text at failure:\n${text.slice(0, 1500)}`);
    }
    throw e;
  }
}
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const axeViolations = [];
/** Runs axe-core on what the page shows now; violations are collected and fail the run at the end. */
async function axe(page, name) {
  // Evaluated through the DevTools protocol, not as an inline <script>: the app's CSP (rightly) refuses those.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
  });
  for (const v of found) axeViolations.push(`${name}: ${v}`);
}
async function shot(page, name) {
  const file = join(shots, `${String(++shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await axe(page, name);
}
// Chromium logs every 4xx fetch as a console error; these lookups are expected to 404 sometimes.
const EXPECTED_404 = /\/v1\/(u|keys|sigchains|manifests)\//;
const openPages = new Map();
let outage = false;
function watch(page, who) {
  openPages.set(who, page);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = m.location()?.url ?? '';
    if (/status of 404/.test(m.text()) && EXPECTED_404.test(where)) return;
    // While the server is down on purpose, failed requests and sockets are expected.
    if (outage && /ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_FAILED|WebSocket connection to|Failed to load resource/.test(m.text())) return;
    consoleErrors.push(`${who}: ${m.text()} ${where}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${who}: uncaught ${e.message}`));
}

// ------------------------------------------------------------------ UI actions
async function createAccount(page, base, local) {
  await page.goto(base + '/#/');
  await page.getByRole('link', { name: /Create an account/ }).click();
  await page.getByRole('heading', { name: 'Your 24 recovery words' }).waitFor();
  const words = await page.locator('[data-word]').allTextContents();
  if (words.length !== 24) throw new Error(`expected 24 words, saw ${words.length}`);
  await shot(page, `${local}-words`);
  await page.getByLabel('I have written down all 24 words in order.').check();
  await page.getByRole('button', { name: 'Continue' }).click();
  for (const input of await page.getByLabel(/^Word #\d+$/).all()) {
    const n = Number((await input.getAttribute('id')).slice(1));
    await input.fill(words[n]);
  }
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('textbox', { name: 'Handle' }).fill(local);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { name: 'Choose a passphrase for this browser' }).waitFor();
  await page.getByLabel(/^Passphrase \(at least/).fill(PASS);
  await page.getByLabel('Repeat the passphrase').fill(PASS);
  await shot(page, `${local}-passphrase`);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Chats' }).waitFor({ timeout: 30_000 });
  return words.join(' ');
}

async function restoreAccount(page, base, words, local) {
  await page.goto(base + '/#/');
  await page.getByRole('link', { name: /Sign in with your 24 words/ }).click();
  await page.getByLabel('Your 24 words').fill(words);
  await page.getByLabel('Your handle').fill(local);
  await page.getByLabel(/^New passphrase for this browser/).fill(PASS);
  await page.getByLabel('Repeat the passphrase').fill(PASS);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // An unregistered key (first run with fixed words) asks for a handle.
  const chats = page.getByRole('heading', { name: 'Chats' });
  const finish = page.getByRole('heading', { name: 'Finish setting up' });
  await chats.or(finish).waitFor({ timeout: 30_000 });
  if (await finish.isVisible()) {
    await page.getByRole('textbox', { name: 'Handle' }).fill(local);
    await page.getByRole('button', { name: 'Register' }).click();
    await chats.waitFor({ timeout: 30_000 });
  }
}

async function waitConnected(page) {
  await waitConnectedWithin(page, 20_000);
}
async function waitConnectedWithin(page, timeout) {
  await page.getByRole('status').filter({ hasText: /^\s*Connected\s*$/ }).waitFor({ timeout });
}

async function addContact(page, handle) {
  await page.getByRole('link', { name: 'Contacts' }).click();
  await page.getByLabel('Look up a handle').fill(handle);
  await page.getByRole('button', { name: 'Look up' }).click();
  await page.getByText(/Sigchain verified in this browser \(\d+ events?\)/).waitFor();
  await page.getByRole('button', { name: /Add contact/ }).click();
  await page.getByRole('heading', { name: 'Safety number' }).waitFor();
}

async function send(page, text) {
  await page.getByLabel(/^Message to/).fill(text);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.getByRole('log').getByText(text).first().waitFor();
  await page.getByRole('log').locator('li', { hasText: text }).getByText('Delivered').waitFor({ timeout: 15_000 });
}

/**
 * Reads the app's IndexedDB store: with a key, what kind of session record it holds (key type, extractable,
 * ciphertext length); with null, how many records there are.
 */
function kvStore(page, key) {
  return page.evaluate(
    (key) =>
      new Promise((res, rej) => {
        const r = indexedDB.open('kez-chat');
        r.onerror = () => rej(r.error);
        r.onsuccess = () => {
          const db = r.result;
          if (!db.objectStoreNames.contains('kv')) return res(key ? null : 0);
          const store = db.transaction('kv').objectStore('kv');
          const q = key ? store.get(key) : store.count();
          q.onerror = () => rej(q.error);
          q.onsuccess = () => res(key ? { key: q.result?.key?.constructor?.name, extractable: q.result?.key?.extractable, ct: q.result?.ct?.length } : q.result);
        };
      }),
    key,
  );
}

/** The id of the focused element. */
const focused = (page) => page.evaluate(() => document.activeElement?.id ?? '');

/** Records notifications the app shows (headless Chromium displays none) and CSP violations. */
async function instrument(ctx) {
  await ctx.exposeBinding('__kezCsp', ({ page }, v) => cspViolations.push(`${page.url()}: ${v}`));
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => window.__kezCsp(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'}`));
    window.__notes = [];
    const Real = window.Notification;
    if (!Real) return;
    class Recorded extends Real {
      constructor(title, opts) {
        super(title, opts);
        window.__notes.push({ title, body: opts?.body ?? '' });
      }
    }
    Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
    Recorded.requestPermission = (...a) => Real.requestPermission(...a);
    window.Notification = Recorded;
  });
}
const cspViolations = [];

// ------------------------------------------------------------------ run
let server;
let stack;
let browser;
let failed = false;
try {
  let base = process.env.KEZ_E2E_APP_URL?.replace(/\/$/, '');
  if (!base && !gateway) {
    stack = await startStack();
    gateway = stack.url;
  }
  if (!base && process.env.KEZ_E2E_SERVE_DIST === '1') ({ server, url: base } = await serve());
  base ??= gateway;
  console.log(`app: ${base}  gateway: ${gateway ?? '(same origin)'}`);
  const cfg = await (await fetch(base + '/v1/config')).json();
  const domain = cfg.domain;

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
    headless: !process.env.KEZ_E2E_HEADFUL,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // Both profiles may show notifications (bob turns them on when offered); the CSP header is the gateway's.
  const ctxA = await browser.newContext({ viewport: { width: 1280, height: 800 }, permissions: ['notifications'] });
  const ctxB = await browser.newContext({ viewport: { width: 1280, height: 800 }, permissions: ['notifications'] });
  await instrument(ctxA);
  await instrument(ctxB);
  const alice = await ctxA.newPage();
  const bob = await ctxB.newPage();
  watch(alice, 'alice');
  watch(bob, 'bob');
  let aliceLocal = `alice-${suffix}`;
  let bobLocal = `bob-${suffix}`;
  // With fixed words the keys may already own handles from an earlier run: read the real ones.
  const ownLocal = async (page) => {
    await page.getByRole('link', { name: 'Identity' }).click();
    const h = await page.locator('[data-own-handle]').textContent();
    await page.getByRole('link', { name: /Chats/ }).click();
    return h.slice(0, h.indexOf('@'));
  };
  let aliceWords = fixedWords?.alice;
  const carolLocal = `carol-${suffix}`;

  await step('welcome page', async () => {
    await alice.goto(base + '/#/');
    await alice.getByRole('heading', { name: 'kez-chat' }).waitFor();
    await shot(alice, 'welcome');
  });

  if (fixedWords) {
    await step('alice and bob sign in with fixed words (restore, then register)', async () => {
      await restoreAccount(alice, base, fixedWords.alice, aliceLocal);
      await restoreAccount(bob, base, fixedWords.bob, bobLocal);
      aliceLocal = await ownLocal(alice);
      bobLocal = await ownLocal(bob);
    });
  } else {
    await step('alice creates an account (words, confirm three, handle, passphrase)', async () => {
      aliceWords = await createAccount(alice, base, aliceLocal);
    });
    await step('bob creates an account', async () => {
      await createAccount(bob, base, bobLocal);
    });
  }
  await step('both connect to NATS over WebSocket', async () => {
    await waitConnected(alice);
    await waitConnected(bob);
    await shot(alice, 'alice-chats-empty');
  });

  await step('own identity: sigchain walked and verified in the browser', async () => {
    await alice.getByRole('link', { name: 'Identity' }).click();
    await alice.getByText('All 1 event verified in this browser', { exact: false }).waitFor({ timeout: 15_000 });
    await alice.getByText('Added chat endpoint').waitFor();
    await shot(alice, 'alice-identity');
  });

  await step('alice looks up bob, sees the verified identity and adds him (TOFU)', async () => {
    await addContact(alice, bobLocal);
    await alice.getByText(/^\d{5}( \d{5}){11}$/).waitFor();
    await alice.getByText('No shared files.').waitFor();
    await shot(alice, 'alice-contact-bob');
  });

  await step('alice sends bob a message (real time)', async () => {
    await alice.getByRole('link', { name: 'Chat', exact: true }).click();
    await send(alice, 'hello bob, this is alice');
    await bob.getByRole('link', { name: /Chats/ }).getByText('1').waitFor({ timeout: 15_000 }); // unread badge
    await bob.getByText('Unknown sender').first().waitFor();
    await bob.getByRole('heading', { name: 'Message requests' }).waitFor();
    const title = await bob.title();
    if (!title.startsWith('(1) ')) throw new Error(`the tab title does not show the unread count: ${title}`);
    await shot(bob, 'bob-unread-unknown-sender');
  });

  await step('notifications: offered after the first message, then shown for a chat not on screen', async () => {
    await bob.getByRole('button', { name: 'Turn on notifications' }).click();
    await bob.getByRole('button', { name: 'Turn on notifications' }).waitFor({ state: 'detached' });
    await send(alice, 'a second one, for the notification');
    await bob.waitForFunction(() => window.__notes.some((n) => n.body === 'Someone who is not in your contacts wrote to you.'), null, { timeout: 15_000 });
    const notes = await bob.evaluate(() => window.__notes);
    if (notes.some((n) => n.body.includes('for the notification'))) throw new Error('a message request leaked its text into a notification');
  });

  await step('bob opens the request: unknown sender with fingerprint, new-messages divider, day separator, composer focused', async () => {
    await bob.getByRole('link', { name: /Unknown sender/ }).click();
    await bob.getByRole('log').getByText('hello bob, this is alice').waitFor();
    await bob.getByText('This key is not in your contacts.').waitFor();
    await bob.getByRole('button', { name: 'Accept' }).waitFor({ timeout: 15_000 }); // the server lists alice's handle for the key
    await bob.locator('[data-new-divider]').getByText('New messages').waitFor();
    await bob.locator('[data-day]').getByText('Today').waitFor();
    if ((await focused(bob)) !== 'compose') throw new Error(`focus is on #${await focused(bob)}, not the composer`);
    const title = await bob.title();
    if (title.startsWith('(')) throw new Error(`read messages still counted in the title: ${title}`);
    await shot(bob, 'bob-chat-unknown');
  });

  await step('new chat in place: bob looks alice up from the conversation list, adds her and replies; alice sees it live', async () => {
    await bob.getByRole('button', { name: 'New chat' }).click();
    if ((await focused(bob)) !== 'newchat') throw new Error('the handle field is not focused');
    await bob.getByRole('textbox', { name: 'Handle' }).fill(aliceLocal);
    await bob.getByRole('button', { name: 'Find' }).click();
    await bob.getByText('✔ Sigchain verified in this browser.').waitFor({ timeout: 15_000 });
    await shot(bob, 'bob-new-chat');
    await bob.getByRole('button', { name: 'Add and start chat' }).click();
    await bob.getByRole('heading', { name: aliceLocal }).waitFor();
    await bob.getByRole('log').getByText('hello bob, this is alice').waitFor(); // the same thread as the request
    await send(bob, 'hi alice, bob here');
    await alice.getByRole('log').getByText('hi alice, bob here').waitFor({ timeout: 15_000 });
    await shot(alice, 'alice-chat');
  });

  await step('two panes on the desktop, one on a phone; the current page is marked', async () => {
    for (const p of [alice, bob]) {
      await p.getByRole('list', { name: 'Conversations' }).waitFor();
      await p.getByRole('log').waitFor();
      const cur = await p.getByRole('navigation', { name: 'Main' }).locator('[aria-current="page"]').allTextContents();
      if (cur.length !== 1 || !cur[0].includes('Chats')) throw new Error(`aria-current marks ${JSON.stringify(cur)}`);
    }
    await alice.setViewportSize({ width: 390, height: 844 });
    await alice.getByRole('list', { name: 'Conversations' }).waitFor({ state: 'hidden' });
    await alice.getByRole('log').waitFor();
    await shot(alice, 'phone-chat');
    await alice.getByRole('link', { name: '← All chats' }).click();
    await alice.getByRole('list', { name: 'Conversations' }).waitFor();
    await shot(alice, 'phone-chats');
    await alice.setViewportSize({ width: 1280, height: 800 });
    await alice.getByRole('link', { name: new RegExp(bobLocal) }).first().click();
  });

  await step('messages: safe links, read more, a length counter that refuses over-long text, search', async () => {
    await send(alice, 'docs at https://example.org/guide?x=1. not a link: javascript:alert(1)');
    const link = bob.getByRole('log').getByRole('link', { name: 'https://example.org/guide?x=1' });
    await link.waitFor({ timeout: 15_000 });
    if ((await link.getAttribute('rel')) !== 'noopener noreferrer nofollow') throw new Error('link without rel=noopener noreferrer');
    if (await bob.getByRole('log').locator('a[href^="javascript"]').count()) throw new Error('a javascript: link was made clickable');
    // over the protocol's limit: refused with the numbers, nothing cut
    const big = 'x'.repeat(20_000);
    await alice.getByLabel(/^Message to/).fill(big);
    await alice.getByRole('alert').filter({ hasText: 'This message is 20,000 characters long; the limit is 16,384.' }).waitFor();
    if (!(await alice.getByRole('button', { name: 'Send', exact: true }).isDisabled())) throw new Error('an over-long message can be sent');
    if ((await alice.getByLabel(/^Message to/).inputValue()).length !== 20_000) throw new Error('the pasted text was cut');
    await shot(alice, 'alice-too-long');
    const long = 'A long story. '.repeat(300) + 'THE END';
    await alice.getByLabel(/^Message to/).fill(long);
    await alice.getByText('4,207 / 16,384 characters').waitFor();
    await alice.getByRole('button', { name: 'Send', exact: true }).click();
    const li = bob.getByRole('log').locator('li', { hasText: 'A long story. A long story.' }).last();
    await li.getByRole('button', { name: 'Read more' }).waitFor({ timeout: 15_000 });
    if (await li.getByText('THE END').count()) throw new Error('a long message is shown whole before "Read more"');
    await li.getByRole('button', { name: 'Read more' }).click();
    await li.getByText('THE END').waitFor();
    await shot(bob, 'bob-links-read-more');
    // local search over history
    await bob.getByRole('searchbox', { name: 'Search messages' }).fill('GUIDE docs');
    await bob.getByRole('status').filter({ hasText: '1 message found' }).waitFor();
    await shot(bob, 'bob-search');
    await bob.locator('[data-search-hit]').first().click();
    await bob.getByRole('searchbox', { name: 'Search messages' }).fill('');
  });

  const cliBin =
    process.env.KEZ_E2E_NO_CLI === '1' || fixedWords ? null : firstExisting(process.env.KEZ_CLI_BIN, join(targetDir, 'debug/kez-chat'), join(targetDir, 'release/kez-chat'));
  if (cliBin) {
    const home = mkdtempSync(join(tmpdir(), 'kez-cli-'));
    try {
      await step('CLI interop: a CLI user and the browser chat both ways', async () => {
        // carol is created in a third browser (so her words are known), then lives only in the CLI
        const ctxC = await browser.newContext({ viewport: { width: 1100, height: 800 } });
        const carolPage = await ctxC.newPage();
        watch(carolPage, 'carol');
        const carolWords = await createAccount(carolPage, base, carolLocal);
        await ctxC.close();
        await cli(cliBin, home, base, ['restore', '--mnemonic-stdin'], { input: carolWords + '\n' });
        await cli(cliBin, home, base, ['send', `@${aliceLocal}`, 'hello alice, from the CLI']);
        await alice.getByRole('link', { name: /Chats/ }).click();
        await alice.getByText('hello alice, from the CLI').waitFor({ timeout: 20_000 });
        // a message request, accepted: the server's handle for the key is checked and pinned
        await alice.getByRole('link', { name: /Unknown sender/ }).click();
        await alice.getByRole('log').getByText('hello alice, from the CLI').waitFor();
        await alice.getByRole('button', { name: 'Accept' }).click({ timeout: 15_000 });
        await alice.getByRole('status').filter({ hasText: 'Accepted:' }).waitFor({ timeout: 15_000 });
        await alice.getByRole('heading', { name: carolLocal }).waitFor();
        await shot(alice, 'alice-request-accepted');
        await send(alice, 'hi carol, the browser answers');
        const out = await cli(cliBin, home, base, ['listen', '--once']);
        if (!out.includes('hi carol, the browser answers')) throw new Error(`the CLI did not print the message:\n${out}`);
        await shot(alice, 'alice-cli-chat');
      });
      await step('two devices: alice signs in on a second browser profile; both get every message from the CLI user', async () => {
        // on profile 1, read carol's key from the open chat's address
        const carolHex = (await alice.evaluate(() => location.hash)).match(/#\/chat\/([0-9a-f]{64})/)?.[1];
        if (!carolHex) throw new Error('not on the chat with carol');
        globalThis.carolHex = carolHex;
        const ctxA2 = await browser.newContext({ viewport: { width: 1100, height: 800 } });
        const alice2 = await ctxA2.newPage();
        watch(alice2, 'alice2');
        globalThis.alice2 = alice2;
        await restoreAccount(alice2, base, aliceWords, aliceLocal);
        await waitConnected(alice2);
        // a device enrolled now still reads what is held, including the first CLI message
        await alice2.evaluate((h) => (location.hash = h), `#/chat/${carolHex}`); // in-page: a reload would lock the app
        await alice2.getByRole('log').getByText('hello alice, from the CLI').waitFor({ timeout: 20_000 });
        for (let i = 1; i <= 3; i++) await cli(cliBin, home, base, ['send', `@${aliceLocal}`, `to both devices ${i}`]);
        for (const p of [alice, alice2]) {
          for (let i = 1; i <= 3; i++) await p.getByRole('log').locator('li[data-dir="in"]', { hasText: `to both devices ${i}` }).waitFor({ timeout: 20_000 });
        }
        // exactly once each
        for (const p of [alice, alice2]) {
          for (let i = 1; i <= 3; i++) {
            const n = await p.getByRole('log').locator('li', { hasText: `to both devices ${i}` }).count();
            if (n !== 1) throw new Error(`"to both devices ${i}" shown ${n} times`);
          }
        }
        await shot(alice2, 'alice2-chat-carol');
      });

      await step('two devices: what profile 1 sends shows on profile 2 as outgoing (sent copy), once', async () => {
        const alice2 = globalThis.alice2;
        await send(alice, 'sent from profile 1');
        await alice2.getByRole('log').locator('li[data-dir="out"]', { hasText: 'sent from profile 1' }).waitFor({ timeout: 20_000 });
        // the sending profile skips its own copy
        await new Promise((r) => setTimeout(r, 1500));
        const n1 = await alice.getByRole('log').locator('li', { hasText: 'sent from profile 1' }).count();
        const n2 = await alice2.getByRole('log').locator('li', { hasText: 'sent from profile 1' }).count();
        if (n1 !== 1 || n2 !== 1) throw new Error(`shown ${n1} times on profile 1 and ${n2} times on profile 2`);
        const out = await cli(cliBin, home, base, ['listen', '--once']);
        if (!out.includes('sent from profile 1')) throw new Error(`the CLI did not print the message:\n${out}`);
        await shot(alice2, 'alice2-sent-copy');
      });

      await step('devices in settings: list, rename; removing profile 2 stops its delivery', async () => {
        const alice2 = globalThis.alice2;
        await alice2.getByRole('link', { name: 'Settings' }).click();
        const mine2 = alice2.locator('li[data-device]', { hasText: 'This device' });
        await mine2.waitFor({ timeout: 15_000 });
        const id2 = await mine2.getAttribute('data-device');
        await alice.getByRole('link', { name: 'Settings' }).click();
        const row = alice.locator(`li[data-device="${id2}"]`);
        await row.waitFor({ timeout: 15_000 });
        if ((await alice.locator('li[data-device]').count()) !== 2) throw new Error('expected two devices in the list');
        await row.getByRole('button', { name: /^Rename/ }).click();
        await row.getByLabel(/^New name for/).fill('second profile');
        await row.getByRole('button', { name: 'Save name' }).click();
        await alice.getByRole('status').filter({ hasText: 'Renamed to “second profile”.' }).waitFor();
        await alice.locator(`li[data-device="${id2}"]`, { hasText: 'second profile' }).waitFor();
        await alice.locator(`li[data-device="${id2}"]`).getByRole('button', { name: /^Remove/ }).click();
        await shot(alice, 'alice-remove-device-confirm');
        await alice.locator(`li[data-device="${id2}"]`).getByRole('button', { name: 'Remove device' }).click();
        await alice.getByRole('status').filter({ hasText: 'Removed “second profile”.' }).waitFor({ timeout: 15_000 });
        if ((await alice.locator(`li[data-device="${id2}"]`).count()) !== 0) throw new Error('the removed device is still listed');
        // profile 2 is told, and gets nothing more
        await alice2.getByRole('alert').filter({ hasText: 'This device was removed from your account.' }).first().waitFor({ timeout: 20_000 });
        await shot(alice2, 'alice2-removed');
        await cli(cliBin, home, base, ['send', `@${aliceLocal}`, 'after profile 2 was removed']);
        await alice.getByRole('link', { name: /Chats/ }).click();
        await alice.getByText('after profile 2 was removed').first().waitFor({ timeout: 20_000 });
        await alice2.evaluate((h) => (location.hash = h), `#/chat/${globalThis.carolHex}`);
        await alice2.getByRole('log').getByText('sent from profile 1').waitFor();
        await new Promise((r) => setTimeout(r, 3000));
        if (await alice2.getByText('after profile 2 was removed').count()) throw new Error('the removed device still received a message');
        await alice2.context().close();
        await alice.getByRole('link', { name: new RegExp(carolLocal) }).first().click();
      });

      await step('shared files: a file the CLI shares with alice is listed from the manifest, with the CLI command', async () => {
        const file = join(home, 'report for alice.txt');
        writeFileSync(file, 'quarterly numbers\n'.repeat(100));
        await cli(cliBin, home, base, ['share', `@${aliceLocal}`, file]);
        // the offer arrives as a chat message …
        await alice.getByRole('log').getByText('shared a file: report for alice.txt').waitFor({ timeout: 20_000 });
        // … and the entry is in carol's manifest, verified against her sigchain
        await alice.getByRole('link', { name: 'Identity and safety number' }).click();
        await alice.getByText(/Manifest verified against the sigchain\./).waitFor({ timeout: 15_000 });
        await alice.getByText('report for alice.txt').waitFor();
        await alice.getByText('Download requires the desktop client:').first().waitFor();
        const cmd = await alice.locator('code', { hasText: 'kez-chat fetch' }).first().textContent();
        if (!cmd?.startsWith(`kez-chat fetch @${carolLocal} `)) throw new Error(`unexpected command ${cmd}`);
        await shot(alice, 'alice-shared-files');
      });
      await step('blocking: bob blocks the unknown CLI sender; its mail stops; unblock in settings lets it through again', async () => {
        await cli(cliBin, home, base, ['send', `@${bobLocal}`, 'hello bob, a stranger here']);
        await bob.getByRole('link', { name: /Chats/ }).click();
        await bob.getByText('hello bob, a stranger here').waitFor({ timeout: 20_000 });
        await bob.getByRole('link', { name: /Unknown sender/ }).first().click();
        await bob.getByRole('log').getByText('hello bob, a stranger here').waitFor();
        await bob.getByRole('button', { name: 'Block…' }).click();
        await shot(bob, 'bob-block-confirm');
        await bob.getByRole('button', { name: 'Block sender' }).click();
        await bob.getByRole('status').filter({ hasText: /^Blocked\./ }).waitFor({ timeout: 15_000 });
        await cli(cliBin, home, base, ['send', `@${bobLocal}`, 'you cannot block me']); // accepted like any other send
        await new Promise((r) => setTimeout(r, 3000));
        if (await bob.getByText('you cannot block me').count()) throw new Error('a blocked sender still got through');
        await bob.getByRole('link', { name: 'Settings' }).click();
        await bob.getByRole('heading', { name: 'Blocked senders' }).waitFor();
        await shot(bob, 'bob-blocked-senders');
        await bob.getByRole('button', { name: /^Unblock/ }).click();
        await bob.getByText('You have not blocked anyone.').waitFor({ timeout: 15_000 });
        await cli(cliBin, home, base, ['send', `@${bobLocal}`, 'hello again after unblock']);
        await bob.getByRole('link', { name: /Chats/ }).click();
        await bob.getByText('hello again after unblock').waitFor({ timeout: 20_000 });
      });
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  } else {
    console.log(`skip CLI interop (${fixedWords ? 'fixed words' : 'no kez-chat binary; set KEZ_CLI_BIN'})`);
  }

  let bob2;
  await step('offline delivery, and a reload stays unlocked: bob closes the app, alice writes, bob opens it again without the passphrase', async () => {
    await bob.close();
    await alice.getByRole('link', { name: /Chats/ }).click();
    await alice.getByRole('link', { name: new RegExp(bobLocal) }).first().click();
    await send(alice, 'sent while you were offline');
    bob2 = await ctxB.newPage();
    watch(bob2, 'bob');
    await bob2.goto(base + '/#/');
    await bob2.getByRole('heading', { name: 'Chats' }).waitFor({ timeout: 20_000 });
    // the session is in IndexedDB, and never in plain: no record holds a raw 32-byte seed
    const kinds = await kvStore(bob2, 'session');
    if (kinds.key !== 'CryptoKey' || kinds.extractable !== false || kinds.ct !== 48) throw new Error(`unexpected session record ${JSON.stringify(kinds)}`);
    await waitConnected(bob2);
    await bob2.getByText('sent while you were offline').waitFor({ timeout: 20_000 });
    await bob2.getByRole('link', { name: aliceLocal }).first().click();
    // history from before the reload is still there (encrypted at rest)
    await bob2.getByRole('log').getByText('hello bob, this is alice').waitFor();
    await bob2.getByRole('log').getByText('sent while you were offline').waitFor();
    await shot(bob2, 'bob-after-unlock');
  });

  if (stack) {
    await step('outage: "Reconnecting…", the outbox holds a message, a reload shows the app; after the restart it is sent exactly once', async () => {
      outage = true;
      await stack.down();
      await alice.getByRole('status').filter({ hasText: 'Reconnecting…' }).waitFor({ timeout: 30_000 });
      await alice.getByLabel(/^Message to/).fill('written during the outage');
      await alice.getByRole('button', { name: 'Send', exact: true }).click();
      await alice.getByRole('log').locator('li', { hasText: 'written during the outage' }).getByText('Waiting to send').waitFor();
      await alice.getByText('1 message in the outbox.').waitFor();
      await shot(alice, 'alice-outage-outbox');
      // a reload during the outage: the service worker's shell, still unlocked, retrying by itself
      await bob2.reload(); // on the chat with alice: the same page comes back
      await bob2.getByRole('heading', { name: aliceLocal }).waitFor({ timeout: 20_000 });
      await bob2.getByRole('log').getByText('sent while you were offline').waitFor();
      await bob2.getByRole('status').filter({ hasText: 'Reconnecting…' }).waitFor({ timeout: 20_000 });
      await shot(bob2, 'bob-outage-reload');
      await stack.up();
      await alice.getByRole('log').locator('li', { hasText: 'written during the outage' }).getByText('Delivered').waitFor({ timeout: 90_000 });
      await waitConnectedWithin(bob2, 90_000);
      outage = false;
      if (await alice.locator('[data-connection-detail]').count()) throw new Error('a stale connection error is still shown');
      await bob2.getByRole('log').getByText('written during the outage').waitFor({ timeout: 30_000 });
      await new Promise((r) => setTimeout(r, 3000));
      const n = await bob2.getByRole('log').locator('li', { hasText: 'written during the outage' }).count();
      if (n !== 1) throw new Error(`the outbox message arrived ${n} times`);
    });
  }

  await step('lock on demand: the passphrase is asked, with focus in its field, also after a reload', async () => {
    await alice.getByRole('button', { name: 'Lock', exact: true }).click();
    await alice.getByRole('heading', { name: 'Unlock kez-chat' }).waitFor();
    await alice.waitForFunction(() => document.activeElement?.id === 'pass');
    await shot(alice, 'alice-locked');
  });

  await step('wrong passphrase is refused with a clear message', async () => {
    const p = await ctxA.newPage();
    watch(p, 'alice');
    await alice.close();
    await p.goto(base + '/#/');
    await p.getByLabel('Passphrase').fill('not my passphrase');
    await p.getByRole('button', { name: 'Unlock' }).click();
    await p.getByRole('alert').getByText(/Wrong passphrase/i).waitFor({ timeout: 10_000 });
    await shot(p, 'alice-wrong-passphrase');
    await p.getByLabel('Passphrase').fill(PASS);
    await p.getByRole('button', { name: 'Unlock' }).click();
    await p.getByRole('heading', { name: 'Chats' }).waitFor({ timeout: 20_000 });
    await p.getByRole('link', { name: new RegExp(bobLocal) }).first().click();
    await p.getByRole('log').getByText('hi alice, bob here').waitFor(); // history survived the reload
    await p.getByRole('link', { name: /Chats/ }).click();
    globalThis.alicePage = p;
  });

  const a = globalThis.alicePage;
  await step('settings: re-show the words after the passphrase, verify them, change passphrase', async () => {
    await a.getByRole('link', { name: 'Settings' }).click();
    await a.getByLabel('Passphrase', { exact: true }).fill(PASS);
    await a.getByRole('button', { name: 'Show my 24 words' }).click();
    await a.locator('[data-word]').nth(23).waitFor({ timeout: 10_000 });
    const shown = (await a.locator('[data-word]').allTextContents()).join(' ');
    if (aliceWords && shown !== aliceWords) throw new Error('re-shown words differ from the ones at creation');
    await a.getByRole('button', { name: 'Hide the words' }).click();
    await a.getByLabel('Type the 24 words from your paper').fill(shown);
    await a.getByRole('button', { name: 'Check' }).click();
    await a.getByText('These words restore this account.').waitFor();
    await a.getByLabel('Current passphrase').fill(PASS);
    await a.getByLabel(/^New passphrase/).fill(PASS + '!');
    await a.getByLabel('Repeat the new passphrase').fill(PASS + '!');
    await a.getByRole('button', { name: 'Change passphrase' }).click();
    await a.getByText('Passphrase changed.').waitFor({ timeout: 10_000 });
    await shot(a, 'alice-settings');
    aliceWords = shown;
  });

  await step('log out clears the browser; sign in again from the 24 words', async () => {
    await a.getByRole('button', { name: 'Log out…' }).click();
    await a.getByRole('button', { name: 'Log out and delete local data' }).click();
    await a.getByRole('heading', { name: 'kez-chat' }).waitFor();
    const left = await kvStore(a, null);
    await restoreAccount(a, base, aliceWords, aliceLocal);
    await waitConnected(a);
    await shot(a, 'alice-restored');
    if (left !== 0) throw new Error(`IndexedDB still held ${left} records after logout`);
  });

  await step('narrow screen layout', async () => {
    await a.setViewportSize({ width: 390, height: 844 });
    await a.getByRole('link', { name: 'Contacts' }).click();
    await shot(a, 'alice-mobile-contacts');
  });

  await step('every screen on a phone (390×844), then in dark mode on the phone and the desktop', async () => {
    const screens = async (p, tag) => {
      await p.getByRole('link', { name: /Chats/ }).click();
      await p.getByRole('heading', { name: 'Chats' }).waitFor();
      await shot(p, `${tag}-chats`);
      await p.getByRole('link', { name: aliceLocal }).first().click();
      await p.getByRole('log').waitFor();
      await shot(p, `${tag}-chat`);
      await p.getByRole('link', { name: 'Identity and safety number' }).click();
      await p.getByRole('heading', { name: 'Safety number' }).waitFor();
      await shot(p, `${tag}-contact`);
      for (const [name, heading] of [['Contacts', 'Contacts'], ['Identity', 'Your identity'], ['Settings', 'Settings']]) {
        await p.getByRole('link', { name, exact: true }).click();
        await p.getByRole('heading', { name: heading, exact: true }).waitFor();
        await shot(p, `${tag}-${name.toLowerCase()}`);
      }
    };
    await bob2.setViewportSize({ width: 390, height: 844 });
    await screens(bob2, 'phone');
    await bob2.getByLabel('Dark', { exact: true }).check();
    if (!(await bob2.evaluate(() => document.documentElement.classList.contains('dark')))) throw new Error('dark mode not applied');
    await screens(bob2, 'phone-dark');
    await bob2.setViewportSize({ width: 1280, height: 800 });
    await screens(bob2, 'desktop-dark');
    await bob2.reload(); // the choice is kept
    await bob2.getByRole('heading', { name: 'Settings' }).waitFor({ timeout: 20_000 });
    if (!(await bob2.evaluate(() => document.documentElement.classList.contains('dark')))) throw new Error('dark mode not kept after a reload');
    await bob2.getByLabel('Follow the system').check();
    // the system setting is followed as it changes (the media query's change event)
    await bob2.emulateMedia({ colorScheme: 'dark' });
    await bob2.waitForFunction(() => document.documentElement.classList.contains('dark'), null, { timeout: 5000 });
    await bob2.emulateMedia({ colorScheme: 'light' });
    await bob2.waitForFunction(() => !document.documentElement.classList.contains('dark'), null, { timeout: 5000 });
  });

  if (globalThis.carolHex) {
    await step('key change: the server now gives alice\'s handle another key; the new safety number before Accept, a confirmation before sending to the old key, one thread after', async () => {
      // The server (here: a route in bob's browser) answers alice's handle with carol's real, verifiable record.
      const carol = await (await fetch(`${base}/v1/u/${encodeURIComponent(`${carolLocal}@${domain}`)}`)).json();
      const forged = JSON.stringify({ ...carol, handle: `${aliceLocal}@${domain}` });
      await ctxB.route(new RegExp(`/v1/u/${aliceLocal}%40`), (r) => r.fulfill({ status: 200, contentType: 'application/json', body: forged }));
      await bob2.getByRole('link', { name: /Chats/ }).click();
      await bob2.reload(); // every unlock looks the pinned handles up again
      await bob2.getByRole('alert').filter({ hasText: 'Key change:' }).waitFor({ timeout: 20_000 });
      await bob2.getByRole('link', { name: `Review ${aliceLocal}@${domain}` }).click();
      const warning = bob2.locator('[data-key-change]');
      await warning.getByText(`${aliceLocal}@${domain} now has a different key.`).waitFor();
      await warning.getByLabel('New safety number').getByText(/^\d{5}( \d{5}){11}$/).waitFor();
      // sending still goes to the pinned key, but only after saying so
      await bob2.getByLabel(/^Message to/).fill('to the key I pinned');
      await bob2.getByRole('button', { name: 'Send', exact: true }).click();
      await bob2.getByRole('button', { name: 'Send to the old key' }).waitFor();
      await shot(bob2, 'bob-key-change');
      await bob2.getByRole('button', { name: 'Cancel' }).click();
      if (await bob2.getByRole('log').getByText('to the key I pinned').count()) throw new Error('sent to the old key without the confirmation');
      await warning.getByRole('button', { name: 'Accept the new key' }).click();
      await bob2.waitForURL(new RegExp(`#/chat/${globalThis.carolHex}$`));
      // one thread: the history with the previous key is here, marked, with a notice where the key changed
      await bob2.getByRole('log').locator('[data-notice]', { hasText: 'has a new key' }).waitFor();
      await bob2.getByRole('log').locator('li', { hasText: 'hello bob, this is alice' }).getByText('From the previous key').waitFor();
      await shot(bob2, 'bob-key-change-accepted');
      await ctxB.unroute(new RegExp(`/v1/u/${aliceLocal}%40`));
    });
  }

  await step('served precompressed, under a strict Content-Security-Policy that the app never violated', async () => {
    if (cspViolations.length) throw new Error(cspViolations.join('\n'));
    if (server) return console.log('  (app served by this script: no gateway headers to check)');
    const res = await fetch(base + '/', { headers: { 'accept-encoding': 'br' } });
    const csp = res.headers.get('content-security-policy') ?? '';
    if (!/script-src 'self';/.test(csp) || /unsafe/.test(csp)) throw new Error(`CSP missing or weak: ${csp}`);
    const html = await res.text();
    const js = html.match(/src="(\/assets\/[^"]+\.js)"/)?.[1];
    if (!js) throw new Error('no script in index.html');
    for (const [ae, enc] of [['br', 'br'], ['gzip', 'gzip']]) {
      // node's fetch decodes the body; the header says what was sent
      const r = await fetch(base + js, { headers: { 'accept-encoding': ae } });
      if (r.headers.get('content-encoding') !== enc) throw new Error(`${js} with ${ae}: content-encoding ${r.headers.get('content-encoding')}`);
    }
    if (cspViolations.length) throw new Error(cspViolations.join('\n'));
  });

  await step('no unexpected console errors', async () => {
    if (consoleErrors.length) throw new Error(consoleErrors.join('\n'));
  });

  await step('axe-core: no WCAG 2 A/AA violations on any page shown', async () => {
    if (axeViolations.length) throw new Error(axeViolations.join('\n'));
  });
  console.log(`domain ${domain}: handles ${aliceLocal}@${domain}, ${bobLocal}@${domain}`);
} catch (e) {
  failed = true;
  if (e?.stack) console.error(e.stack);
} finally {
  await browser?.close().catch(() => undefined);
  server?.close();
  if (stack && failed) console.log(`--- kez-server output:\n${stack.log().slice(-4000)}`);
  await stack?.stop().catch(() => undefined);
}
const passed = results.filter((r) => r.ok).length;
console.log(`\ne2e: ${passed} passed, ${results.length - passed} failed`);
console.log(`screenshots: ${shots}`);
if (consoleErrors.length) console.log('console errors:\n' + consoleErrors.join('\n'));
process.exit(failed || results.some((r) => !r.ok) ? 1 : 0);
