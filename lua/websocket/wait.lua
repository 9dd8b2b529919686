--- Waiting for the native core: inside a copas coroutine by yielding to copas, outside any
-- coroutine (the main chunk) by blocking, like the sync client.
--
-- copas sees the core through proxy objects: each returns the core's doorbell descriptor
-- from getfd() (readable whenever the core may have work) and, from dirty(), whether its own
-- native handle has something. copas resumes a waiting coroutine either way; its receive()
-- steps the core and says whether the wait is over.

local copas = require'copas'
local native = require'websocket_native'

local coroutine_running = coroutine.running
local setmetatable = setmetatable

local DOORBELL_FD = native.doorbell_fd()
local now = native.now
local step = native.step

local Proxy = {}
Proxy.__index = Proxy

function Proxy:getfd()
  return DOORBELL_FD
end

function Proxy:dirty()
  return self.handle:ready()
end

function Proxy:receive()
  step()
  local deadline = self.deadline
  if self.handle:ready() or (deadline and now() >= deadline) then
    return true
  end
  return nil, 'timeout'
end

-- copas 1.x closes the object a finished coroutine waited on last; the connection behind
-- the proxy stays open.
function Proxy:close() end

function Proxy:settimeout() end

-- One proxy per handle, made on its first wait.
local proxies = setmetatable({}, { __mode = 'k' })

local function proxy_of(handle)
  local proxy = proxies[handle]
  if not proxy then
    proxy = setmetatable({ handle = handle }, Proxy)
    proxies[handle] = proxy
  end
  return proxy
end

local function in_coroutine()
  local running, is_main = coroutine_running()
  return running ~= nil and not is_main
end

--- Waits until `handle:ready()` or until `deadline` (seconds on native.now()'s clock; nil:
-- no limit). Returns false when the deadline passed first.
local function wait(handle, deadline)
  if deadline then
    if now() >= deadline then
      return handle:ready()
    end
    handle:wake_at(deadline)
  end
  if in_coroutine() then
    local proxy = proxy_of(handle)
    proxy.deadline = deadline
    copas.receive(proxy)
  else
    while not handle:ready() and not (deadline and now() >= deadline) do
      native.park(deadline and deadline - now())
    end
  end
  if deadline then
    handle:wake_at(nil)
  end
  return handle:ready() or not deadline or now() < deadline
end

return {
  wait = wait,
  now = now,
  in_coroutine = in_coroutine,
}
