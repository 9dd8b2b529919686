--- Talks to an echo server with the sync client and prints what goes back and forth.
-- usage: lua examples/echo-client-sync.lua [ws://host:port/path]

local websocket = require'websocket'

local url = arg[1] or 'ws://127.0.0.1:8080/echo'
local client = websocket.client.sync({ timeout = 5 })

local ok, protocol_or_err = client:connect(url, 'echo')
if not ok then
  io.stderr:write('could not connect to ', url, ': ', tostring(protocol_or_err), '\n')
  os.exit(1)
end
print(('connected to %s (protocol %s)'):format(url, tostring(protocol_or_err)))

for _, text in ipairs({ 'hello', 'from lua-websockets-rs', ('x'):rep(70000) }) do
  client:send(text)
  local echoed = client:receive()
  local shown = #echoed > 40 and (echoed:sub(1, 20) .. '… (' .. #echoed .. ' bytes)') or echoed
  print('sent ' .. #text .. ' bytes, echoed: ' .. shown)
end

client:send('\0\1\2\255', websocket.BINARY)
local echoed, opcode = client:receive()
print(('binary echo: %d bytes, opcode %d'):format(#echoed, opcode))

local was_clean, code, reason = client:close(1000, 'done')
print(('closed: clean=%s code=%d reason=%q'):format(tostring(was_clean), code, reason))
