--- `websocket.server`: the server flavours, loaded on first use (each one loads copas).

local lazy_flavours = {
  copas = 'websocket.server_copas',
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
