---@meta websocket.client_sync
-- lua-websockets' module name for the sync client's constructor (types/websocket.lua).

---@type fun(opts?: websocket.ClientOptions): websocket.Client
local client_sync

return client_sync
