--- Pausing a copas coroutine until `wake` is called for it, without leaving anything of it
-- in copas' select set: a thousand paused connections then cost nothing per copas step.
--
-- copas 2 and later have this built in (pauseforever or sleep(-1), and wakeup). copas 1.x
-- has not: there a paused coroutine yields to a queue of ours, which copas knows nothing
-- of, and waking it hands it back to copas' own read set behind a token that select always
-- reports, so that copas resumes it as it resumes any coroutine (error handler included).

local copas = require'copas'
local native = require'websocket_native'

local coroutine_create = coroutine.create
local coroutine_resume = coroutine.resume
local coroutine_yield = coroutine.yield
local error = error
local setmetatable = setmetatable
local type = type

-- Coroutines paused now, each with what `wake` needs for it.
local paused = setmetatable({}, { __mode = 'k' })

local pause, wake

if copas.wakeup and (copas.pauseforever or copas.sleep) then
  local pause_forever = copas.pauseforever or function()
    copas.sleep(-1)
  end

  function pause(co)
    paused[co] = true
    pause_forever()
    paused[co] = nil
  end

  function wake(co)
    if paused[co] then
      paused[co] = nil
      copas.wakeup(co)
    end
  end
else
  -- copas 1.x: copas.receive yields the object and copas' read set to copas' dispatcher;
  -- a probe coroutine resumed here hands that set to us instead.
  local function copas_read_set()
    local probe = {
      receive = function()
        return nil, 'timeout'
      end,
    }
    local _, _, read_set = coroutine_resume(coroutine_create(copas.receive), probe)
    if type(read_set) ~= 'table' or not (read_set.insert and read_set.push) then
      error('websocket: this copas version is not supported', 2)
    end
    return read_set
  end

  local read_set = copas_read_set()

  -- A paused coroutine's token: dirty, so select reports it at once when it is in copas'
  -- read set, which is only while its coroutine is being woken.
  local Token = {}
  Token.__index = Token

  Token.getfd = native.constant(native.silent_fd())

  function Token.dirty()
    return true
  end

  -- copas 1.x closes the object a coroutine was resumed for when the coroutine ends.
  function Token.close() end

  local tokens = setmetatable({}, { __mode = 'k' })

  -- What a pausing coroutine yields to: copas puts the coroutine in it, and forgets it.
  local nowhere = {
    insert = function() end,
    push = function() end,
  }

  function pause(co)
    local token = tokens[co]
    if not token then
      token = setmetatable({}, Token)
      tokens[co] = token
    end
    paused[co] = token
    coroutine_yield(token, nowhere)
    paused[co] = nil
  end

  function wake(co)
    local token = paused[co]
    if token then
      paused[co] = nil
      read_set:insert(token)
      read_set:push(token, co)
    end
  end
end

return {
  --- Whether `co` is paused (waiting for `wake`).
  is_paused = function(co)
    return paused[co] ~= nil
  end,
  --- Pauses `co`, the running coroutine, until `wake(co)`.
  pause = pause,
  --- Makes a paused coroutine run again on a coming copas step; does nothing to one that
  -- is not paused.
  wake = wake,
}
