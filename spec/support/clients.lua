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

--- A connected copas client, by default with a 5 s timeout.
function clients.copas(url, protocol, opts)
  return clients.connected('copas', url, protocol, opts or { timeout = 5 })
end

return clients
