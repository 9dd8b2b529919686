--- Joins the chat room of examples/chat-server-copas.lua (or of
-- examples/chat-server-browser.lua, whose URL carries a token), says something, and prints
-- what the room said until it has seen its own line.
-- usage: lua examples/chat-client-sync.lua NAME [ws://host:port/]

local websocket = require'websocket'

local name = arg[1] or 'guest'
local url = arg[2] or 'ws://127.0.0.1:8080/'

local client = websocket.client.sync({ timeout = 5 })
assert(client:connect(url, 'chat'))
local line = name .. ' says hello'
client:send(line)
repeat
  local message = client:receive()
  print(name .. ' heard: ' .. tostring(message))
-- The browser chat puts the sender's name in front.
until message == nil or message:sub(-#line) == line
client:close()
