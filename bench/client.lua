--- Benchmark client (not a test): the sync or copas client echoes COUNT messages of SIZE
-- bytes one at a time and prints `messages/s N MB/s N`, then `cpu_us_per_message N` (the
-- process's CPU time, user and kernel, over the echoes). The same file measures
-- lua-websockets, whose API is the same, when LUA_PATH finds it first.
-- The luv flavour sends each message from the previous echo's on_message callback.
-- usage: lua bench/client.lua sync|copas|luv URL COUNT SIZE [binary]

local socket = require'socket'
local websocket = require'websocket'

local flavour, url, count, size = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local opcode = arg[5] == 'binary' and websocket.BINARY or websocket.TEXT
local payload = ('x'):rep(size)

local cpu_started, cpu_used

--- Connects, echoes, closes; returns the seconds the echoes took.
local function echo_all()
  local client = websocket.client[flavour]({ timeout = 30 })
  assert(client:connect(url))
  cpu_started = os.clock()
  local started = socket.gettime()
  for _ = 1, count do
    assert(client:send(payload, opcode))
    local echoed = assert(client:receive())
    assert(#echoed == size)
  end
  local elapsed = socket.gettime() - started
  cpu_used = os.clock() - cpu_started
  client:close()
  return elapsed
end

--- The same with the luv client's callbacks: each echo's on_message sends the next.
local function echo_all_luv()
  local uv = require'luv'
  local client = websocket.client.luv({ timeout = 30 })
  local started, elapsed
  local echoed = 0
  client:on_open(function(ws)
    cpu_started = os.clock()
    started = socket.gettime()
    assert(ws:send(payload, opcode))
  end)
  client:on_message(function(ws, message)
    assert(#message == size)
    echoed = echoed + 1
    if echoed < count then
      assert(ws:send(payload, opcode))
    else
      elapsed = socket.gettime() - started
      cpu_used = os.clock() - cpu_started
      ws:close()
    end
  end)
  client:on_error(function(_, err)
    error(err)
  end)
  client:connect(url)
  uv.run()
  assert(elapsed, 'the echoes did not finish')
  return elapsed
end

local elapsed
if flavour == 'luv' then
  elapsed = echo_all_luv()
elseif flavour == 'copas' then
  local copas = require'copas'
  -- PUC Lua 5.1 cannot yield across pcall; coxpcall (a dependency of copas) can.
  local pcall = (_VERSION == 'Lua 5.1' and not rawget(_G, 'jit')) and require'coxpcall'.pcall
    or pcall
  local done, ok, result = false, nil, nil
  copas.addthread(function()
    ok, result = pcall(echo_all)
    done = true
  end)
  -- copas 1.x's loop never returns: step until the coroutine is done.
  while not done do
    copas.step(1)
  end
  assert(ok, result)
  elapsed = result
else
  elapsed = echo_all()
end
print(('messages/s %.0f MB/s %.1f'):format(count / elapsed, 2 * count * size / elapsed / 1e6))
print(('cpu_us_per_message %.2f'):format(cpu_used * 1e6 / count))
