--- `websocket.server`: the server flavours, loaded on first use (`copas` loads copas,
-- `luv` loads luv).

local lazy_flavours = {
  copas = 'websocket.server_copas',
  luv = 'websocket.server_luv',
}

return setmetatable({}, {
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
