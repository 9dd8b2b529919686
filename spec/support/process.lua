--- Facts about the running Lua process that the specs check (Linux /proc).

local error = error
local io = io
local os = os
local tonumber = tonumber

local process = {}

--- This process' id: /proc/self opened from inside the process is the process itself.
function process.pid()
  local stat = assert(io.open('/proc/self/stat'))
  local pid = stat:read('*n')
  stat:close()
  return pid
end

--- Writes its arguments and a newline to stdout at once (for a spec reading the output of
-- a server process it started).
function process.say(...)
  io.stdout:write(...)
  io.stdout:write('\n')
  io.stdout:flush()
end

--- How many file descriptors this process has open.
function process.open_fds()
  local listing = assert(io.popen('ls /proc/' .. process.pid() .. '/fd'))
  local count = 0
  for _ in listing:lines() do
    count = count + 1
  end
  listing:close()
  -- `ls` itself is another process, but the pipe popen made is one of ours.
  return count - 1
end

--- This process' resident memory in KiB.
function process.rss_kib()
  local status = assert(io.open('/proc/' .. process.pid() .. '/status'))
  local rss
  for line in status:lines() do
    rss = rss or tonumber(line:match('^VmRSS:%s*(%d+)'))
  end
  status:close()
  return rss
end

--- Process `pid`'s resident memory and its peak (VmRSS, VmHWM), in KiB.
function process.memory_kib(pid)
  local status = assert(io.open('/proc/' .. pid .. '/status'))
  local rss, peak
  for line in status:lines() do
    rss = rss or tonumber(line:match('^VmRSS:%s*(%d+)'))
    peak = peak or tonumber(line:match('^VmHWM:%s*(%d+)'))
  end
  status:close()
  return rss, peak
end

-- Ports handed out come from below Linux's ephemeral range (32768-60999): a port the kernel
-- chose (bind to 0) could go to some outgoing connection's end before the spec listens on it.
local FIRST_PORT, PORT_COUNT = 20000, 12000
local next_port

--- A TCP port on 127.0.0.1 that nothing uses now, and that no outgoing connection will take.
function process.free_port()
  local socket = require'socket'
  -- Start where other Lua processes running specs at the same time are unlikely to.
  next_port = next_port or (process.pid() * 7919 + os.time()) % PORT_COUNT
  for _ = 1, PORT_COUNT do
    local port = FIRST_PORT + next_port
    next_port = (next_port + 1) % PORT_COUNT
    local server = socket.bind('127.0.0.1', port)
    if server then
      server:close()
      return port
    end
  end
  error('no free port on 127.0.0.1 between ' .. FIRST_PORT .. ' and ' .. (FIRST_PORT + PORT_COUNT - 1))
end

return process
