--- Waiting for the native core: inside a copas coroutine by yielding to copas, outside any
-- coroutine (the main chunk) by blocking, like the sync client.
--
-- Inside copas, one waiting coroutine, the watcher, waits in copas.receive on a proxy of
-- the core's doorbell (a descriptor readable whenever the core may have work). The others
-- are paused, outside copas' select set (websocket.pause). When the doorbell rings, the
-- watcher steps the core, takes the ids of the handles whose flags went up and wakes the
-- coroutines waiting for them. A wait so costs the same with one connection or thousands,
-- and with one busy connection it costs no extra coroutine switch: its coroutine is the
-- watcher.

local copas = require'copas'
local native = require'websocket_native'
local pause_module = require'websocket.pause'

local coroutine_running = coroutine.running
local coroutine_status = coroutine.status
local next = next
local setmetatable = setmetatable
local table_remove = table.remove
local type = type

-- The coroutine copas resumes: on PUC Lua 5.1, code under coxpcall's pcall runs in an
-- inner coroutine, whose yields pass through to copas as the outer one's.
local has_coxpcall, coxpcall = pcall(require, 'coxpcall')
local copas_coroutine = has_coxpcall and coxpcall.running or coroutine_running

local raw = native.raw_functions()

local any_raised = raw.any_raised
local is_paused = pause_module.is_paused
local now = raw.now
local pause = pause_module.pause
local serving = raw.serving
local step = raw.step
local take_raised = native.take_raised
local wake = pause_module.wake

-- What copas waits on for the watcher.
local doorbell = {}

-- The getfd methods are C functions: luasocket's select calls them twice a select.
doorbell.getfd = native.constant(native.doorbell_fd())

-- any_raised ignores the object copas passes.
doorbell.dirty = any_raised

local step_and_wake

-- Whether copas is about to call doorbell.receive for the first time in a watch, before it
-- selects. Each step clears the doorbell before it turns the core, so whatever the core has
-- not taken since then either rang the doorbell (and select sees it) or shows in any_raised
-- (a flag up, a waker fired): only the latter is worth a step before select.
local first_look = false

function doorbell.receive()
  if first_look then
    first_look = false
    if not any_raised() then
      return nil, 'timeout'
    end
  end
  if step_and_wake() then
    return true
  end
  return nil, 'timeout'
end

-- copas 1.x closes the object a finished coroutine waited on last; the core stays.
function doorbell.close() end

function doorbell.settimeout() end

-- The coroutines waiting, by the id of the handle each waits for: a coroutine, or a list
-- when several wait for one handle (one receiving while another sends).
local waiting = {}

local function add_waiter(id, co)
  local current = waiting[id]
  if current == nil then
    waiting[id] = co
  elseif type(current) == 'table' then
    current[#current + 1] = co
  else
    waiting[id] = { current, co }
  end
end

local function remove_waiter(id, co)
  local current = waiting[id]
  if current == co then
    waiting[id] = nil
  elseif type(current) == 'table' then
    for index = #current, 1, -1 do
      if current[index] == co then
        table_remove(current, index)
      end
    end
    if #current == 1 then
      waiting[id] = current[1]
    end
  end
end

-- Waiters whose handle went up since they started waiting. The handle's flag alone would
-- not do: when two coroutines wait on one connection, the first to poll lowers it, and the
-- other would wait on although what it waits for may be there.
local signalled = setmetatable({}, { __mode = 'k' })

local function signal(co)
  signalled[co] = true
  wake(co)
end

-- Wakes the coroutines waiting for the first `count` handles of `raised_ids`.
local raised_ids = {}
local function wake_raised(count)
  for index = 1, count do
    local current = waiting[raised_ids[index]]
    if type(current) == 'table' then
      for waiter = 1, #current do
        signal(current[waiter])
      end
    elseif current then
      signal(current)
    end
  end
  return count > 0
end

--- Steps the core and wakes the coroutines whose handles it raised; true when it raised
-- any.
function step_and_wake()
  return wake_raised(step(raised_ids))
end

local watcher

local function needs_watcher()
  return watcher == nil or coroutine_status(watcher) == 'dead'
end

local function watch_doorbell(co)
  watcher = co
  first_look = true
  copas.receive(doorbell)
  watcher = nil
end

-- When the watcher stops waiting while others still wait, it does not hand the watch over
-- at once: it usually waits again before copas selects (receive, send, receive), and then
-- watches again without a coroutine switch. The standby, a coroutine of ours, covers the
-- other case: copas asks the sentinel at every select whether anyone watches, and resumes
-- the standby to watch when nobody does.
local sentinel = { just_entered = false }

sentinel.getfd = native.constant(native.silent_fd())

sentinel.dirty = needs_watcher

function sentinel.receive()
  -- Entering, the standby lets the coroutines it just woke take the watch first.
  if sentinel.just_entered then
    sentinel.just_entered = false
  elseif needs_watcher() then
    return true
  end
  return nil, 'timeout'
end

sentinel.close = doorbell.close
sentinel.settimeout = doorbell.settimeout

local standby

-- Whether the doorbell needs a watcher: a coroutine waits, or a connection needs the core
-- stepped although nobody waits on it (a server connection whose handler returned, a client
-- with keepalive).
local function needs_watch()
  return next(waiting) ~= nil or serving()
end

local function run_standby()
  local co = copas_coroutine()
  while true do
    if not needs_watch() then
      -- Nothing to watch for: out of copas' select set until there is.
      pause(co)
    else
      sentinel.just_entered = true
      copas.receive(sentinel)
      if needs_watcher() and needs_watch() then
        watch_doorbell(co)
      end
    end
  end
end

-- Whether the standby needs a call to take the watch: it is missing or paused. Waiting on
-- the sentinel, it takes the watch by itself at copas' next select.
local function standby_idle()
  return standby == nil or coroutine_status(standby) == 'dead' or is_paused(standby)
end

local function call_standby()
  if standby == nil or coroutine_status(standby) == 'dead' then
    standby = copas.addthread(run_standby)
  else
    wake(standby)
  end
end

-- Handle ids, looked up once per handle.
local ids = setmetatable({}, { __mode = 'k' })

local function id_of(handle)
  local id = ids[handle]
  if not id then
    id = handle:id()
    ids[handle] = id
  end
  return id
end

-- `flag_down`: the caller saw the handle's flag down, and nothing ran since; the caller
-- also saw `deadline` ahead. Returns true when woken, false when the deadline passed.
local function wait_in_copas(co, handle, deadline, flag_down)
  -- The usual case (the handle's id known, one waiter) inline: this runs once a message.
  local id = ids[handle] or id_of(handle)
  if waiting[id] == nil then
    waiting[id] = co
  else
    add_waiter(id, co)
  end
  signalled[co] = nil
  local woken = true
  while flag_down or not (signalled[co] or handle:ready()) do
    flag_down = false
    if needs_watcher() then
      watch_doorbell(co)
    else
      pause(co)
    end
    if deadline and now() >= deadline then
      woken = signalled[co] or false
      break
    end
  end
  if waiting[id] == co then
    waiting[id] = nil
  else
    remove_waiter(id, co)
  end
  signalled[co] = nil
  if needs_watcher() and standby_idle() and needs_watch() then
    call_standby()
  end
  return woken
end

-- The deadline each handle's alarm is set for (handle:wake_at), kept from one wait to the
-- next: a wait sets it again only when it would ring after this wait's deadline or has
-- rung. One that rings before the deadline wakes the waiter, who finds its deadline ahead
-- and waits again, setting it then: a busy connection with a timeout sets its alarm about
-- once per timeout, not twice per message.
local alarms = setmetatable({}, { __mode = 'k' })

local function set_alarm(handle, deadline, current_time)
  local alarm = alarms[handle]
  if alarm == nil or alarm > deadline or alarm <= current_time then
    handle:wake_at(deadline)
    alarms[handle] = deadline
  end
end

local function in_coroutine()
  local running, is_main = coroutine_running()
  return running ~= nil and not is_main
end

--- Whether a wait now would step the core itself (as the watcher, or blocking outside
-- coroutines). A busy connection usually has what it waits for in the kernel already, and
-- then one step finds it without the cost of a wait. When another coroutine watches,
-- pausing costs less, and its one step serves every connection.
local function would_step()
  return not in_coroutine() or needs_watcher()
end

--- Waits until `handle:ready()` or until `deadline` (seconds on native.now()'s clock; nil:
-- no limit). Returns false when the deadline passed first. `stepped`: the caller's receive
-- just stepped the core if it would (see would_step) and found nothing, which leaves the
-- handle's flag down.
local function wait(handle, deadline, stepped)
  local in_copas = in_coroutine()
  local flag_down = stepped
  if not stepped and (not in_copas or needs_watcher()) then
    step_and_wake()
    if handle:ready() then
      return true
    end
    flag_down = true
  end
  if deadline then
    local current_time = now()
    if current_time >= deadline then
      return handle:ready()
    end
    set_alarm(handle, deadline, current_time)
  end
  if in_copas then
    return wait_in_copas(copas_coroutine(), handle, deadline, flag_down) or handle:ready()
  end
  while not handle:ready() and not (deadline and now() >= deadline) do
    native.park(deadline and deadline - now())
    -- Coroutines paused in copas learn what happened here when copas runs again.
    wake_raised(take_raised(raised_ids))
  end
  return not deadline or handle:ready() or now() < deadline
end

return {
  wait = wait,
  would_step = would_step,
  now = now,
  in_coroutine = in_coroutine,
}
