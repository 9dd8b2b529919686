--- `websocket.client.sync(opts)`: a client whose calls block until done.
-- The native core does all the work; this file gives it lua-websockets' return values.

local native = require'websocket_native'
local client_object = require'websocket.client_object'
local results = require'websocket.results'

local error = error
local raise_bad_argument = results.raise_bad_argument

local HANDLE = client_object.HANDLE

local methods = {}

function methods:connect(url, protocol, ssl_params, request_headers)
  local ok, protocol_or_err, headers = self[HANDLE]:connect(url, protocol, ssl_params, request_headers)
  raise_bad_argument(ok, protocol_or_err)
  return results.connected(ok, protocol_or_err, headers)
end

-- `receive` and `send` are C functions of the native handle, kept on each client object
-- (see below). What that send declines (another opcode, a wrong argument) comes here, called
-- from the C function: one level more between here and the program.
local function send_declined(self, message, opcode)
  local ok, was_clean, code, reason = self[HANDLE]:send(message, opcode)
  raise_bad_argument(ok, was_clean, 4)
  return results.sent(ok, was_clean, code, reason)
end

--- Sends a ping and blocks until its pong: the round trip in seconds, or `nil, err`
-- ('timeout' after opts.timeout, else 10 s; how the connection ended).
function methods:ping(payload)
  local seconds, problem = self[HANDLE]:ping(payload)
  raise_bad_argument(seconds, problem)
  if seconds then
    return seconds
  end
  return nil, problem
end

function methods:close(code, reason)
  local was_clean, close_code, close_reason = self[HANDLE]:close(code, reason)
  if close_reason == nil then
    raise_bad_argument(was_clean, close_code)
  end
  return was_clean, close_code, close_reason
end

local client_metatable = client_object.metatable(methods)

return function(opts)
  local handle, message = native.sync_client(opts)
  if handle == false then
    error(message, 2)
  end
  local receive, send = handle:raw_methods(send_declined)
  return client_object.new(handle, client_metatable, { receive = receive, send = send })
end
