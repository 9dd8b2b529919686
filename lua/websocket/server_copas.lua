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
--   'ended'    a connection ended: it leaves its broadcast group;
--   'cluster'  another process of the cluster (config.cluster) broadcast a message.
-- The core keeps serving a connection whose handler returned (pings, closes, read-ahead).

local copas = require'copas'
local native = require'websocket_native'
local client_nonblocking = require'websocket.client_nonblocking'
local wait_module = require'websocket.wait'

local error = error
local io_stderr = io.stderr
local next = next
local pairs = pairs
local setmetatable = setmetatable
local tostring = tostring
local type = type

local handle_of = client_nonblocking.handle_of
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

--- Sends to every OPEN connection of `group` (a table ws -> true). The members are listed
-- first: a send may yield, and connections may come and go meanwhile.
local function broadcast_to(group, message, opcode)
  local members, count = {}, 0
  for member in pairs(group) do
    count = count + 1
    members[count] = member
  end
  for index = 1, count do
    local member = members[index]
    if member.state == 'OPEN' then
      member:send(message, opcode)
    end
  end
end

-- What a server-side ws has beyond the client interface; `key` names its group (a
-- protocol, or DEFAULT_GROUP).
local function server_methods(server, key, group)
  return {
    -- Already connected: lua-websockets' server-side ws has no connect.
    connect = false,
    broadcast = function(_, message, opcode)
      -- Other processes of the cluster first: it checks the message before any send.
      local ok, problem = server.listener:publish(message, opcode, key)
      if ok == false then
        error(problem, 2)
      end
      broadcast_to(group, message, opcode)
    end,
    getpeername = function(ws)
      local request = ws.request
      local family = request.address:find(':', 1, true) and 'inet6' or 'inet'
      return request.address, request.port, family
    end,
  }
end

local Server = {}
Server.__index = Server

-- Delivers a broadcast to this process's connections of `protocol`'s group (nil: all).
local function deliver(server, message, opcode, protocol)
  if protocol == nil then
    for _, group in pairs(server.groups) do
      broadcast_to(group, message, opcode)
    end
  elseif server.groups[protocol] then
    broadcast_to(server.groups[protocol], message, opcode)
  end
end

--- `server:broadcast(message, [opcode], [protocol])`: to every OPEN connection of that
-- protocol's group (`false`: the default handler's), or of every group when nil; with
-- `config.cluster`, in every process of the cluster.
function Server:broadcast(message, opcode, protocol)
  local ok, problem = self.listener:publish(message, opcode, protocol)
  if ok == false then
    error(problem, 2)
  end
  deliver(self, message, opcode, protocol)
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
  for _, entry in pairs(self.connections) do
    local handle = handle_of(entry.ws)
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
    server.on_error(err)
    if ws.state == 'OPEN' then
      ws:close(1011, 'internal error')
    end
  end
end

-- A connection that ended leaves its group.
local function forget(server, id)
  local entry = server.connections[id]
  if entry then
    server.connections[id] = nil
    entry.group[entry.ws] = nil
  end
end

local function group_for(server, protocol)
  local key = protocol or DEFAULT_GROUP
  local group = server.groups[key]
  if not group then
    group = {}
    server.groups[key] = group
    server.group_methods[key] = server_methods(server, key, group)
  end
  return group, server.group_methods[key]
end

local function start_connection(server, handle, protocol, request_id)
  -- The hook's request, with what it set; without a hook ws.request is made on first use.
  local request = server.requests[request_id]
  server.requests[request_id] = nil
  local group, methods = group_for(server, protocol)
  local ws = client_nonblocking.wrap(handle, nil, methods, {
    request = request,
    protocol = protocol,
  })
  group[ws] = true
  server.connections[handle:id()] = { ws = ws, group = group }
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
    server.on_error(status)
    pending:respond(500)
    return
  end
  if status == nil or status == true then
    pending:accept()
    return
  end
  server.requests[id] = nil
  local sent, problem = pending:respond(status, headers, body)
  if sent == nil then
    server.on_error('on_request returned a bad response: ' .. problem)
    pending:respond(500)
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

local function dispatch(server)
  local listener = server.listener
  -- After close(true), connections kept open still report their ends here.
  while server.listening or next(server.connections) ~= nil do
    local event, detail, extra, request_id = listener:next()
    if event == 'request' then
      take_request(server, detail)
    elseif event == 'open' then
      start_connection(server, detail, extra, request_id)
    elseif event == 'error' then
      if extra then
        server.requests[extra] = nil
      end
      server.on_error(detail)
    elseif event == 'ended' then
      forget(server, detail)
    elseif event == 'cluster' then
      -- Another process's broadcast: `detail` the message, `extra` its opcode.
      deliver(server, detail, extra, request_id)
    else
      wait(listener)
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
  elseif not listener then
    error(('cannot listen on %s port %s: %s'):format(interface, tostring(port), reason), 2)
  end
  local server = setmetatable({
    listener = listener,
    listening = true,
    config = config,
    groups = {},
    group_methods = {},
    -- By connection id: { ws = ws, group = group }.
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
