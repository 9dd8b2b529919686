// A Node `ws` server for the specs: a third, independent implementation to test against.
// Paths as in tools/testpeer: /echo (and any other) echoes; /report first sends the offered
// Sec-WebSocket-Protocol header (or <none>); /close/<code>/<reason> closes at once;
// /ping/<payload> pings and sends pong:<payload> once answered; /fragments/<n> sends one
// TEXT message in n fragments. It agrees to permessage-deflate when a client offers it
// (compressing every message). The port is written to the file named by the first argument.
const fs = require('fs');
const { WebSocketServer } = require('ws');

const SUPPORTED = ['echo', 'chat', 'superchat'];

const server = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: { threshold: 0 },
  handleProtocols: (offered) => [...offered].find((name) => SUPPORTED.includes(name)) || false,
});

function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

server.on('connection', (ws, request) => {
  const path = request.url;
  if (path === '/report') {
    const offered = request.headers['sec-websocket-protocol'] || '<none>';
    ws.send(`sec-websocket-protocol: ${offered}`);
  } else if (path.startsWith('/close/')) {
    const [, , code, reason] = path.split('/');
    ws.close(Number(code), reason);
    return;
  } else if (path.startsWith('/ping/')) {
    const payload = path.slice('/ping/'.length);
    ws.once('pong', (data) => ws.send(`pong:${data.toString()}`));
    ws.ping(payload);
  } else if (path.startsWith('/fragments/')) {
    const count = Number(path.split('/')[2]);
    for (let index = 0; index < count; index += 1) {
      ws.send(`fragment-${index};`, { fin: index + 1 === count });
    }
  }
  echo(ws);
});

server.on('listening', () => {
  const file = process.argv[2];
  fs.writeFileSync(`${file}.partial`, `node=${server.address().port}\n`);
  fs.renameSync(`${file}.partial`, file);
});
