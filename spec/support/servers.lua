--- Copas servers and raw connections the specs start in one line.

local copas = require'copas'
local socket = require'socket'
local websocket = require'websocket'
local process = require'spec.support.process'

local assert = assert
local tonumber = tonumber
local tostring = tostring

local servers = {}

--- A server on a free port of 127.0.0.1 (or `config.interface`) with `config`'s handlers;
-- returns it, its URL, the list its errors go to, and its port.
function servers.start(config)
  local port = process.free_port()
  local errors = {}
  config.port = port
  config.interface = config.interface or '127.0.0.1'
  config.on_error = config.on_error or function(message)
    errors[#errors + 1] = tostring(message)
  end
  local server = websocket.server.copas.listen(config)
  return server, 'ws://127.0.0.1:' .. port .. '/', errors, port
end

--- A plain TCP connection to 127.0.0.1:port, made through copas: the copas-wrapped
-- object for send/receive and the socket itself for close (copas 1.x's wrap has none).
function servers.raw_connection(port)
  local tcp = socket.tcp()
  local ok, err = copas.connect(tcp, '127.0.0.1', port)
  assert(ok, err)
  return copas.wrap(tcp), tcp
end

--- A WebSocket upgrade request, as raw peers send it.
servers.UPGRADE_REQUEST = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
  .. 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'

--- A raw WebSocket peer through copas: upgraded (the response head read), then nothing
-- but bytes. Returns the copas-wrapped connection and the socket, as raw_connection.
function servers.raw_websocket(port)
  local connection, tcp = servers.raw_connection(port)
  connection:send(servers.UPGRADE_REQUEST)
  repeat until connection:receive('*l') == ''
  return connection, tcp
end

--- Sends `request` (a whole HTTP request) to 127.0.0.1:port from a copas coroutine and
-- reads the response until the server closes: status code, headers (names lower-cased),
-- body.
function servers.http(port, request)
  local connection, tcp = servers.raw_connection(port)
  connection:send(request)
  local status_line = connection:receive('*l') or ''
  local headers = {}
  while true do
    local line = connection:receive('*l')
    if not line or line == '' then
      break
    end
    local name, value = line:match('^([^:]+):%s*(.*)$')
    if name then
      headers[name:lower()] = value
    end
  end
  local length = tonumber(headers['content-length'] or 0)
  local body = length > 0 and connection:receive(length) or ''
  tcp:close()
  return tonumber(status_line:match('^HTTP/1%.1 (%d+)')), headers, body
end

return servers
