// Two people chat through the parley browser client (web/index.html) in headless Chromium.
//
// Usage: node chat.test.mjs http://127.0.0.1:PORT [screenshot.png]
// (scripts/browser-test.sh starts the server and runs this.)
//
// Every wait is a locator wait with a deadline, never a fixed sleep: the test moves on as soon
// as the page shows what it expects, and fails with a message saying what never appeared.

import { chromium } from 'playwright-core';

const baseUrl = process.argv[2];
const screenshotPath = process.argv[3];
if (!baseUrl) {
  console.error('usage: node chat.test.mjs BASE_URL [SCREENSHOT_PATH]');
  process.exit(2);
}

// Generous: CI machines are small and shared; a pass takes well under a second per step.
const WAIT_MS = 15000;

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

async function see(locator, what) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  } catch (err) {
    throw new Error(`never saw ${what} (${err.message.split('\n')[0]})`);
  }
}

async function notSee(locator, what) {
  try {
    await locator.first().waitFor({ state: 'hidden', timeout: WAIT_MS });
  } catch (err) {
    throw new Error(`${what} never went away (${err.message.split('\n')[0]})`);
  }
}

function step(text) {
  console.log(`- ${text}`);
}

// A page that fails loudly: script errors and console errors end the test. Failed HTTP
// requests are the exception: showing them is the page's job, and the test checks it does.
async function openPage(browser, who) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`${who}: page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(`${who}: console error: ${msg.text()}`);
  });
  await page.goto(baseUrl);
  return { page, problems };
}

// Register, log in, open a session, wait for the first sync to finish; returns the user id.
async function signUp(page, username) {
  await page.fill('#register-username', username);
  await page.fill('#register-email', `${username}@example.com`);
  await page.fill('#register-password', 'correct horse');
  await page.click('#register-form button[type=submit]');
  await see(page.locator('#notice', { hasText: `Registered ${username}` }), `${username} registered`);
  // Registering fills in the login form.
  await page.click('#login-form button[type=submit]');
  await see(page.locator('#session-form'), `${username}'s session form`);
  await page.fill('#session-name', `${username}-laptop`);
  await page.click('#session-form button[type=submit]');
  await see(page.locator('#conn-status[data-state="online"]'), `${username} online`);
  return (await page.textContent('#my-id')).trim();
}

function ownMessage(page, text) {
  return page.locator('#timeline .msg.own', { hasText: text });
}

function theirMessage(page, text) {
  return page.locator('#timeline .msg.theirs', { hasText: text });
}

function receipt(page, text, kind) {
  return ownMessage(page, text).locator(`.receipt[data-receipt="${kind}"]`);
}

function groupItem(page, name) {
  return page.locator('#group-list li', { hasText: name });
}

// The pages, so that a failure can print their protocol logs.
const pages = {};

async function run(browser) {
  const alice = await openPage(browser, 'alice');
  const bob = await openPage(browser, 'bob');
  pages.alice = alice.page;
  pages.bob = bob.page;
  const a = alice.page;
  const b = bob.page;

  step('alice and bob register, log in and open sessions');
  const aliceId = await signUp(a, 'alice');
  const bobId = await signUp(b, 'bob');
  const aliceShort = aliceId.slice(0, 8);
  const bobShort = bobId.slice(0, 8);

  step("alice creates a group with bob's id; both see it");
  await a.fill('#group-name', 'lunch');
  await a.fill('#group-members', bobId);
  await a.click('#create-group-form button[type=submit]');
  await see(groupItem(a, 'lunch'), 'the group in alice\'s list');
  await see(a.locator('#group-title', { hasText: 'lunch' }), 'the group open on alice\'s page');
  await see(groupItem(b, 'lunch'), 'the group in bob\'s list');
  await see(b.locator('#members', { hasText: aliceShort }), 'alice among the members on bob\'s page');
  const lunchId = (await a.textContent('#group-id')).trim();

  step('bob opens a group of his own, so that lunch is not on screen for him');
  await b.fill('#group-name', 'notes');
  await b.click('#create-group-form button[type=submit]');
  await see(b.locator('#group-title', { hasText: 'notes' }), 'notes open on bob\'s page');
  const notesId = (await b.textContent('#group-id')).trim();

  step('alice sends a message; bob receives it (delivered) but has not shown it (not read)');
  const hello = 'Hi Bob! Lunch at noon?';
  await a.fill('#message-input', hello);
  await a.press('#message-input', 'Enter');
  await see(receipt(a, hello, 'delivered'), '✓ delivered on alice\'s message');
  await see(groupItem(b, 'lunch').locator('.badge', { hasText: '1' }), 'an unread badge on bob\'s lunch');
  if ((await receipt(a, hello, 'delivered').textContent()).trim() !== '✓ delivered') {
    throw new Error('the delivered mark does not read "✓ delivered"');
  }

  step('bob opens lunch: he sees the message, alice sees it read');
  await groupItem(b, 'lunch').click();
  await see(theirMessage(b, hello).locator('.sender', { hasText: aliceShort }), 'alice\'s message on bob\'s page');
  await see(receipt(a, hello, 'read'), '✓✓ read on alice\'s message');
  await notSee(groupItem(b, 'lunch').locator('.badge'), 'bob\'s unread badge');

  step('bob types; alice sees the typing indicator');
  const reply = 'Sure, see you there.';
  await b.fill('#message-input', reply);
  await see(a.locator('#typing', { hasText: `${bobShort} is typing` }), 'bob typing on alice\'s page');

  step('bob replies; alice sees the reply and the indicator goes');
  await b.press('#message-input', 'Enter');
  await see(theirMessage(a, reply).locator('.sender', { hasText: bobShort }), 'bob\'s reply on alice\'s page');
  await notSee(a.locator('#typing', { hasText: 'is typing' }), 'the typing indicator');
  await see(receipt(b, reply, 'read'), '✓✓ read on bob\'s reply (alice has lunch open)');

  step('bob goes back to notes; alice\'s next message is delivered only');
  await groupItem(b, 'notes').click();
  await see(b.locator('#group-title', { hasText: 'notes' }), 'notes open on bob\'s page');
  const later = 'Great, I will book a table.';
  await a.fill('#message-input', later);
  await a.press('#message-input', 'Enter');
  await see(receipt(a, later, 'delivered'), '✓ delivered on alice\'s second message');
  await see(receipt(a, hello, 'read'), 'the first message still read');

  if (screenshotPath) {
    await a.screenshot({ path: screenshotPath });
    step(`saved alice's page to ${screenshotPath}`);
  }

  step('alice joins bob\'s notes by its id, then leaves; bob sees both');
  await a.fill('#join-group-id', notesId);
  await a.click('#join-group-form button[type=submit]');
  await see(a.locator('#group-title', { hasText: 'notes' }), 'notes open on alice\'s page');
  await see(b.locator('#timeline .notice', { hasText: `${aliceShort} joined` }), 'alice joined, on bob\'s page');
  await see(b.locator('#members', { hasText: aliceShort }), 'alice in notes\' members on bob\'s page');
  await a.click('#leave-group');
  await see(b.locator('#timeline .notice', { hasText: `${aliceShort} left` }), 'alice left, on bob\'s page');
  await see(a.locator('#message-input:disabled'), 'alice\'s composer disabled after leaving');
  await see(a.locator('#rejoin-group'), 'a join-again button on alice\'s page');

  step('errors are shown: an HTTP error and a WebSocket error event');
  await a.fill('#join-group-id', '00000000-0000-4000-8000-000000000000');
  await a.click('#join-group-form button[type=submit]');
  await see(a.locator('#errors li', { hasText: 'HTTP 404 not_found' }), 'the 404 on alice\'s page');
  await a.evaluate(() => send({ method: 99 }));
  await see(a.locator('#errors li', { hasText: 'unknown_method' }), 'the type-90 event on alice\'s page');

  step('a reload syncs everything back');
  await b.reload();
  await see(b.locator('#conn-status[data-state="online"]'), 'bob online again');
  await groupItem(b, 'lunch').click();
  await see(theirMessage(b, later), 'alice\'s second message after bob\'s reload');
  await see(ownMessage(b, reply), 'bob\'s reply after his reload');
  await groupItem(a, 'lunch').click();
  await see(receipt(a, later, 'read'), '✓✓ read on alice\'s second message');

  step('alice loses her connection: what she sends waits, what she missed comes by sync');
  // The page's own reconnect timer would race the steps below: hold it off, reconnect by hand.
  await a.evaluate(() => {
    state.reconnectDelay = 3600 * 1000;
    state.socket.close();
  });
  await see(a.locator('#conn-status[data-state="offline"]'), 'alice offline');
  const missed = 'Are you still there?';
  await b.fill('#message-input', missed);
  await b.press('#message-input', 'Enter');
  await see(receipt(b, missed, 'sent'), 'bob\'s message acknowledged while alice is away');
  const queued = 'Back now.';
  await a.fill('#message-input', queued);
  await a.press('#message-input', 'Enter');
  await see(receipt(a, queued, 'sending'), 'alice\'s message waiting while offline');
  // Reconnecting syncs from the page's cursor, then sends what waited.
  await a.evaluate(() => connect());
  await see(a.locator('#conn-status[data-state="online"]'), 'alice online again');
  await see(theirMessage(a, missed), 'the message alice missed');
  await see(receipt(b, missed, 'read'), '✓✓ read on bob\'s message after alice is back');
  await see(receipt(a, queued, 'read'), '✓✓ read on the message alice sent while offline');
  if (await ownMessage(a, queued).count() !== 1) throw new Error('the retried message shows twice');

  step('a long history: alice sends 600 messages, bob reloads and syncs them in pages');
  const before = await ownMessage(a, '').count();
  await a.evaluate((count) => {
    for (let i = 1; i <= count; i += 1) {
      $('message-input').value = `bulk ${i} of ${count}`;
      $('composer').requestSubmit();
    }
  }, 600);
  await see(receipt(a, 'bulk 600 of 600', 'read'), 'the last bulk message read by bob');
  // Many of them share a millisecond: none may be taken for a duplicate of another.
  const live = await theirMessage(b, '').count();
  if (live !== before + 600) throw new Error(`bob has ${live} of alice's messages live, not ${before + 600}`);
  // Count the sync requests on the wire itself, as the browser sends them; each pages by seq.
  const syncs = [];
  b.on('websocket', (socket) => socket.on('framesent', (frame) => {
    const rpc = JSON.parse(frame.payload);
    if (rpc.method === 20) syncs.push(rpc);
  }));
  await b.reload();
  await see(b.locator('#conn-status[data-state="online"]'), 'bob online after the second reload');
  await groupItem(b, 'lunch').click();
  await see(theirMessage(b, 'bulk 600 of 600'), 'the last bulk message after bob\'s reload');
  const synced = await theirMessage(b, '').count();
  if (synced !== before + 600) throw new Error(`bob has ${synced} of alice's messages, not ${before + 600}`);
  if (syncs.length < 2) throw new Error(`bob's sync asked for ${syncs.length} page(s); expected several`);
  // A fresh page starts at seq 0 and each page continues from the previous page's last seq.
  const cursors = syncs.map((rpc) => ('timestamp' in rpc ? NaN : rpc.seq));
  if (cursors[0] !== 0 || cursors.some((seq, i) => !Number.isInteger(seq) || (i > 0 && seq <= cursors[i - 1]))) {
    throw new Error(`bob's sync requests do not page by increasing seq: ${JSON.stringify(syncs)}`);
  }
  step(`bob synced ${synced} messages from alice in ${syncs.length} sync requests`);

  const problems = [...alice.problems, ...bob.problems];
  if (problems.length) throw new Error(problems.join('\n'));
  if (lunchId === notesId) throw new Error('two groups with the same id');
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
try {
  await run(browser);
  console.log('browser test passed');
} catch (err) {
  console.error(`browser test FAILED: ${err.message}`);
  for (const [who, page] of Object.entries(pages)) {
    const log = await page.evaluate(() => [...document.querySelectorAll('#wire-log li')]
      .slice(-60).map((line) => line.textContent).join('\n')).catch((e) => `(no log: ${e.message})`);
    console.error(`--- ${who}'s protocol log (last 60 lines):\n${log}`);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
