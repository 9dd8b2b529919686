--- Clients the specs connect in one line.

local assert = require'luassert'
local websocket = require'websocket'

local clients = {}

--- A `flavour` ('sync' or 'copas') client with `opts` (default: a 10 s timeout), connected
-- to `url` offering `protocol`; the connect must succeed.
function clients.connected(flavour, url, protocol, opts)
  local client = websocket.client[flavour](opts or { timeout = 10 })
  local ok, err = client:connect(url, protocol)
  assert.is_true(ok, err)
  return client
end

--- Receives testpeer's `/burst/<count>` messages on `client`, in order, then echoes one
-- more and closes: each receive must find its message without new bytes coming.
function clients.receive_burst(client, count)
  for index = 1, count do
    assert.are.equal('burst-' .. index, (client:receive()))
  end
  assert.is_true(client:send('then an echo'))
  assert.are.equal('then an echo', (client:receive()))
  client:close()
end

--- A connected copas client, by default with a 5 s timeout.
function clients.copas(url, protocol, opts)
  return clients.connected('copas', url, protocol, opts or { timeout = 5 })
end

return clients
