--- `websocket.server.copas.listen(config)`: a WebSocket server served by a copas loop.
--
-- The native core accepts connections, runs TLS and reads each request. A dispatcher
-- coroutine takes the core's events one by one (websocket.server_common):
--   'request'  a request head arrived: `config.on_request` (in a coroutine of its own, so it
--              may yield) refuses it with an HTTP response or lets the upgrade go on;
--   'open'     the upgrade is done: the protocol's handler runs in a coroutine of its own,
--              with a `ws` that has the client interface (no `connect`) plus `broadcast`,
--              `request`, `protocol` and `getpeername`;
--   'error'    a handshake failed: `on_error`;
--   'ended'    a connection ended;
--   'cluster'  another process of the cluster (config.cluster) broadcast a message.
-- The core keeps serving a connection whose handler returned (pings, closes, read-ahead).

local copas = require'copas'
local copas_connection = require'websocket.copas_connection'
local server_common = require'websocket.server_common'
local wait_module = require'websocket.wait'

local next = next
local pairs = pairs
local setmetatable = setmetatable

local handle_of = copas_connection.handle_of
local in_coroutine = wait_module.in_coroutine
local now = wait_module.now
local report = server_common.report
local wait = wait_module.wait

-- PUC Lua 5.1 cannot yield across pcall; coxpcall (a dependency of copas) can.
local pcall = (_VERSION == 'Lua 5.1' and not rawget(_G, 'jit')) and require'coxpcall'.pcall or pcall

-- How long server:close() waits for the closing handshakes.
local CLOSE_WAIT = 3

-- Already connected: lua-websockets' server-side ws has no connect.
local NO_CONNECT = { connect = false }

local Server = {}
Server.__index = Server

Server.broadcast = server_common.broadcast_method
Server.publish = server_common.publish_method

-- Waits until every handle in `handles` has finished its closing handshake, or until
-- `deadline`, when the rest are dropped.
local function wait_for_closes(handles, deadline)
  for index = 1, #handles do
    local handle = handles[index]
    while not handle:close_finished() do
      if not wait(handle, deadline) then
        handle:abort()
        break
      end
    end
  end
end

--- Stops listening (the port is free again at once) and, unless `keep_clients`, closes
-- every connection with 1001 "going away", returning once their closing handshakes are
-- done (or timed out): in a coroutine it yields meanwhile, outside one it blocks.
function Server:close(keep_clients)
  if not server_common.stop_listening(self) or keep_clients then
    return
  end
  local handles = {}
  for _, ws in pairs(self.connections) do
    local handle = handle_of(ws)
    handle:close_in_background(1001, 'going away')
    handles[#handles + 1] = handle
  end
  wait_for_closes(handles, now() + CLOSE_WAIT)
  if in_coroutine() and copas.sleep then
    -- Lets the handlers whose receive() returned run to their end before close returns.
    copas.sleep(0)
  end
end

local function run_handler(server, handler, ws)
  local ok, err = pcall(handler, ws)
  if not ok then
    report(server, err)
    if ws.state == 'OPEN' then
      ws:close(1011, 'internal error')
    end
  end
  -- Nobody receives for this connection now: what it still reads ahead is dropped once
  -- it ends.
  handle_of(ws):handler_returned()
end

function Server:start_connection(handle, protocol, request_id)
  -- The hook's request, with what it set; without a hook ws.request is made on first use.
  local ws = copas_connection.wrap(handle, nil, server_common.methods_for(self, protocol), {
    request = server_common.take_request_table(self, request_id),
    protocol = protocol,
  })
  self.connections[handle:id()] = ws
  local handler = server_common.handler_for(self, protocol)
  -- Closures, not arguments: copas 1.x passes a socket argument first, copas 4 does not.
  copas.addthread(function()
    run_handler(self, handler, ws)
  end)
end

--- With max_buffered: sends to a busy member from a coroutine of its own, so that the
-- broadcasting one never waits for it.
function Server:send_later(ws, message, opcode)
  local pending = self.sending_to
  pending[ws] = true
  copas.addthread(function()
    ws:send(message, opcode)
    pending[ws] = nil
  end)
end

function Server:sending_later(ws)
  return self.sending_to[ws] ~= nil
end

--- With on_backpressure = 'close': closes a member too slow to keep up, in the
-- background, dropping it if its closing handshake takes longer than CLOSE_WAIT (a peer
-- that does not read may never answer).
function Server:close_slow(ws)
  local handle = handle_of(ws)
  handle:close_in_background(1008, 'too slow')
  copas.addthread(function()
    wait_for_closes({ handle }, now() + CLOSE_WAIT)
  end)
end

function Server:connection_ended(id)
  self.connections[id] = nil
end

function Server:take_request(pending)
  local hook, request, id = server_common.request_arrived(self, pending)
  if hook then
    copas.addthread(function()
      server_common.answer_request(self, hook, pending, request, id, pcall)
    end)
  end
end

local function dispatch(server)
  local listener = server.listener
  while true do
    server_common.take_events(server)
    -- After close(true), connections kept open still report their ends here.
    if not server.listening and next(server.connections) == nil then
      return
    end
    wait(listener)
  end
end

local function listen(config)
  local listener = server_common.listen(config, 2)
  local server = server_common.new(Server, config, listener)
  -- The members a coroutine of send_later is sending to.
  server.sending_to = setmetatable({}, { __mode = 'k' })
  server.make_methods = function(key)
    return server_common.group_methods(server, key, NO_CONNECT)
  end
  copas.addthread(function()
    dispatch(server)
  end)
  return server
end

return {
  listen = listen,
}
