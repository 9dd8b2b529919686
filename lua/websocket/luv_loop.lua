--- The luv loop seen as the callback flavour's adapter: watch a descriptor for reading,
-- run a call after some seconds, run a call soon. That is all the callback layer
-- (websocket.callback_driver and the modules over it) asks of a loop, so another loop
-- (lua-ev, say) is a file like this one.
--
-- The loop is `opts.loop` when given, else Neovim's (`vim.uv`, then `vim.loop`), else
-- `require'luv'`.

local rawget = rawget
local native = require'websocket_native'

local math_floor = math.floor
local require = require
local setmetatable = setmetatable
local type = type

local luv_loop = {}

--- The luv module to use: `given`, else Neovim's, else `require'luv'`.
function luv_loop.find(given)
  if given then
    return given
  end
  local vim = rawget(_G, 'vim')
  if type(vim) == 'table' then
    local uv = vim.uv or vim.loop
    if uv then
      return uv
    end
  end
  return require'luv'
end

-- One adapter per luv module, kept in the table the native module shares across reloads:
-- libuv watches a descriptor once per loop, so the doorbell's watch must outlive this
-- module's table (a test runner may unload and require it again).
local adapters = native.shared.luv_adapters or setmetatable({}, { __mode = 'k' })
native.shared.luv_adapters = adapters

local function new_adapter(uv)
  local adapter = {}

  -- One poll handle per descriptor (libuv allows no second one), with its latest callback.
  local polls = {}

  --- Calls `on_readable()` whenever descriptor `fd` is readable, from `start()` until
  -- `stop()`. While started it keeps the loop running. A later watch of the same
  -- descriptor takes over its handle.
  function adapter.watch(fd, on_readable)
    local entry = polls[fd]
    if not entry then
      entry = { poll = uv.new_poll(fd) }
      polls[fd] = entry
    end
    entry.callback = on_readable
    local function readable()
      entry.callback()
    end
    local watcher = {}
    function watcher.start()
      entry.poll:start('r', readable)
    end
    function watcher.stop()
      entry.poll:stop()
    end
    return watcher
  end

  -- Stopped timers, for the next `after`. A timer is never closed: luv 1.44 crashes at exit
  -- when a handle's close has not finished in a loop turn (a program may end its loop right
  -- after a close), and a stopped timer neither holds the loop nor costs a turn.
  local idle_timers = {}

  --- Calls `callback()` once, `seconds` from now; returns a function that cancels it.
  function adapter.after(seconds, callback)
    local timer = idle_timers[#idle_timers]
    if timer then
      idle_timers[#idle_timers] = nil
    else
      timer = uv.new_timer()
    end
    local pending = true
    timer:start(math_floor(seconds * 1000 + 0.5), 0, function()
      pending = false
      idle_timers[#idle_timers + 1] = timer
      callback()
    end)
    return function()
      if pending then
        pending = false
        timer:stop()
        idle_timers[#idle_timers + 1] = timer
      end
    end
  end

  -- Calls deferred to the loop's next turn, run by an idle handle (which keeps the loop from
  -- blocking only while there are some).
  local deferred = {}
  local idle = uv.new_idle()
  local idle_running = false

  local function run_deferred()
    local calls = deferred
    deferred = {}
    for index = 1, #calls do
      calls[index]()
    end
    if #deferred == 0 then
      idle:stop()
      idle_running = false
    end
  end

  --- Calls `callback()` on the loop's next turn, after the callback running now.
  function adapter.defer(callback)
    deferred[#deferred + 1] = callback
    if not idle_running then
      idle_running = true
      idle:start(run_deferred)
    end
  end

  return adapter
end

--- The adapter of luv module `uv` (see find).
function luv_loop.adapter(uv)
  local adapter = adapters[uv]
  if not adapter then
    adapter = new_adapter(uv)
    adapters[uv] = adapter
  end
  return adapter
end

return luv_loop
