// Bare reference relay on Node with `ws`: no auth, no storage. A client connects to
// /ws?user=U&group=G; an RPC {"method":40,"body":{"group_id","data"}} is answered with event 21
// to the sender and event 20 to every other connection in the group, in parley's JSON shapes.
// Usage: node node_relay.js [host:port]   (default 127.0.0.1:0; prints the address on stderr)

const http = require("http");
const { WebSocketServer } = require("ws");

const [host, port] = (process.argv[2] || "127.0.0.1:0").split(":");
const groups = new Map();
let counter = 0;

function uuidLike(n) {
  return "00000000-0000-4000-8000-" + n.toString(16).padStart(12, "0");
}

const server = http.createServer((req, res) => {
  res.writeHead(400);
  res.end("expected a WebSocket upgrade");
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false });

wss.on("connection", (ws, req) => {
  const url = new URL(req.url, "http://relay");
  const user = uuidLike(Number(url.searchParams.get("user") || "0"));
  const group = url.searchParams.get("group") || "";
  let members = groups.get(group);
  if (!members) groups.set(group, (members = new Set()));
  members.add(ws);

  ws.on("message", (data, isBinary) => {
    let rpc;
    try {
      rpc = JSON.parse(data.toString());
    } catch {
      ws.send('{"type":90,"timestamp":0,"body":{"code":"bad_request"}}');
      return;
    }
    const body = rpc.body || {};
    if (isBinary || rpc.method !== 40 || typeof body.data !== "string") {
      ws.send('{"type":90,"timestamp":0,"body":{"code":"bad_request"}}');
      return;
    }
    const messageId = uuidLike(++counter);
    const now = Date.now();
    ws.send(`{"type":21,"timestamp":${now},"body":{"message_id":"${messageId}"}}`);
    const event = JSON.stringify({
      type: 20,
      timestamp: now,
      body: { message_id: messageId, data: body.data, group_id: body.group_id, user_id: user },
    });
    const targets = groups.get(body.group_id);
    if (!targets) return;
    for (const member of targets) if (member !== ws) member.send(event);
  });
  ws.on("close", () => members.delete(ws));
  ws.on("error", () => {});
});

server.listen(Number(port), host, () => {
  console.error(`node_relay: listening on ${host}:${server.address().port}`);
});
