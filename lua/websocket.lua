--- lua-websockets-rs: `require'websocket'`.
-- The same table lua-websockets returned: the client and server flavours and the opcodes.
-- Loading it loads no copas: only the copas flavours do, when first asked for.

return {
  client = require'websocket.client',
  server = require'websocket.server',
  CONTINUATION = 0,
  TEXT = 1,
  BINARY = 2,
  CLOSE = 8,
  PING = 9,
  PONG = 10,
}
