--- Running luv's default loop in the specs: until a condition holds, or while another
-- process runs.

local uv = require'luv'

local luv_run = {}

-- Lets the loop come back every 10 ms while a spec runs it. Stopped, never closed: luv
-- 1.44 crashes at exit on a handle whose close has not finished in a loop turn.
local ticker = uv.new_timer()

--- Runs the loop until `is_done()` or `seconds` (default 10) pass; raises in the latter
-- case.
function luv_run.until_done(is_done, seconds)
  local deadline = uv.now() + (seconds or 10) * 1000
  ticker:start(10, 10, function() end)
  while not is_done() and uv.now() < deadline do
    uv.run('once')
    uv.update_time()
  end
  ticker:stop()
  if not is_done() then
    error('not done in time', 2)
  end
end

--- Runs the shell `command` while the loop runs, until it exits or `seconds` (default 30)
-- pass. Returns its output (stdout and stderr together) and its exit status.
function luv_run.process(command, seconds)
  local output = {}
  local pipe = uv.new_pipe(false)
  local status
  local reading = true
  local child = uv.spawn('/bin/sh', { args = { '-c', command .. ' 2>&1' }, stdio = { nil, pipe, nil } },
    function(code)
      status = code
    end)
  assert(child, 'cannot start ' .. command)
  pipe:read_start(function(err, data)
    if data then
      output[#output + 1] = data
    else
      reading = false
      pipe:close()
      assert(not err, err)
    end
  end)
  luv_run.until_done(function()
    return status ~= nil and not reading
  end, seconds or 30)
  child:close()
  -- The closes finish in a loop turn (see ticker).
  uv.run('nowait')
  return table.concat(output), status
end

return luv_run
