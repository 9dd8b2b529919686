--- A server process for the slow-reader specs. Every connection is a member of the default
-- group; a connection that sends `go COUNT SIZE` gets COUNT broadcasts of SIZE bytes, the
-- next one each time it answers `next` (so it paces them, and copas runs between them on
-- every copas version), then `done SECONDS dropped DROPPED members MEMBERS`: how long the
-- loop took, how many broadcasts members skipped (ws.dropped, summed), how many members
-- are left (fewer once slow ones were closed). `stats` answers the same without the time,
-- at any time.
-- Prints `listening <pid>` once it listens.
--   lua spec/support/broadcast_server.lua PORT MAX_BUFFERED|none drop|close

local copas = require'copas'
local socket = require'socket'
local websocket = require'websocket'
local process = require'spec.support.process'

local port, max_buffered, policy = tonumber(arg[1]), tonumber(arg[2]), arg[3]
local members = {}
local server

-- Skipped broadcasts of members gone already.
local dropped_before = 0

local function stats()
  local dropped, count = dropped_before, 0
  for member in pairs(members) do
    dropped = dropped + member.dropped
    count = count + 1
  end
  return ('dropped %d members %d'):format(dropped, count)
end

local function broadcast_loop(ws, count, size)
  local payload = ('x'):rep(size)
  local started = socket.gettime()
  for _ = 1, count do
    server:broadcast(payload, websocket.BINARY)
    if ws:receive() ~= 'next' then
      return
    end
  end
  ws:send(('done %.3f %s'):format(socket.gettime() - started, stats()))
end

server = websocket.server.copas.listen({
  port = port,
  interface = '127.0.0.1',
  max_buffered = max_buffered,
  on_backpressure = max_buffered and policy or nil,
  default = function(ws)
    members[ws] = true
    while true do
      local message = ws:receive()
      if not message then
        break
      end
      local count, size = message:match('^go (%d+) (%d+)$')
      if count then
        broadcast_loop(ws, tonumber(count), tonumber(size))
      elseif message == 'stats' then
        ws:send(stats())
      end
    end
    dropped_before = dropped_before + ws.dropped
    members[ws] = nil
  end,
})
process.say('listening ', tostring(process.pid()))
copas.loop()
