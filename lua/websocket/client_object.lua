--- Client objects, shared by every flavour: a table per client (so programs may keep their
-- own fields on it, as with lua-websockets) holding its native handle under a key no
-- program can name, with a `state` field read live from the handle.

local pairs = pairs
local rawset = rawset
local setmetatable = setmetatable

local client_object = {}

--- The key of the native handle in a client object.
local HANDLE = {}
client_object.HANDLE = HANDLE

-- Merges method tables, the first one winning; a `false` entry hides a method of the
-- tables after it (a server-side ws has no connect).
local function merged(method_tables)
  local methods = {}
  for index = #method_tables, 1, -1 do
    for key, method in pairs(method_tables[index]) do
      methods[key] = method
    end
  end
  return methods
end

--- The metatable of clients whose fields named in `lazy_fields` are computed on first use
-- (`lazy_fields[name](client)`, then kept on the client) and whose methods are looked up
-- in the method tables that follow, in order. The tables are merged once, here. A method
-- found is kept on the client, as lua-websockets keeps its methods on the object: later
-- calls find it without calling this `__index` (a Lua call per method call).
function client_object.metatable_with_fields(lazy_fields, ...)
  local methods = merged({ ... })
  return {
    __index = function(client, key)
      local method = methods[key]
      if method then
        rawset(client, key, method)
        return method
      end
      if key == 'state' then
        return client[HANDLE]:state()
      elseif key == 'compression' then
        return client[HANDLE]:compression()
      end
      local make = lazy_fields[key]
      if make then
        local value = make(client)
        rawset(client, key, value)
        return value
      end
      return nil
    end,
  }
end

--- The metatable of clients whose methods are looked up in the given tables, in order.
function client_object.metatable(...)
  return client_object.metatable_with_fields({}, ...)
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
