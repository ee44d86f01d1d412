// The WebSocket half of examples/loadtest/artillery.yml: both users' sockets, the events the
// walkthrough promises, and latency histograms (parley.ack_ms, parley.delivery_ms,
// parley.receipt_ms). Uses the global WebSocket (Node 22, or Node 20 with
// --experimental-websocket).

const EVENT_TIMEOUT_MS = 10000;

/** A socket whose events wait in `pending` until a `next(type)` claims them. */
class Peer {
  constructor(name, url) {
    this.name = name;
    this.pending = [];
    this.waiters = [];
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.ws.onopen = () => resolve();
      this.ws.onerror = () => reject(new Error(`${name}: WebSocket error`));
    });
    this.ws.onmessage = (message) => {
      this.pending.push(JSON.parse(message.data));
      this.waiters = this.waiters.filter((claim) => !claim());
    };
  }

  rpc(method, body, id) {
    this.ws.send(JSON.stringify(id === undefined ? { method, body } : { method, id, body }));
  }

  next(type) {
    return new Promise((resolve, reject) => {
      const claim = () => {
        const i = this.pending.findIndex((e) => e.type === type);
        if (i < 0) return false;
        clearTimeout(timer);
        resolve(this.pending.splice(i, 1)[0]);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((c) => c !== claim);
        reject(new Error(`${this.name}: no event ${type} within ${EVENT_TIMEOUT_MS} ms`));
      }, EVENT_TIMEOUT_MS);
      if (!claim()) this.waiters.push(claim);
    });
  }

  /** Fails on error events (90) or anything else left unclaimed. */
  expectNothingElse() {
    if (this.pending.length > 0) {
      throw new Error(`${this.name}: unexpected events ${JSON.stringify(this.pending)}`);
    }
  }

  close() {
    this.ws.close();
  }
}

function expect(condition, what) {
  if (!condition) throw new Error(`expected ${what}`);
}

/** Runs an async step as an Artillery function step; a thrown error fails the virtual user. */
function step(run) {
  return (context, events, done) => {
    run(context.vars, events).then(
      () => done(),
      (err) => {
        for (const peer of [context.vars.alice, context.vars.bob]) peer?.close();
        done(err);
      },
    );
  };
}

function pickNames(context, events, done) {
  context.vars.tag = `art_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  done();
}

const exchangeMessages = step(async (vars, events) => {
  if (typeof WebSocket === 'undefined') {
    throw new Error('no global WebSocket: run with NODE_OPTIONS=--experimental-websocket on Node 20');
  }
  // The group was created before the sockets opened: its 70 comes from a sync.
  const alice = (vars.alice = new Peer('alice', vars.aliceUrl));
  const bob = (vars.bob = new Peer('bob', vars.bobUrl));
  await Promise.all([alice.opened, bob.opened]);
  for (const peer of [alice, bob]) {
    peer.rpc(20, { seq: 0 });
    const group = await peer.next(70);
    expect(group.body.user_ids.join() === [vars.bobId, vars.aliceId].join(), '70 with bob, then alice');
    await peer.next(29);
  }

  const sentAt = Date.now();
  alice.rpc(40, { group_id: vars.groupId, data: 'Hello, how are you?' }, `${vars.tag}-m1`);
  const ack = await alice.next(21);
  events.emit('histogram', 'parley.ack_ms', Date.now() - sentAt);
  const message = await bob.next(20);
  events.emit('histogram', 'parley.delivery_ms', Date.now() - sentAt);
  expect(ack.id === `${vars.tag}-m1`, '21 to echo the client id');
  expect(message.body.message_id === ack.body.message_id && message.body.user_id === vars.aliceId,
    '20 with the acked message id and its sender');

  for (const [method, type] of [[41, 22], [42, 23]]) {
    const at = Date.now();
    bob.rpc(method, { message_id: ack.body.message_id });
    const receipt = await alice.next(type);
    events.emit('histogram', 'parley.receipt_ms', Date.now() - at);
    expect(receipt.body.user_id === vars.bobId, `${type} naming bob`);
  }

  bob.rpc(60, { group_id: vars.groupId });
  bob.rpc(61, { group_id: vars.groupId });
  expect((await alice.next(40)).body.user_id === vars.bobId, '40 from bob');
  expect((await alice.next(41)).body.user_id === vars.bobId, '41 from bob');
  alice.expectNothingElse();
  bob.expectNothingElse();
});

const checkLeaveAndJoin = step(async (vars, events) => {
  const { alice, bob } = vars;
  await Promise.all([alice.next(73), bob.next(73)]);
  await Promise.all([alice.next(70), alice.next(72), bob.next(72)]);
  alice.expectNothingElse();
  bob.expectNothingElse();
  alice.close();
  bob.close();
  events.emit('counter', 'parley.walkthroughs_completed', 1);
});

module.exports = { pickNames, exchangeMessages, checkLeaveAndJoin };
