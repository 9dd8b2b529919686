--- What the copas server and the callback servers share: checking the config and
-- listening, reporting to `on_error`, broadcasts, answering `on_request`, and taking the
-- core's events. A flavour's server table has the fields `new` sets and three methods of
-- its own: `take_request(pending)` (how `on_request` runs), `start_connection(handle,
-- protocol, request_id)` and `connection_ended(id)`.

local native = require'websocket_native'
local client_object = require'websocket.client_object'

local error = error
local io_stderr = io.stderr
local pairs = pairs
local pcall = pcall
local setmetatable = setmetatable
local tostring = tostring
local type = type

local HANDLE = client_object.HANDLE

local server_common = {}

-- The key of the default handler's group (`server:broadcast(m, op, false)` names it).
local DEFAULT_GROUP = false

local function default_on_error(message)
  io_stderr:write('websocket server: ', tostring(message), '\n')
end

--- Tells `on_error` about `message`; an `on_error` that raises goes to stderr with the
-- message it was given, and the server goes on (no callback can stop it).
function server_common.report(server, message)
  local ok, problem = pcall(server.error_callback, message)
  if not ok then
    io_stderr:write('websocket server: on_error raised "', tostring(problem),
      '" for: ', tostring(message), '\n')
  end
end
local report = server_common.report

-- What a member over `config.max_buffered` gets: skipped (counted in `ws.dropped`), or
-- closed with 1008.
local function too_slow(server, ws)
  if server.config.on_backpressure == 'close' then
    server:close_slow(ws)
  else
    ws.dropped = ws.dropped + 1
  end
end

--- The core writes a broadcast to every member whose socket takes it at once; the members
-- it lists as busy (something else waits to be written to them) get it from `ws:send`,
-- so that nothing is lost (a copas send waits, a callback send queues). With
-- `config.max_buffered`, nothing waits: a busy member gets it from a send of its own
-- (`server:send_later`) unless it already has one under way or more than max_buffered
-- bytes its socket has not taken, and then `on_backpressure` says what becomes of it. A
-- slow member so holds at most max_buffered bytes and one message.
function server_common.send_to_busy(server, busy, message, opcode)
  if busy == nil then
    return
  end
  local max_buffered = server.config.max_buffered
  for index = 1, #busy do
    local ws = server.connections[busy[index]]
    if ws and ws.state == 'OPEN' then
      if not max_buffered then
        ws:send(message, opcode)
      elseif server:sending_later(ws) or ws:buffered() > max_buffered then
        too_slow(server, ws)
      else
        server:send_later(ws, message, opcode)
      end
    end
  end
end
local send_to_busy = server_common.send_to_busy

-- What the listener made of a broadcast or publish: the busy members get the message
-- from a send of their own; a bad argument (`false, problem`) raises at the line that
-- called the method calling the function calling this.
local function finish_delivery(server, busy, problem, message, opcode)
  if busy == false then
    error(problem, 4)
  end
  send_to_busy(server, busy, message, opcode)
end

--- A broadcast from this process: `group` is a protocol, DEFAULT_GROUP, or nil for all.
-- A bad argument raises at the line that called the method calling this.
function server_common.broadcast(server, message, opcode, group)
  local busy, problem = server.listener:broadcast(message, opcode, group)
  finish_delivery(server, busy, problem, message, opcode)
end
local broadcast = server_common.broadcast

--- A publish to `topic`'s subscribers but connection `except` (an id, or nil), in every
-- process of the cluster. A bad argument raises at the line that called the method
-- calling this.
function server_common.publish(server, topic, message, opcode, except)
  local busy, problem = server.listener:publish(topic, message, opcode, except)
  finish_delivery(server, busy, problem, message, opcode)
end
local publish = server_common.publish

-- Raises a bad topic (`false, problem` from the listener) at the program's line.
local function checked(answer, problem)
  if answer == false and problem then
    error(problem, 3)
  end
  return answer
end

--- The methods every server-side ws has beyond its flavour's: `broadcast` to its group
-- (`key`), the topic methods and `getpeername`; `extra` (optional) adds or hides some.
function server_common.group_methods(server, key, extra)
  local methods = {
    broadcast = function(_, message, opcode)
      broadcast(server, message, opcode, key)
    end,
    -- Subscriptions end with the connection. `true`, or `false` once it has ended.
    subscribe = function(ws, topic)
      -- Not a tail call: the error level counts this function on every Lua.
      local subscribed = checked(server.listener:subscribe(ws[HANDLE]:id(), topic))
      return subscribed
    end,
    unsubscribe = function(ws, topic)
      checked(server.listener:unsubscribe(ws[HANDLE]:id(), topic))
    end,
    -- To every subscriber of `topic` but this connection.
    publish = function(ws, topic, message, opcode)
      publish(server, topic, message, opcode, ws[HANDLE]:id())
    end,
    -- A connection on a unix socket answers the socket's path, nil and 'unix'.
    getpeername = function(ws)
      local request = ws.request
      return request.address, request.port, request.family
    end,
  }
  for name, method in pairs(extra or {}) do
    methods[name] = method
  end
  return methods
end

--- The methods of the ws of `protocol`'s group, made once per group by
-- `server.make_methods(key)`.
function server_common.methods_for(server, protocol)
  local key = protocol or DEFAULT_GROUP
  local methods = server.group_methods[key]
  if not methods then
    methods = server.make_methods(key)
    server.group_methods[key] = methods
  end
  return methods
end

--- The handler for a connection of `protocol` (nil: the default).
function server_common.handler_for(server, protocol)
  local config = server.config
  return protocol and config.protocols[protocol] or config.default
end

--- The request the hook saw for request `id`, with what it set (nil without a hook); the
-- server forgets it.
function server_common.take_request_table(server, id)
  local request = server.requests[id]
  server.requests[id] = nil
  return request
end

--- Runs `on_request` for `pending` and answers the request as it says; `protected_call`
-- (default pcall) runs the hook (the copas server's may yield).
function server_common.answer_request(server, hook, pending, request, id, protected_call)
  local ok, status, headers, body = (protected_call or pcall)(hook, request)
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

--- Lets `pending` through without a hook; with one, returns the hook, the request table
-- (kept until the connection opens) and its id, for the flavour to run it.
function server_common.request_arrived(server, pending)
  local hook = server.config.on_request
  if not hook then
    pending:accept()
    return nil
  end
  local id = pending:id()
  local request = pending:request()
  server.requests[id] = request
  return hook, request, id
end

local function handle_event(server, event, detail, extra, request_id)
  if event == 'request' then
    server:take_request(detail)
  elseif event == 'open' then
    server:start_connection(detail, extra, request_id)
  elseif event == 'error' then
    if extra then
      server.requests[extra] = nil
    end
    report(server, detail)
  elseif event == 'ended' then
    server:connection_ended(detail)
  elseif event == 'cluster' then
    -- Another process's broadcast, delivered already: `detail` the message, `extra` its
    -- opcode, then the busy members to send it to.
    send_to_busy(server, request_id, detail, extra)
  end
end

--- Takes the core's events until there are none now; returns false then. Whatever an
-- event's Lua raises goes to on_error, and the server goes on.
function server_common.take_events(server)
  local listener = server.listener
  while true do
    local event, detail, extra, request_id = listener:next()
    if event == nil then
      return false
    end
    local ok, problem = pcall(handle_event, server, event, detail, extra, request_id)
    if not ok then
      report(server, problem)
    end
  end
end

local function check_config(config, level)
  local function bad(problem)
    error("bad argument #1 to 'listen' (" .. problem .. ')', level + 2)
  end
  if type(config) ~= 'table' then
    bad('table expected, got ' .. type(config))
  end
  if config.protocols == nil and config.default == nil then
    bad('config needs protocols or a default handler')
  end
  if config.protocols ~= nil and type(config.protocols) ~= 'table' then
    bad('protocols: table expected')
  end
  if config.on_request ~= nil and type(config.on_request) ~= 'function' then
    bad('on_request: function expected')
  end
  local max_buffered = config.max_buffered
  if max_buffered ~= nil and (type(max_buffered) ~= 'number' or max_buffered < 0) then
    bad('max_buffered: a number of bytes expected')
  end
  local policy = config.on_backpressure
  if policy ~= nil and policy ~= 'drop' and policy ~= 'close' then
    bad("on_backpressure: 'drop' or 'close' expected")
  end
  if policy ~= nil and max_buffered == nil then
    bad('on_backpressure needs max_buffered')
  end
end

--- Checks `config` and listens as it says; returns the native listener. A bad config or
-- a port that cannot be bound raises at `level` (1: the function calling this).
function server_common.listen(config, level)
  level = level + 1
  check_config(config, level)
  local names = {}
  for name in pairs(config.protocols or {}) do
    names[#names + 1] = name
  end
  local interface = config.interface or '*'
  local port = config.port or 80
  local listener, reason = native.listen(interface, port, names, config.default ~= nil, config)
  if listener == false then
    error(reason, level)
  elseif not listener and config.unix then
    error(('cannot listen on unix socket %s: %s'):format(tostring(config.unix), reason), level)
  elseif not listener then
    error(('cannot listen on %s port %s: %s'):format(interface, tostring(port), reason), level)
  end
  return listener
end

--- The fields every server has, in a new table with metatable `class`.
function server_common.new(class, config, listener)
  return setmetatable({
    listener = listener,
    listening = true,
    config = config,
    -- The methods of each group's ws, by protocol (DEFAULT_GROUP: the default handler's).
    group_methods = {},
    -- The open connections' ws, by connection id.
    connections = {},
    -- Requests waiting for their upgrade, by request id.
    requests = {},
    error_callback = config.on_error or default_on_error,
  }, class)
end

--- `server:broadcast(message, [opcode], [protocol])`: to every OPEN connection of that
-- protocol's group (`false`: the default handler's), or of every group when nil; with
-- `config.cluster`, in every process of the cluster.
function server_common.broadcast_method(self, message, opcode, protocol)
  broadcast(self, message, opcode, protocol)
end

--- Stops listening (the port is free again at once); false when it had stopped already.
function server_common.stop_listening(server)
  if not server.listening then
    return false
  end
  server.listening = false
  server.listener:close()
  return true
end

--- `server:publish(topic, message, [opcode])`: to every subscriber of `topic`; with
-- `config.cluster`, in every process of the cluster.
function server_common.publish_method(self, topic, message, opcode)
  publish(self, topic, message, opcode, nil)
end

return server_common
