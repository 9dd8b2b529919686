--- `websocket.server.luv.listen(config)`: lua-websockets' callback server (its ev flavour)
-- on a luv loop: `config.loop` (a luv module), else Neovim's `vim.uv` / `vim.loop`, else
-- `require'luv'`. The config is the copas server's; `on_request` is a plain call. Loads no
-- copas.

local callback_server = require'websocket.callback_server'
local luv_loop = require'websocket.luv_loop'

local type = type

local function listen(config)
  local uv = luv_loop.find(type(config) == 'table' and config.loop or nil)
  -- Not a tail call: errors name the program's line, counted from here.
  local server = callback_server.listen(luv_loop.adapter(uv), config)
  return server
end

return {
  listen = listen,
}
