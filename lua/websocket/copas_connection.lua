--- The client interface over a native copas connection, shared by the copas client and
-- the copas server's connections: every call that would wait yields to copas (or blocks
-- when called outside any coroutine) until the core has news for this connection.

local native = require'websocket_native'
local client_object = require'websocket.client_object'
local wait_module = require'websocket.wait'
local results = require'websocket.results'

local setmetatable = setmetatable

local PENDING = native.PENDING
-- C functions for the usual receive and send; they answer false for anything else, and the
-- handle's method then does the call (and words any error).
local raw = native.raw_functions()
local native_receive = raw.receive
local native_send = raw.send
local raise_bad_argument = results.raise_bad_argument
local wait = wait_module.wait
local would_step = wait_module.would_step
local now = wait_module.now

-- How long close waits for the peer's close frame when no timeout was set.
local DEFAULT_CLOSE_WAIT = 3
-- How long ping waits for its pong when no timeout was set.
local DEFAULT_PING_WAIT = 10

local HANDLE = client_object.HANDLE
-- The timeout and the handle's id sit under keys no program can name, like the handle.
local TIMEOUT = {}
local ID = {}

local function receive_once(self, handle, stepped)
  local message, opcode, was_clean, code, reason = native_receive(self[ID], stepped)
  if message == false then
    return handle:receive(stepped)
  end
  return message, opcode, was_clean, code, reason
end

local function deadline_of(client, default)
  local timeout = client[TIMEOUT] or default
  return timeout and now() + timeout
end

local methods = {}

function methods:connect(url, protocol, ssl_params, request_headers)
  local handle = self[HANDLE]
  local ok, protocol_or_err, headers = handle:connect(url, protocol, ssl_params, request_headers)
  if ok == PENDING then
    local deadline = deadline_of(self)
    repeat
      if not wait(handle, deadline) then
        handle:cancel_connect()
        return nil, 'timeout'
      end
      ok, protocol_or_err, headers = handle:resume_connect()
    until ok ~= PENDING
  end
  raise_bad_argument(ok, protocol_or_err)
  return results.connected(ok, protocol_or_err, headers)
end

function methods:receive()
  local handle = self[HANDLE]
  -- Told to, the native receive steps the core once when nothing is there yet.
  local stepped = would_step()
  local message, opcode, was_clean, code, reason = receive_once(self, handle, stepped)
  if message == PENDING then
    local timeout = self[TIMEOUT]
    local deadline = timeout and now() + timeout
    repeat
      -- The connection stays open on a timeout: a later receive goes on reading.
      if not wait(handle, deadline, stepped) then
        return nil, nil, false, 1006, 'timeout'
      end
      stepped = would_step()
      message, opcode, was_clean, code, reason = receive_once(self, handle, stepped)
    until message ~= PENDING
  end
  if message then
    return message, opcode
  end
  return nil, nil, was_clean, code, reason
end

function methods:send(message, opcode)
  local handle = self[HANDLE]
  local ok, was_clean, code, reason = native_send(self[ID], message, opcode)
  if ok == false then
    ok, was_clean, code, reason = handle:send(message, opcode)
  end
  if ok == PENDING then
    local deadline = deadline_of(self)
    repeat
      if not wait(handle, deadline) then
        return nil, false, 1006, 'timeout'
      end
      ok, was_clean, code, reason = handle:resume_send()
    until ok ~= PENDING
  end
  if ok == true then
    return true
  end
  raise_bad_argument(ok, was_clean)
  return results.sent(ok, was_clean, code, reason)
end

--- Sends a ping and waits (yielding in copas) for its pong: the round trip in seconds, or
-- `nil, err` ('timeout' after opts.timeout, else 10 s; how the connection ended). The
-- pong is read behind the messages the peer sent before it, which the inbox must hold.
function methods:ping(payload)
  local handle = self[HANDLE]
  local deadline = deadline_of(self, DEFAULT_PING_WAIT)
  local ok, problem, _, reason = handle:ping(payload)
  raise_bad_argument(ok, problem)
  while ok == PENDING do
    if not wait(handle, deadline) then
      return nil, 'timeout'
    end
    ok, _, _, reason = handle:resume_send()
  end
  if ok ~= true then
    return nil, reason
  end
  local seconds, err = handle:round_trip()
  while seconds == PENDING do
    if not wait(handle, deadline) then
      return nil, 'timeout'
    end
    seconds, err = handle:round_trip()
  end
  if seconds then
    return seconds
  end
  return nil, err
end

function methods:close(code, reason)
  local handle = self[HANDLE]
  local was_clean, close_code, close_reason = handle:close(code, reason)
  if was_clean == PENDING then
    local deadline = deadline_of(self, DEFAULT_CLOSE_WAIT)
    repeat
      if not wait(handle, deadline) then
        return handle:abort()
      end
      was_clean, close_code, close_reason = handle:resume_close()
    until was_clean ~= PENDING
  end
  if close_reason == nil then
    raise_bad_argument(was_clean, close_code)
  end
  return was_clean, close_code, close_reason
end

--- The bytes sent that the socket has not taken yet.
function methods:buffered()
  return self[HANDLE]:buffered()
end

local client_metatable = client_object.metatable(methods)
-- One metatable per table of extra methods (the server has one per protocol group).
local metatables_with_extras = setmetatable({}, { __mode = 'k' })

local copas_connection = {
  handle_of = client_object.handle_of,
}

-- Fields of a server-side ws made on first use.
local SERVER_FIELDS = {
  request = function(ws)
    return ws[HANDLE]:request()
  end,
  -- Broadcasts and publishes it missed under max_buffered (on_backpressure = 'drop').
  dropped = function()
    return 0
  end,
}

--- A client object over `handle`, with `opts.timeout`; `extra_methods` (optional) are
-- found before the client methods (the server adds `broadcast` and hides `connect`, and
-- its ws has `request` made on first use); `fields` (optional) is the object's table to
-- start from.
function copas_connection.wrap(handle, timeout, extra_methods, fields)
  local metatable = client_metatable
  if extra_methods then
    metatable = metatables_with_extras[extra_methods]
    if not metatable then
      metatable = client_object.metatable_with_fields(SERVER_FIELDS, extra_methods, methods)
      metatables_with_extras[extra_methods] = metatable
    end
  end
  fields = fields or {}
  -- false, not nil: a key the table has is found without the metatable's __index.
  fields[TIMEOUT] = timeout or false
  fields[ID] = handle:id()
  return client_object.new(handle, metatable, fields)
end

return copas_connection
