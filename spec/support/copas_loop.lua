--- Driving copas from a busted test. copas 1.x's copas.loop() never returns, so tests step
-- copas until what they wait for happened, within a time limit.

local copas = require'copas'
local socket = require'socket'

local error = error

-- PUC Lua 5.1 cannot yield across pcall; coxpcall (a dependency of copas) can.
local pcall = (_VERSION == 'Lua 5.1' and not rawget(_G, 'jit')) and require'coxpcall'.pcall or pcall

local copas_loop = {}

local function in_coroutine()
  local running, is_main = coroutine.running()
  return running ~= nil and not is_main
end

--- Steps copas until `is_done()` is true; false when `seconds` (default 10) passed first.
-- Inside a copas coroutine it sleeps between looks where copas can (copas 1.x cannot): a
-- copas step from inside a coroutine cannot resume the coroutines copas 4 queued behind
-- this one in the step that resumed it, and one of them may drive the connections.
function copas_loop.step_until(is_done, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  local nested = copas.sleep ~= nil and in_coroutine()
  while not is_done() do
    if socket.gettime() > deadline then
      return false
    end
    if nested then
      copas.sleep(0.01)
    else
      copas.step(0.05)
    end
  end
  return true
end

--- Lets copas run for `seconds`, inside a coroutine or outside.
function copas_loop.pause(seconds)
  local until_time = socket.gettime() + seconds
  copas_loop.step_until(function() return socket.gettime() >= until_time end, seconds + 1)
end

--- Runs each function in its own copas coroutine and steps copas until all have returned.
-- An error (or failed assertion) in any of them is raised again here.
function copas_loop.run(...)
  local bodies = { ... }
  local running = #bodies
  local failure
  for index = 1, #bodies do
    local body = bodies[index]
    copas.addthread(function()
      local ok, err = pcall(body)
      if not ok and failure == nil then
        failure = err
      end
      running = running - 1
    end)
  end
  local finished = copas_loop.step_until(function()
    return running == 0 or failure ~= nil
  end)
  if failure ~= nil then
    error(failure, 0)
  end
  if not finished then
    error('the copas coroutines did not finish in time', 2)
  end
end

--- Runs the shell `command` in the background while stepping copas, until it exits or
-- `seconds` (default 30) pass. Returns its output (stdout and stderr), its exit status
-- (nil when it did not finish in time).
function copas_loop.run_process(command, seconds)
  local output_file = os.tmpname()
  os.execute(('(%s > %s 2>&1; echo "exit=$?" >> %s) &'):format(command, output_file, output_file))
  local output = ''
  copas_loop.step_until(function()
    local file = io.open(output_file)
    output = file and file:read('*a') or ''
    if file then
      file:close()
    end
    return output:find('exit=%d+%s*$') ~= nil
  end, seconds or 30)
  os.remove(output_file)
  local status = tonumber(output:match('exit=(%d+)%s*$'))
  return (output:gsub('exit=%d+%s*$', '')), status
end

--- Seconds on the same clock as the tests' deadlines.
copas_loop.gettime = socket.gettime

return copas_loop
