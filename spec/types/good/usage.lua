-- Uses the whole API as docs/api.md describes it: type-checks without a warning against
-- types/ (scripts/test.sh runs the checker). Never run.

local copas = require'copas'
local websocket = require'websocket'

local client = websocket.client.sync({ timeout = 2, headers = { Origin = 'http://x' },
  ping_interval = 20, ping_timeout = 5, max_message_size = 1024 })
local ok, protocol, headers = client:connect('wss://example.test/chat', { 'chat' },
  { verify = 'peer', cafile = 'ca.pem' }, { Authorization = 'Bearer t' })
if ok and headers then
  print(protocol, headers['content-type'])
  client:send('hello', websocket.TEXT)
  local message, opcode = client:receive()
  print(message, opcode == websocket.BINARY, client.state)
  local was_clean, code, reason = client:close(1000, 'bye')
  print(was_clean, code + 1, reason:upper())
end

local copas_client = websocket.client.copas({ timeout = 1, max_queue = 4 })
print(copas_client.state)

local server = websocket.server.copas.listen({
  port = 8080,
  interface = '127.0.0.1',
  ssl = { certificate = 'cert.pem', key = 'key.pem', verify = { 'peer', 'fail_if_no_peer_cert' } },
  ping_interval = 20,
  reuse_port = true,
  max_buffered = 1024 * 1024,
  on_backpressure = 'close',
  on_request = function(request)
    if request.path == '/health' then
      return 200, { ['content-type'] = 'text/plain' }, 'ok'
    end
    request.user = request.headers.authorization
  end,
  protocols = {
    echo = function(ws)
      local address, port, family = ws:getpeername()
      print(address, port + 1, family, ws.protocol, ws.request.user, ws.request.secure)
      ws:broadcast('joined')
      ws:subscribe('room-1')
      ws:publish('room-1', 'hello', websocket.TEXT)
      print(ws:buffered() + ws.dropped, (ws:ping('x') or 0) + 1)
      ws:unsubscribe('room-1')
      ws:send((ws:receive()))
    end,
  },
  default = function(ws) ws:close() end,
  on_error = function(message) print(message) end,
})
server:broadcast('to all', websocket.TEXT, false)
server:publish('room-1', 'to the room')
server:close(true)
copas.loop()

local luv_client = websocket.client.luv({ timeout = 5, loop = require'luv' })
luv_client:on_open(function(ws, selected, response_headers)
  print(selected, response_headers['server'], ws.state)
  ws:send('hi', websocket.TEXT)
end)
luv_client:on_message(function(ws, message, opcode)
  print(message:upper(), opcode == websocket.BINARY)
  ws:close(1000, 'done', 2)
end)
luv_client:on_close(function(_, was_clean, code, reason) print(was_clean, code + 1, reason:upper()) end)
luv_client:on_error(function(_, err) print(err) end)
luv_client:connect('ws://127.0.0.1:8080/', 'echo')
local luv_server = websocket.server.luv.listen({
  port = 8081,
  default = function(ws)
    print(ws.request.path, ws.protocol, ws:getpeername())
    ws:on_message(function(_, message) ws:broadcast(message) end)
    ws:subscribe('news')
    ws:ping(function(_, seconds) print((seconds or 0) + ws:buffered()) end)
  end,
})
luv_server:close()
