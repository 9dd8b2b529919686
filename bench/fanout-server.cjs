// The fan-out benchmark's server on Node's ws: every message is sent to every client, in a
// loop over wss.clients (ws's own broadcast idiom), except the topic commands (below).
// bench/fanout.sh runs it. With
// FANOUT_DEFLATE set in the environment, it agrees to permessage-deflate and compresses
// every message, however small (threshold 0).
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: Number(process.argv[2]),
  perMessageDeflate: process.env.FANOUT_DEFLATE ? { threshold: 0 } : false,
});
// Topics as Node programs keep them: a Set of sockets per topic (`sub TOPIC`), and
// `pub TOPIC BODY` sends BODY to each.
const topics = new Map();
wss.on('connection', (ws) => {
  const mine = new Set();
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length > 4 && (data[0] === 0x73 || data[0] === 0x70)) {
      const text = data.toString();
      const [command, topic] = text.split(' ', 2);
      if (command === 'sub') {
        if (!topics.has(topic)) topics.set(topic, new Set());
        topics.get(topic).add(ws);
        mine.add(topic);
        return;
      }
      if (command === 'pub') {
        const body = text.slice(command.length + topic.length + 2);
        for (const client of topics.get(topic) || []) client.send(body);
        return;
      }
    }
    for (const client of wss.clients) client.send(data, { binary: isBinary });
  });
  ws.on('close', () => {
    for (const topic of mine) topics.get(topic).delete(ws);
  });
});
wss.on('listening', () => console.log('listening'));
