--- Drives the native core from a loop, for the callback flavours: the loop watches the
-- core's doorbell (a descriptor readable whenever the core may have work); when it rings,
-- the driver steps the core once and calls `pump()` on each registered object (a
-- connection, a server) whose handle the step raised. Nothing polls on a timer: an idle
-- process with open connections sleeps in its loop.
--
-- One driver per loop adapter (see websocket.luv_loop for what an adapter is).

local native = require'websocket_native'

local io_stderr = io.stderr
local next = next
local pcall = pcall
local setmetatable = setmetatable
local tostring = tostring

local raw = native.raw_functions()
local any_raised = raw.any_raised
local serving = raw.serving
local step = raw.step

local callback_driver = {}

local drivers = setmetatable({}, { __mode = 'k' })

local function new_driver(adapter)
  -- The objects to pump, by the id of their handle.
  local objects = {}
  local raised_ids = {}
  local watching = false
  local turn_deferred = false
  local doorbell
  local driver = {}

  local function pump(object)
    -- The objects catch every error of a program's callback; one escaping here is a bug of
    -- ours, and must not end the loop (luv ends the process on an error in a callback).
    local ok, problem = pcall(object.pump, object)
    if not ok then
      io_stderr:write('websocket: internal error: ', tostring(problem), '\n')
    end
  end

  local function update_watch()
    local wanted = next(objects) ~= nil or serving()
    if wanted and not watching then
      watching = true
      doorbell.start()
    elseif watching and not wanted then
      watching = false
      doorbell.stop()
    end
  end

  local schedule_turn

  -- One step of the core, then the raised objects' pumps.
  local function turn()
    local count = step(raised_ids)
    for index = 1, count do
      local object = objects[raised_ids[index]]
      if object then
        pump(object)
      end
    end
    -- A step hands out a bounded number of ids; the rest wait for the next turn, at once.
    if any_raised() then
      schedule_turn()
    end
    update_watch()
  end

  local function deferred_turn()
    turn_deferred = false
    turn()
  end

  schedule_turn = function()
    if not turn_deferred then
      turn_deferred = true
      adapter.defer(deferred_turn)
    end
  end

  doorbell = adapter.watch(native.doorbell_fd(), turn)

  --- Pumps `object` whenever its handle (id `id`) is raised, until unregistered.
  function driver.register(id, object)
    objects[id] = object
    update_watch()
  end

  function driver.unregister(id)
    objects[id] = nil
    -- The watch stops at the next turn when nothing needs it: a close in the background
    -- may still need the core.
    schedule_turn()
  end

  --- Pumps `object` on the loop's next turn (it may have news its handle will not raise
  -- again: it was raised before it registered).
  function driver.pump_soon(object)
    adapter.defer(function()
      pump(object)
    end)
  end

  --- Calls `callback()` on the loop's next turn.
  driver.defer = adapter.defer
  --- Calls `callback()` after `seconds`; returns a function that cancels it.
  driver.after = adapter.after

  return driver
end

--- The driver for loop adapter `adapter`.
function callback_driver.of(adapter)
  local driver = drivers[adapter]
  if not driver then
    driver = new_driver(adapter)
    drivers[adapter] = driver
  end
  return driver
end

return callback_driver
