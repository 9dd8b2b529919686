--- `websocket.server.copas.listen(config)`: a WebSocket server served by a copas loop.
--
-- The native core accepts connections, runs TLS and reads each request. A dispatcher
-- coroutine takes the core's events one by one:
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
local native = require'websocket_native'
local copas_connection = require'websocket.copas_connection'
local wait_module = require'websocket.wait'

local error = error
local io_stderr = io.stderr
local next = next
local pairs = pairs
local setmetatable = setmetatable
local tostring = tostring
local type = type

local handle_of = copas_connection.handle_of
local in_coroutine = wait_module.in_coroutine
local now = wait_module.now
local wait = wait_module.wait

-- PUC Lua 5.1 cannot yield across pcall; coxpcall (a dependency of copas) can.
local pcall = (_VERSION == 'Lua 5.1' and not rawget(_G, 'jit')) and require'coxpcall'.pcall or pcall

-- The key of the default handler's group (`server:broadcast(m, op, false)` names it).
local DEFAULT_GROUP = false
-- How long server:close() waits for the closing handshakes.
local CLOSE_WAIT = 3

local function default_on_error(message)
  io_stderr:write('websocket server: ', tostring(message), '\n')
end

-- Tells `on_error` about `message`; an `on_error` that raises goes to stderr with the
-- message it was given, and the server goes on (no callback can stop it).
local function report(server, message)
  local ok, problem = pcall(server.on_error, message)
  if not ok then
    io_stderr:write('websocket server: on_error raised "', tostring(problem),
      '" for: ', tostring(message), '\n')
  end
end

-- The core writes a broadcast to every member whose socket takes it at once; the members
-- it lists as busy (something else waits to be written to them) get it from a send that
-- waits, so that nothing is lost and a slow member holds back only this sender.
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

-- A broadcast from this process: `group` is a protocol, DEFAULT_GROUP, or nil for all.
local function broadcast(server, message, opcode, group)
  local busy, problem = server.listener:broadcast(message, opcode, group)
  if busy == false then
    -- At the program's line: this function, the broadcast method, the caller.
    error(problem, 3)
  end
  send_to_busy(server, busy, message, opcode)
end

-- What a server-side ws has beyond the client interface; `key` names its group (a
-- protocol, or DEFAULT_GROUP).
local function server_methods(server, key)
  return {
    -- Already connected: lua-websockets' server-side ws has no connect.
    connect = false,
    broadcast = function(_, message, opcode)
      broadcast(server, message, opcode, key)
    end,
    -- A connection on a unix socket answers the socket's path, nil and 'unix'.
    getpeername = function(ws)
      local request = ws.request
      return request.address, request.port, request.family
    end,
  }
end

local Server = {}
Server.__index = Server

--- `server:broadcast(message, [opcode], [protocol])`: to every OPEN connection of that
-- protocol's group (`false`: the default handler's), or of every group when nil; with
-- `config.cluster`, in every process of the cluster.
function Server:broadcast(message, opcode, protocol)
  broadcast(self, message, opcode, protocol)
end

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
  if not self.listening then
    return
  end
  self.listening = false
  self.listener:close()
  if keep_clients then
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

-- The methods of the ws of `protocol`'s group, made once per group.
local function methods_for(server, protocol)
  local key = protocol or DEFAULT_GROUP
  local methods = server.group_methods[key]
  if not methods then
    methods = server_methods(server, key)
    server.group_methods[key] = methods
  end
  return methods
end

local function start_connection(server, handle, protocol, request_id)
  -- The hook's request, with what it set; without a hook ws.request is made on first use.
  local request = server.requests[request_id]
  server.requests[request_id] = nil
  local ws = copas_connection.wrap(handle, nil, methods_for(server, protocol), {
    request = request,
    protocol = protocol,
  })
  server.connections[handle:id()] = ws
  local config = server.config
  local handler = protocol and config.protocols[protocol] or config.default
  -- Closures, not arguments: copas 1.x passes a socket argument first, copas 4 does not.
  copas.addthread(function()
    run_handler(server, handler, ws)
  end)
end

-- Runs `on_request` and answers the request as it says.
local function answer_request(server, hook, pending, request, id)
  local ok, status, headers, body = pcall(hook, request)
  if not ok then
    server.requests[id] = nil
    pending:respond(500)
    report(server, status)
    return
  end
  if status == nil or status == true then
    pending:accept()
    return
  end
  server.requests[id] = nil
  local sent, problem = pending:respond(status, headers, body)
  if sent == nil then
    pending:respond(500)
    report(server, 'on_request returned a bad response: ' .. problem)
  end
end

local function take_request(server, pending)
  local hook = server.config.on_request
  if not hook then
    pending:accept()
    return
  end
  local id = pending:id()
  local request = pending:request()
  server.requests[id] = request
  copas.addthread(function()
    answer_request(server, hook, pending, request, id)
  end)
end

-- Acts on one event of the core.
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
    server.connections[detail] = nil
  elseif event == 'cluster' then
    -- Another process's broadcast: `detail` the message, `extra` its opcode.
    send_to_busy(server, server.listener:deliver(detail, extra, request_id), detail, extra)
  end
end

local function dispatch(server)
  local listener = server.listener
  -- After close(true), connections kept open still report their ends here.
  while server.listening or next(server.connections) ~= nil do
    local event, detail, extra, request_id = listener:next()
    if event == nil then
      wait(listener)
    else
      -- Whatever an event's Lua raises, the dispatcher goes on accepting.
      local ok, problem = pcall(handle_event, server, event, detail, extra, request_id)
      if not ok then
        report(server, problem)
      end
    end
  end
end

local function check_config(config)
  if type(config) ~= 'table' then
    error("bad argument #1 to 'listen' (table expected, got " .. type(config) .. ')', 3)
  end
  if config.protocols == nil and config.default == nil then
    error("bad argument #1 to 'listen' (config needs protocols or a default handler)", 3)
  end
  if config.protocols ~= nil and type(config.protocols) ~= 'table' then
    error("bad argument #1 to 'listen' (protocols: table expected)", 3)
  end
  if config.on_request ~= nil and type(config.on_request) ~= 'function' then
    error("bad argument #1 to 'listen' (on_request: function expected)", 3)
  end
end

local function listen(config)
  check_config(config)
  local names = {}
  for name in pairs(config.protocols or {}) do
    names[#names + 1] = name
  end
  local interface = config.interface or '*'
  local port = config.port or 80
  local listener, reason = native.listen(interface, port, names, config.default ~= nil, config)
  if listener == false then
    error(reason, 2)
  elseif not listener and config.unix then
    error(('cannot listen on unix socket %s: %s'):format(tostring(config.unix), reason), 2)
  elseif not listener then
    error(('cannot listen on %s port %s: %s'):format(interface, tostring(port), reason), 2)
  end
  local server = setmetatable({
    listener = listener,
    listening = true,
    config = config,
    -- The methods of each group's ws, by protocol (DEFAULT_GROUP: the default handler's).
    group_methods = {},
    -- The open connections' ws, by connection id.
    connections = {},
    -- Requests waiting for their upgrade, by request id.
    requests = {},
    on_error = config.on_error or default_on_error,
  }, Server)
  copas.addthread(function()
    dispatch(server)
  end)
  return server
end

return {
  listen = listen,
}
