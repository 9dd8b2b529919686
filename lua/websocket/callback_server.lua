--- The server of the callback flavours (lua-websockets' ev server) on any loop adapter.
--
-- The native core accepts connections, runs TLS and reads each request, as for the copas
-- server. The listener's pump takes the core's events (websocket.server_common):
--   'request'  a request head arrived: `config.on_request` (a plain call) refuses it with
--              an HTTP response or lets the upgrade go on;
--   'open'     the upgrade is done: the protocol's handler is called with a `ws` that has
--              on_message, on_close, on_error, send, broadcast, close, request, protocol
--              and getpeername; the handler sets its callbacks and returns;
--   'error'    a handshake failed: `on_error`;
--   'ended'    a connection ended;
--   'cluster'  another process of the cluster (config.cluster) broadcast a message.

local callback_connection = require'websocket.callback_connection'
local callback_driver = require'websocket.callback_driver'
local server_common = require'websocket.server_common'

local next = next
local pairs = pairs
local pcall = pcall

local STATE = callback_connection.STATE

-- Fields of a server-side ws made on first use.
local LAZY_FIELDS = {
  request = function(ws)
    return ws[STATE].handle:request()
  end,
  -- Broadcasts and publishes it missed under max_buffered (on_backpressure = 'drop').
  dropped = function()
    return 0
  end,
}

local Server = {}
Server.__index = Server

Server.broadcast = server_common.broadcast_method
Server.publish = server_common.publish_method

--- lua-websockets' ev server set its error callback this way (config.on_error does too).
function Server:on_error(callback)
  self.error_callback = callback
end

-- The listener is pumped until it is closed and no connection is left.
local function unregister_when_done(server)
  if not server.listening and next(server.connections) == nil then
    server.driver.unregister(server.listener:id())
  end
end

--- Stops listening (the port is free again at once) and, unless `keep_clients`, closes
-- every connection with 1001 "going away". Returns at once: each ws' on_close tells when
-- its closing handshake is done.
function Server:close(keep_clients)
  if not server_common.stop_listening(self) then
    return
  end
  if not keep_clients then
    for _, ws in pairs(self.connections) do
      ws:close(1001, 'going away')
    end
  end
  unregister_when_done(self)
end

function Server:start_connection(handle, protocol, request_id)
  local ws, connection = callback_connection.new(handle, self.driver, {
    extra_methods = server_common.methods_for(self, protocol),
    lazy_fields = LAZY_FIELDS,
    fields = { request = server_common.take_request_table(self, request_id), protocol = protocol },
    report = function(message)
      server_common.report(self, message)
    end,
    on_finish = function(finished)
      self.connections[finished.id] = nil
      unregister_when_done(self)
    end,
    open = true,
  })
  self.connections[connection.id] = ws
  self.driver.register(connection.id, connection)
  local ok, problem = pcall(server_common.handler_for(self, protocol), ws)
  if not ok then
    connection:fail(problem)
  end
  -- What arrived before the handler set its callbacks raised nothing new.
  connection:pump()
end

--- With max_buffered: a send that waits for the socket queues, so nothing waits anyway.
function Server:send_later(ws, message, opcode)
  ws:send(message, opcode)
end

function Server:sending_later(ws)
  return ws[STATE].sending
end

--- With on_backpressure = 'close': closes a member too slow to keep up.
function Server:close_slow(ws)
  ws:close(1008, 'too slow')
end

function Server:connection_ended(id)
  -- The ws hears its end from its own pump first; this one makes sure.
  local ws = self.connections[id]
  if ws then
    ws[STATE]:pump()
  end
end

function Server:take_request(pending)
  local hook, request, id = server_common.request_arrived(self, pending)
  if hook then
    server_common.answer_request(self, hook, pending, request, id)
  end
end

--- Takes the core's events for this server (the driver calls it when they are raised).
Server.pump = server_common.take_events

local callback_server = {}

--- Listens as `config` says (the copas server's config), served by `adapter`'s loop; a
-- bad config raises at the line two calls up (the program's, through the flavour's
-- listen).
function callback_server.listen(adapter, config)
  local listener = server_common.listen(config, 3)
  local server = server_common.new(Server, config, listener)
  server.driver = callback_driver.of(adapter)
  server.make_methods = function(key)
    return server_common.group_methods(server, key)
  end
  server.driver.register(listener:id(), server)
  -- A new listener's flag is up already: its first events raise nothing new.
  server.driver.pump_soon(server)
  return server
end

return callback_server
