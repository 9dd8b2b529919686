// A Node `ws` client for the topic specs: sends `sub TOPIC` and waits for `subscribed
// TOPIC`, then `pub TOPIC hello from node` and `go TOPIC`, and prints `got <message>` for
// each message until `end`.
//   node node_topics.cjs URL TOPIC
const WebSocket = require('ws');

const [url, topic] = process.argv.slice(2);
const ws = new WebSocket(url, ['chat']);
let subscribed = false;

ws.on('open', () => ws.send(`sub ${topic}`));
ws.on('message', (data) => {
  const message = data.toString();
  if (!subscribed) {
    if (message === `subscribed ${topic}`) {
      subscribed = true;
      ws.send(`pub ${topic} hello from node`);
      ws.send(`go ${topic}`);
    }
    return;
  }
  console.log('got', message);
  if (message === 'end') ws.close();
});
ws.on('error', (err) => {
  console.log('error', err.message);
  process.exit(1);
});
