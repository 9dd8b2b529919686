--- `websocket.server.copas.listen(config)`: a WebSocket server served by a copas loop.
--
-- The native core accepts connections and does their handshakes; a dispatcher coroutine
-- takes each new connection and runs the protocol's handler in a coroutine of its own, with
-- a `ws` that has the client interface (no `connect`) plus `ws:broadcast()`.

local copas = require'copas'
local native = require'websocket_native'
local client_nonblocking = require'websocket.client_nonblocking'
local wait_module = require'websocket.wait'

local error = error
local io_stderr = io.stderr
local pairs = pairs
local setmetatable = setmetatable
local tostring = tostring
local type = type

local wait = wait_module.wait
local now = wait_module.now

-- PUC Lua 5.1 cannot yield across pcall; coxpcall (a dependency of copas) can.
local pcall = (_VERSION == 'Lua 5.1' and not rawget(_G, 'jit')) and require'coxpcall'.pcall or pcall

-- The group of connections served by the default handler.
local DEFAULT_GROUP = {}
-- How often the dispatcher looks at connections closing after server:close().
local CLOSING_POLL_INTERVAL = 0.05

local function default_on_error(message)
  io_stderr:write('websocket server: ', tostring(message), '\n')
end

local Server = {}
Server.__index = Server

--- Stops listening (the port is free again at once) and, unless `keep_clients`, closes
-- every connection with 1001 "going away".
function Server:close(keep_clients)
  if not self.listening then
    return
  end
  self.listening = false
  self.listener:close()
  if keep_clients then
    return
  end
  for _, group in pairs(self.groups) do
    for ws in pairs(group) do
      client_nonblocking.handle_of(ws):close_in_background(1001, 'going away')
      group[ws] = nil
    end
  end
end

-- The methods a server-side ws has beyond the client interface.
local function server_methods(group)
  return {
    -- Already connected: lua-websockets' server-side ws has no connect.
    connect = false,
    broadcast = function(_, message, opcode)
      for member in pairs(group) do
        if member.state == 'OPEN' then
          member:send(message, opcode)
        else
          group[member] = nil
        end
      end
    end,
  }
end

local function run_handler(server, handler, ws, group)
  local ok, err = pcall(handler, ws)
  if not ok then
    server.on_error(err)
    if ws.state == 'OPEN' then
      ws:close(1011, 'internal error')
    end
  end
  -- A connection left open stays in its group (it can still be broadcast to); a closed one
  -- is dropped here, or by the next broadcast when it closes later.
  if ws.state == 'CLOSED' then
    group[ws] = nil
  end
end

local function start_connection(server, config, handle, protocol)
  local group_key = protocol or DEFAULT_GROUP
  local group = server.groups[group_key]
  if not group then
    group = {}
    server.groups[group_key] = group
    server.group_methods[group_key] = server_methods(group)
  end
  local ws = client_nonblocking.wrap(handle, nil, server.group_methods[group_key])
  group[ws] = true
  local handler = protocol and config.protocols[protocol] or config.default
  -- Closures, not arguments: copas 1.x passes a socket argument first, copas 4 does not.
  copas.addthread(function()
    run_handler(server, handler, ws, group)
  end)
end

local function dispatch(server, config)
  local listener = server.listener
  while server.listening do
    local event, detail, protocol = listener:next()
    if event == 'open' then
      start_connection(server, config, detail, protocol)
    elseif event == 'error' then
      server.on_error(detail)
    else
      wait(listener)
    end
  end
  -- After server:close(): keep the core stepping until the connections it closes are done.
  while native.busy() do
    wait(listener, now() + CLOSING_POLL_INTERVAL)
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
    groups = {},
    group_methods = {},
    on_error = config.on_error or default_on_error,
  }, Server)
  copas.addthread(function()
    dispatch(server, config)
  end)
  return server
end

return {
  listen = listen,
}
