--- Neovim: opens a WebSocket and shows every incoming message in a scratch buffer.
-- In Neovim (the rock installed for LuaJIT / Lua 5.1 on package.path and package.cpath):
--   :luafile examples/neovim-websocket.lua
--   :lua WebSocketDemo.send('hello')
-- The luv client finds Neovim's loop (vim.uv, or vim.loop) by itself. Callbacks run in
-- luv's fast context, where most of Neovim's API may not be called: vim.schedule moves the
-- buffer work to the main loop.

local websocket = require'websocket'

local url = os.getenv('WEBSOCKET_URL') or 'ws://127.0.0.1:8080/echo'

local buffer = vim.api.nvim_create_buf(false, true)
vim.api.nvim_buf_set_name(buffer, 'websocket ' .. url)
vim.cmd('botright split')
vim.api.nvim_win_set_buf(0, buffer)

local function show(line)
  vim.schedule(function()
    vim.api.nvim_buf_set_lines(buffer, -1, -1, false, { line })
  end)
end

local client = websocket.client.luv({ timeout = 5 })
client:on_open(function()
  show('connected to ' .. url)
end)
client:on_message(function(_, message)
  -- A buffer line holds no newline.
  show('< ' .. message:gsub('\n', ' '))
end)
client:on_close(function(_, was_clean, code, reason)
  show(('closed: clean=%s code=%d %s'):format(tostring(was_clean), code, reason))
end)
client:on_error(function(_, err)
  show('error: ' .. tostring(err))
end)
client:connect(url)

-- A global on purpose: the handle a user calls from the command line.
_G.WebSocketDemo = {
  send = function(message)
    show('> ' .. message)
    return client:send(message)
  end,
  close = function()
    client:close()
  end,
}
