--- `websocket.client.copas(opts)`: the client interface whose waiting calls yield to copas,
-- so that copas keeps running other coroutines, timers and sockets meanwhile. Called
-- outside any coroutine, the same calls block like the sync client's.

local native = require'websocket_native'
local copas_connection = require'websocket.copas_connection'

local error = error
local type = type

return function(opts)
  local handle, message = native.copas_client(opts)
  if handle == false then
    error(message, 2)
  end
  local timeout = type(opts) == 'table' and opts.timeout or nil
  if timeout and timeout < 0 then
    timeout = nil
  end
  return copas_connection.wrap(handle, timeout)
end
