// Bare reference relay on Bun (uWebSockets inside): no auth, no storage. A client connects to
// /ws?user=U&group=G; an RPC {"method":40,"body":{"group_id","data"}} is answered with event 21
// to the sender and event 20 to every other connection in the group, in parley's JSON shapes.
// The group is a uWebSockets topic: ws.publish sends to every subscriber but the sender, which
// is the routing parley does, done the way Bun recommends for fan-out.
// Usage: bun bun_relay.js [host:port]   (default 127.0.0.1:0; prints the address on stderr)

const [host, port] = (process.argv[2] || "127.0.0.1:0").split(":");
let counter = 0;

function uuidLike(n) {
  return "00000000-0000-4000-8000-" + n.toString(16).padStart(12, "0");
}

const server = Bun.serve({
  hostname: host,
  port: Number(port),
  fetch(req, server) {
    const url = new URL(req.url);
    const user = url.searchParams.get("user") || "0";
    const group = url.searchParams.get("group") || "";
    if (server.upgrade(req, { data: { user: uuidLike(Number(user)), group } })) return;
    return new Response("expected a WebSocket upgrade", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    open(ws) {
      ws.subscribe(ws.data.group);
    },
    message(ws, text) {
      let rpc;
      try {
        rpc = JSON.parse(text);
      } catch {
        ws.send('{"type":90,"timestamp":0,"body":{"code":"bad_request"}}');
        return;
      }
      const body = rpc.body || {};
      if (rpc.method !== 40 || typeof body.data !== "string") {
        ws.send('{"type":90,"timestamp":0,"body":{"code":"bad_request"}}');
        return;
      }
      const messageId = uuidLike(++counter);
      const now = Date.now();
      ws.send(`{"type":21,"timestamp":${now},"body":{"message_id":"${messageId}"}}`);
      const event = JSON.stringify({
        type: 20,
        timestamp: now,
        body: { message_id: messageId, data: body.data, group_id: body.group_id, user_id: ws.data.user },
      });
      ws.publish(body.group_id, event);
    },
  },
});

console.error(`bun_relay: listening on ${server.hostname}:${server.port}`);
