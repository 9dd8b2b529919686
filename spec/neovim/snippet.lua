-- Run inside headless Neovim by spec/neovim_spec.lua: loads examples/neovim-websocket.lua
-- (connecting to $WEBSOCKET_URL), sends through it once connected, closes, and prints the
-- buffer it filled.
package.path = os.getenv('WS_NVIM_PATH') .. ';' .. package.path
package.cpath = os.getenv('WS_NVIM_CPATH') .. ';' .. package.cpath

dofile('examples/neovim-websocket.lua')
local buffer = vim.api.nvim_get_current_buf()

local function shown(text)
  local lines = table.concat(vim.api.nvim_buf_get_lines(buffer, 0, -1, false), '\n')
  return lines:find(text, 1, true) ~= nil, lines
end

vim.wait(5000, function() return shown('connected to') end)
_G.WebSocketDemo.send('hello from neovim')
vim.wait(5000, function() return shown('< hello from neovim') end)
_G.WebSocketDemo.close()
vim.wait(5000, function() return shown('closed: clean=true') end)
io.stdout:write(select(2, shown('')), '\n')
vim.cmd('qall!')
