--- The server of the callback flavours (lua-websockets' ev server) on any loop adapter.
--
-- The native core accepts connections, runs TLS and reads each request, as for the copas
-- server. The listener's pump takes the core's events:
--   'request'  a request head arrived: `config.on_request` (a plain call) refuses it with
--              an HTTP response or lets the upgrade go on;
--   'open'     the upgrade is done: the protocol's handler is called with a `ws` that has
--              on_message, on_close, on_error, send, broadcast, close, request, protocol
--              and getpeername; the handler sets its callbacks and returns;
--   'error'    a handshake failed: `on_error`;
--   'ended'    a connection ended;
--   'cluster'  another process of the cluster (config.cluster) broadcast a message.

local native = require'websocket_native'
local callback_connection = require'websocket.callback_connection'
local callback_driver = require'websocket.callback_driver'

local error = error
local next = next
local pairs = pairs
local pcall = pcall
local setmetatable = setmetatable
local tostring = tostring
local type = type

local STATE = callback_connection.STATE

-- The key of the default handler's group (`server:broadcast(m, op, false)` names it).
local DEFAULT_GROUP = false

-- Tells the server's `on_error` about `message`; an `on_error` that raises goes to stderr
-- with the message it was given.
local function report(server, message)
  local ok, problem = pcall(server.error_callback, message)
  if not ok then
    callback_connection.report_to_stderr(('server on_error raised "%s" for: %s')
      :format(tostring(problem), tostring(message)))
  end
end

-- The members the core listed as busy (something else waits to be written to them) get
-- the broadcast queued behind it, so that nothing is lost and nothing waits.
local function send_to_busy(server, busy, message, opcode)
  if busy == nil then
    return
  end
  for index = 1, #busy do
    local ws = server.connections[busy[index]]
    if ws and ws.state == 'OPEN' then
      ws:send(message, opcode)
    end
  end
end

local function broadcast(server, message, opcode, group)
  local busy, problem = server.listener:broadcast(message, opcode, group)
  if busy == false then
    -- At the program's line: this function, the broadcast method, the caller.
    error(problem, 3)
  end
  send_to_busy(server, busy, message, opcode)
end

-- What a server-side ws has beyond the connection's methods; `key` names its group.
local function server_methods(server, key)
  return {
    broadcast = function(_, message, opcode)
      broadcast(server, message, opcode, key)
    end,
    getpeername = function(ws)
      local request = ws.request
      return request.address, request.port, request.family
    end,
  }
end

local LAZY_FIELDS = {
  request = function(ws)
    return ws[STATE].handle:request()
  end,
}

local Server = {}
Server.__index = Server

--- `server:broadcast(message, [opcode], [protocol])`: to every OPEN connection of that
-- protocol's group (`false`: the default handler's), or of every group when nil; with
-- `config.cluster`, in every process of the cluster.
function Server:broadcast(message, opcode, protocol)
  broadcast(self, message, opcode, protocol)
end

--- lua-websockets' ev server set its error callback this way (config.on_error does too).
function Server:on_error(callback)
  self.error_callback = callback
end

-- Whether the listener has nothing left to report: closed, and no connection left.
local function done(server)
  return not server.listening and next(server.connections) == nil
end

--- Stops listening (the port is free again at once) and, unless `keep_clients`, closes
-- every connection with 1001 "going away". Returns at once: each ws' on_close tells when
-- its closing handshake is done.
function Server:close(keep_clients)
  if not self.listening then
    return
  end
  self.listening = false
  self.listener:close()
  if not keep_clients then
    for _, ws in pairs(self.connections) do
      ws:close(1001, 'going away')
    end
  end
  if done(self) then
    self.driver.unregister(self.listener:id())
  end
end

local function methods_for(server, protocol)
  local key = protocol or DEFAULT_GROUP
  local methods = server.group_methods[key]
  if not methods then
    methods = server_methods(server, key)
    server.group_methods[key] = methods
  end
  return methods
end

local function connection_ended(server, id)
  server.connections[id] = nil
  if done(server) then
    server.driver.unregister(server.listener:id())
  end
end

local function start_connection(server, handle, protocol, request_id)
  local request = server.requests[request_id]
  server.requests[request_id] = nil
  local ws, connection = callback_connection.new(handle, server.driver, {
    extra_methods = methods_for(server, protocol),
    lazy_fields = LAZY_FIELDS,
    fields = { request = request, protocol = protocol },
    report = function(message)
      report(server, message)
    end,
    on_finish = function(finished)
      connection_ended(server, finished.id)
    end,
    open = true,
  })
  server.connections[connection.id] = ws
  server.driver.register(connection.id, connection)
  local config = server.config
  local handler = protocol and config.protocols[protocol] or config.default
  local ok, problem = pcall(handler, ws)
  if not ok then
    connection:fail(problem)
  end
  -- What arrived before the handler set its callbacks raised nothing new.
  connection:pump()
end

local function take_request(server, pending)
  local hook = server.config.on_request
  if not hook then
    pending:accept()
    return
  end
  local id = pending:id()
  local request = pending:request()
  local ok, status, headers, body = pcall(hook, request)
  if not ok then
    pending:respond(500)
    report(server, status)
    return
  end
  if status == nil or status == true then
    server.requests[id] = request
    pending:accept()
    return
  end
  local sent, problem = pending:respond(status, headers, body)
  if sent == nil then
    pending:respond(500)
    report(server, 'on_request returned a bad response: ' .. problem)
  end
end

local function handle_event(server, event, detail, extra, request_id)
  if event == 'request' then
    take_request(server, detail)
  elseif event == 'open' then
    start_connection(server, detail, extra, request_id)
  elseif event == 'error' then
    if extra then
      server.requests[extra] = nil
    end
    report(server, detail)
  elseif event == 'ended' then
    -- The ws hears its end from its own pump first; this one makes sure.
    local ws = server.connections[detail]
    if ws then
      ws[STATE]:pump()
    end
  elseif event == 'cluster' then
    send_to_busy(server, server.listener:deliver(detail, extra, request_id), detail, extra)
  end
end

--- Takes the core's events for this server (the driver calls it when they are raised).
function Server:pump()
  local listener = self.listener
  while true do
    local event, detail, extra, request_id = listener:next()
    if event == nil then
      return
    end
    local ok, problem = pcall(handle_event, self, event, detail, extra, request_id)
    if not ok then
      report(self, problem)
    end
  end
end

local function check_config(config)
  if type(config) ~= 'table' then
    error("bad argument #1 to 'listen' (table expected, got " .. type(config) .. ')', 4)
  end
  if config.protocols == nil and config.default == nil then
    error("bad argument #1 to 'listen' (config needs protocols or a default handler)", 4)
  end
  if config.protocols ~= nil and type(config.protocols) ~= 'table' then
    error("bad argument #1 to 'listen' (protocols: table expected)", 4)
  end
  if config.on_request ~= nil and type(config.on_request) ~= 'function' then
    error("bad argument #1 to 'listen' (on_request: function expected)", 4)
  end
end

local callback_server = {}

--- Listens as `config` says (the copas server's config), served by `adapter`'s loop.
function callback_server.listen(adapter, config)
  check_config(config)
  local names = {}
  for name in pairs(config.protocols or {}) do
    names[#names + 1] = name
  end
  local interface = config.interface or '*'
  local port = config.port or 80
  local listener, reason = native.listen(interface, port, names, config.default ~= nil, config)
  if listener == false then
    error(reason, 3)
  elseif not listener and config.unix then
    error(('cannot listen on unix socket %s: %s'):format(tostring(config.unix), reason), 3)
  elseif not listener then
    error(('cannot listen on %s port %s: %s'):format(interface, tostring(port), reason), 3)
  end
  local server = setmetatable({
    listener = listener,
    listening = true,
    config = config,
    driver = callback_driver.of(adapter),
    group_methods = {},
    connections = {},
    requests = {},
    error_callback = config.on_error or callback_connection.report_to_stderr,
  }, Server)
  server.driver.register(listener:id(), server)
  -- A new listener's flag is up already: its first events raise nothing new.
  server.driver.pump_soon(server)
  return server
end

return callback_server
