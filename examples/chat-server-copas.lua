--- A chat room: every message a client sends goes to every client of the room (the sender
-- included), with ws:broadcast().
-- usage: lua examples/chat-server-copas.lua [port]
-- then connect clients with the `chat` protocol, e.g. examples/chat-client-sync.lua.

local copas = require'copas'
local websocket = require'websocket'

local port = tonumber(arg[1]) or 8080

websocket.server.copas.listen({
  port = port,
  protocols = {
    chat = function(ws)
      ws:broadcast('someone joined')
      while true do
        local message = ws:receive()
        if not message then
          ws:broadcast('someone left')
          return
        end
        ws:broadcast(message)
      end
    end,
  },
})
print(('chat server listening on port %d'):format(port))
copas.loop()
