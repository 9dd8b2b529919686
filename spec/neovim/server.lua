-- Run inside headless Neovim by spec/neovim_spec.lua: a luv server on $WS_NVIM_PORT (the
-- loop found by itself: `vim.loop`), talked to by the command in $WS_NVIM_CLIENT, whose
-- output and exit status go to stdout before Neovim quits.
package.path = os.getenv('WS_NVIM_PATH') .. ';' .. package.path
package.cpath = os.getenv('WS_NVIM_CPATH') .. ';' .. package.cpath

local websocket = require'websocket'
local uv = vim.loop

local function say(...)
  io.stdout:write(table.concat({ ... }, ' '), '\n')
end

local echo = function(ws)
  ws:on_message(function(self, message, opcode)
    self:send(message, opcode)
  end)
end
local server = websocket.server.luv.listen({
  port = tonumber(os.getenv('WS_NVIM_PORT')),
  interface = '127.0.0.1',
  protocols = { echo = echo },
  default = echo,
})

local output = {}
local pipe = uv.new_pipe(false)
local child
child = uv.spawn('/bin/sh', { args = { '-c', os.getenv('WS_NVIM_CLIENT') .. ' 2>&1' }, stdio = { nil, pipe, nil } },
  function(status)
    child:close()
    -- Whatever is left in the pipe, then the verdict.
    vim.defer_fn(function()
      server:close()
      say(table.concat(output))
      say('client exit', status)
      vim.cmd('qall!')
    end, 100)
  end)
pipe:read_start(function(_, data)
  if data then
    output[#output + 1] = data
  end
end)
