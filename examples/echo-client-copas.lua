--- Two copas clients talk to an echo server at once, each in its own coroutine, while a
-- third coroutine keeps counting: nothing waits for anything else.
-- usage: lua examples/echo-client-copas.lua [ws://host:port/path]

local copas = require'copas'
local websocket = require'websocket'

local url = arg[1] or 'ws://127.0.0.1:8080/echo'
local running = 0

local function talk(name, messages)
  running = running + 1
  copas.addthread(function()
    local client = websocket.client.copas({ timeout = 5 })
    local ok, err = client:connect(url, 'echo')
    if not ok then
      print(name .. ': could not connect: ' .. tostring(err))
    else
      for _, message in ipairs(messages) do
        client:send(message)
        print(('%s sent %q, echoed %q'):format(name, message, (client:receive())))
      end
      local was_clean, code = client:close()
      print(('%s closed: clean=%s code=%d'):format(name, tostring(was_clean), code))
    end
    running = running - 1
  end)
end

talk('alice', { 'hello', 'how are you?' })
talk('bob', { 'hi there', 'fine, thanks', 'bye' })

while running > 0 do
  copas.step(0.1)
end
