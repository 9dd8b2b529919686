--- The client of the callback flavours (lua-websockets' ev client) on any loop adapter:
-- `client:on_open/on_message/on_close/on_error(callback)`, `client:connect(url,
-- [protocol], [ssl_params], [headers])` returning at once, `client:send`, `client:close`,
-- `client.state` ('CLOSED', 'CONNECTING', 'OPEN', 'CLOSING').

local native = require'websocket_native'
local callback_connection = require'websocket.callback_connection'
local callback_driver = require'websocket.callback_driver'

local error = error
local type = type

local STATE = callback_connection.STATE

local client_methods = {}

function client_methods:on_open(callback)
  self[STATE].on_open = callback
end

--- Starts connecting; on_open(ws, protocol, headers) or on_error(ws, err) tells the outcome.
function client_methods:connect(url, protocol, ssl_params, headers)
  local connection = self[STATE]
  connection:connect(url, protocol, ssl_params, headers, connection.timeout)
end

local callback_client = {}

--- A client whose callbacks `adapter`'s loop calls; `opts` as the other clients'.
function callback_client.new(adapter, opts)
  local handle, message = native.copas_client(opts)
  if handle == false then
    error(message, 3)
  end
  local ws, connection = callback_connection.new(handle, callback_driver.of(adapter), {
    extra_methods = client_methods,
  })
  local timeout = type(opts) == 'table' and opts.timeout or nil
  if timeout and timeout < 0 then
    timeout = nil
  end
  connection.timeout = timeout
  return ws
end

return callback_client
