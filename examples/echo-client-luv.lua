--- A luv client talks to an echo server while a luv timer keeps counting: the callbacks
-- run from the loop, nothing waits. The loop ends when the connection has closed.
-- usage: lua examples/echo-client-luv.lua [ws://host:port/path]

local uv = require'luv'
local websocket = require'websocket'

local url = arg[1] or 'ws://127.0.0.1:8080/echo'
local messages = { 'hello', 'how are you?', 'bye' }

local ticks = 0
local ticker = uv.new_timer()
ticker:start(0, 10, function()
  ticks = ticks + 1
end)

local client = websocket.client.luv({ timeout = 5 })
local answered = 0

client:on_open(function(ws, protocol)
  print(('connected, protocol %s'):format(tostring(protocol)))
  for _, message in ipairs(messages) do
    ws:send(message)
  end
end)

client:on_message(function(ws, message)
  answered = answered + 1
  print(('echoed %q'):format(message))
  if answered == #messages then
    ws:close()
  end
end)

client:on_close(function(_, was_clean, code)
  print(('closed: clean=%s code=%d, the timer ticked %d times meanwhile'):format(
    tostring(was_clean), code, ticks))
  ticker:stop()
end)

client:on_error(function(_, err)
  print('could not connect: ' .. tostring(err))
  ticker:stop()
end)

client:connect(url, 'echo')
uv.run()
