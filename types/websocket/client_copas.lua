---@meta websocket.client_copas
-- lua-websockets' module name for the copas client's constructor (types/websocket.lua).

---@type fun(opts?: websocket.ClientOptions): websocket.Client
local client_copas

return client_copas
