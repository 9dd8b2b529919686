--- `websocket.client`: the client flavours.
-- `sync` (and its alias `new`) is loaded at once; `copas` (which loads copas) and `luv`
-- (which loads luv) only on first use.

local sync = require'websocket.client_sync'

local lazy_flavours = {
  copas = 'websocket.client_copas',
  luv = 'websocket.client_luv',
}

return setmetatable({ sync = sync, new = sync }, {
  __index = function(flavours, name)
    local module_name = lazy_flavours[name]
    if not module_name then
      return nil
    end
    local flavour = require(module_name)
    rawset(flavours, name, flavour)
    return flavour
  end,
})
