// The fan-out benchmark's server on Node's ws: every message is sent to every client, in a
// loop over wss.clients (ws's own broadcast idiom). bench/fanout.sh runs it. With
// FANOUT_DEFLATE set in the environment, it agrees to permessage-deflate and compresses
// every message, however small (threshold 0).
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: Number(process.argv[2]),
  perMessageDeflate: process.env.FANOUT_DEFLATE ? { threshold: 0 } : false,
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) client.send(data, { binary: isBinary });
  });
});
wss.on('listening', () => console.log('listening'));
