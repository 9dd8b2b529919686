--- `websocket.client.luv([opts])`: lua-websockets' callback client (its ev flavour) on a
-- luv loop: `opts.loop` (a luv module), else Neovim's `vim.uv` / `vim.loop`, else
-- `require'luv'`. Loads no copas.

local callback_client = require'websocket.callback_client'
local luv_loop = require'websocket.luv_loop'

local type = type

return function(opts)
  local uv = luv_loop.find(type(opts) == 'table' and opts.loop or nil)
  return callback_client.new(luv_loop.adapter(uv), opts)
end
