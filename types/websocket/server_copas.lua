---@meta websocket.server_copas
-- lua-websockets' module name for the copas server (types/websocket.lua).

---@type websocket.server.copas
local server_copas

return server_copas
