--- Client objects, shared by every flavour: a table per client (so programs may keep their
-- own fields on it, as with lua-websockets) holding its native handle under a key no
-- program can name, with a `state` field read live from the handle.

local pairs = pairs
local setmetatable = setmetatable

local client_object = {}

--- The key of the native handle in a client object.
local HANDLE = {}
client_object.HANDLE = HANDLE

--- The metatable of clients whose methods are looked up in `method_tables`, in order; a
-- `false` entry hides a method of the tables after it (a server-side ws has no connect).
-- The tables are merged once, here: a method costs one lookup per call.
function client_object.metatable(...)
  local method_tables = { ... }
  local methods = {}
  for index = #method_tables, 1, -1 do
    for key, method in pairs(method_tables[index]) do
      methods[key] = method
    end
  end
  return {
    __index = function(client, key)
      local method = methods[key]
      if method then
        return method
      end
      if key == 'state' then
        return client[HANDLE]:state()
      end
      return nil
    end,
  }
end

--- A client object over `handle`, with the fields of `fields` (optional).
function client_object.new(handle, metatable, fields)
  local client = fields or {}
  client[HANDLE] = handle
  return setmetatable(client, metatable)
end

--- The native handle under a client object.
function client_object.handle_of(client)
  return client[HANDLE]
end

return client_object
