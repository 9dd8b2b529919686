--- `websocket.client.sync(opts)`: a client whose calls block until done.
-- The native core does all the work; this file gives it lua-websockets' shape: a table per
-- client (so programs may keep their own fields on it) with a live `state` field.

local native = require'websocket_native'

local error = error
local setmetatable = setmetatable

-- The native handle sits under a key no program can name or collide with.
local HANDLE = {}

local methods = {}

-- Native calls answer `false, message` for a bad argument (never a valid answer of connect
-- or send, and of close only with a third value). The message is raised here so that the
-- error is a string pointing at the caller's line, as luaL_argerror's would be.

function methods:connect(url, protocol, ssl_params)
  local ok, protocol_or_err, headers = self[HANDLE]:connect(url, protocol, ssl_params)
  if ok == false then
    error(protocol_or_err, 2)
  end
  if ok or headers ~= nil then
    return ok, protocol_or_err, headers
  end
  return nil, protocol_or_err
end

function methods:receive()
  return self[HANDLE]:receive()
end

function methods:send(message, opcode)
  local ok, was_clean, code, reason = self[HANDLE]:send(message, opcode)
  if ok then
    return ok
  elseif ok == false then
    error(was_clean, 2)
  end
  return nil, was_clean, code, reason
end

function methods:close(code, reason)
  local was_clean, close_code, close_reason = self[HANDLE]:close(code, reason)
  if was_clean == false and close_reason == nil then
    error(close_code, 2)
  end
  return was_clean, close_code, close_reason
end

local client_metatable = {
  __index = function(client, key)
    if key == 'state' then
      return client[HANDLE]:state()
    end
    return methods[key]
  end,
}

return function(opts)
  local handle, message = native.sync_client(opts)
  if handle == false then
    error(message, 2)
  end
  return setmetatable({ [HANDLE] = handle }, client_metatable)
end
