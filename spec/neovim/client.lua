-- Run inside headless Neovim by spec/neovim_spec.lua: the luv client finds `vim.loop` by
-- itself, exchanges 200 messages with the echo server at $WS_NVIM_URL while a Neovim timer
-- keeps firing, and reports on stdout; Neovim quits when the connection is closed.
package.path = os.getenv('WS_NVIM_PATH') .. ';' .. package.path
package.cpath = os.getenv('WS_NVIM_CPATH') .. ';' .. package.cpath

local websocket = require'websocket'

local function say(...)
  io.stdout:write(table.concat({ ... }, ' '), '\n')
end

local function quit(code)
  vim.schedule(function()
    vim.cmd(code == 0 and 'qall!' or 'cquit ' .. code)
  end)
end

local ticks = 0
local timer = vim.loop.new_timer()
timer:start(0, 2, function()
  ticks = ticks + 1
end)

local payload = string.rep('neovim ', 2000)
local echoed = 0
local client = websocket.client.luv({ timeout = 5 })
client:on_open(function(ws, protocol)
  say('open', tostring(protocol))
  for index = 1, 200 do
    ws:send(payload .. index)
  end
end)
client:on_message(function(ws, message)
  echoed = echoed + 1
  if message ~= payload .. echoed then
    say('wrong echo', echoed)
  end
  if echoed == 200 then
    ws:close(1000, 'done')
  end
end)
client:on_close(function(_, was_clean, code, reason)
  timer:stop()
  say('echoed', echoed, 'closed', tostring(was_clean), code, reason, 'ticks', ticks)
  quit(0)
end)
client:on_error(function(_, err)
  say('error', tostring(err))
  quit(1)
end)
client:connect(os.getenv('WS_NVIM_URL'), 'echo')
