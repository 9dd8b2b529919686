// A Node `ws` client for the specs: talks to the URL given as first argument (offering the
// `echo` protocol) and prints one line per exchange for the spec to check. A second
// argument `deflate` offers permessage-deflate (compressing every message) and prints the
// extensions the server agreed to.
const WebSocket = require('ws');

const deflate = process.argv[3] === 'deflate';
const ws = new WebSocket(process.argv[2], ['echo'], {
  perMessageDeflate: deflate ? { threshold: 0 } : false,
});
const big = 'x'.repeat(70000);
let received = 0;

ws.on('open', () => {
  console.log('protocol', ws.protocol);
  if (deflate) {
    console.log('extensions', ws.extensions);
  }
  ws.send('hello from node');
});

ws.on('message', (data, isBinary) => {
  received += 1;
  if (received === 1) {
    console.log('text', data.toString());
    ws.send(Buffer.from([0, 1, 255]));
  } else if (received === 2) {
    console.log('binary', data.toString('hex'), isBinary);
    ws.send(big);
  } else {
    console.log('big', data.length, data.toString() === big);
    ws.ping('are you there');
  }
});

ws.on('pong', () => {
  console.log('pong received');
  ws.close(4001, 'done');
});

ws.on('close', (code, reason) => {
  console.log('closed', code, reason.toString());
});

ws.on('error', (err) => {
  console.log('error', err.message);
  process.exitCode = 1;
});
