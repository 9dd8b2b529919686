--- Facts about the running Lua process that the specs check (Linux /proc).

local io = io
local tonumber = tonumber

local process = {}

--- This process' id: /proc/self opened from inside the process is the process itself.
function process.pid()
  local stat = assert(io.open('/proc/self/stat'))
  local pid = stat:read('*n')
  stat:close()
  return pid
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

--- A TCP port on 127.0.0.1 that nothing listens on.
function process.free_port()
  local socket = require'socket'
  local server = assert(socket.bind('127.0.0.1', 0))
  local _, port = server:getsockname()
  server:close()
  return tonumber(port)
end

return process
