--- Benchmark client (not a test) over plain TCP (luasocket, no WebSocket): sends COUNT
-- lines of SIZE bytes one at a time and waits for each echo, blocking (sync) or in a copas
-- coroutine (copas); prints `messages/s N`, then `cpu_us_per_message N` (the process's
-- CPU time over the echoes). What a Lua client costs per message before any
-- WebSocket work: the floor under bench/client.lua's clients of the same flavour
-- (bench/instructions.sh, bench/client-floor.sh).
-- usage: lua bench/tcp-client.lua sync|copas HOST:PORT COUNT SIZE

local socket = require'socket'

local flavour = arg[1]
local host, port = (arg[2] or ''):match('^(.+):(%d+)$')
local count, size = tonumber(arg[3]), tonumber(arg[4])
assert((flavour == 'sync' or flavour == 'copas') and host and count and size,
  'usage: lua bench/tcp-client.lua sync|copas HOST:PORT COUNT SIZE')
local line = ('x'):rep(size)

--- Echoes every line over `client` (connected); returns the seconds taken, or nil and
-- what went wrong.
local cpu_used
local function echo_all(client)
  local cpu_started = os.clock()
  local started = socket.gettime()
  for _ = 1, count do
    client:send(line .. '\n')
    local echoed = client:receive('*l')
    if echoed ~= line then
      return nil, 'bad echo: ' .. tostring(echoed)
    end
  end
  cpu_used = os.clock() - cpu_started
  return socket.gettime() - started
end

local elapsed, failure
if flavour == 'sync' then
  local tcp = assert(socket.connect(host, tonumber(port)))
  tcp:setoption('tcp-nodelay', true)
  elapsed, failure = echo_all(tcp)
  tcp:close()
else
  local copas = require'copas'
  -- PUC Lua 5.1 cannot yield across pcall; coxpcall (a dependency of copas) can.
  local pcall = (_VERSION == 'Lua 5.1' and not rawget(_G, 'jit')) and require'coxpcall'.pcall
    or pcall
  local done = false
  copas.addthread(function()
    local ok, result, err = pcall(function()
      local tcp = socket.tcp()
      assert(copas.connect(tcp, host, tonumber(port)))
      tcp:setoption('tcp-nodelay', true)
      local took, wrong = echo_all(copas.wrap(tcp))
      tcp:close()
      return took, wrong
    end)
    if ok then
      elapsed, failure = result, err
    else
      failure = tostring(result)
    end
    done = true
  end)
  -- copas 1.x's loop never returns: step until the coroutine is done.
  while not done do
    copas.step(1)
  end
end
assert(elapsed, failure)
print(('messages/s %.0f'):format(count / elapsed))
print(('cpu_us_per_message %.2f'):format(cpu_used * 1e6 / count))
