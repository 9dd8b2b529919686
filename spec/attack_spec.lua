--- As an attacker would: peers that try to make the server hold memory
-- (spec/peers/attacker.py, raw sockets) against a server process with the default limits
-- (spec/support/target_server.lua), whose memory is read from /proc; callbacks that raise;
-- malformed requests and frames. A normal client must be served during and after each
-- attack. Each test prints what it measured. WS_TEST_LONG=1 runs bigger attacks.

local websocket = require'websocket'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local process = require'spec.support.process'
local servers = require'spec.support.servers'
local services = require'spec.support.services'

local LONG = os.getenv('WS_TEST_LONG') == '1'
local run, gettime = copas_loop.run, copas_loop.gettime

-- The most memory a server with the default settings may take under any of these attacks
-- (a budget of 256 MiB for incoming data, 64 KiB per connection outside it, the rest
-- fixed): the bound docs/api.md states.
local LIMIT_KIB = 600 * 1024

--- A server process with the default limits on a free port (RAISING: its on_error raises).
local function start_target(raising)
  local port = process.free_port()
  local target = services.spawn(('sh -c "ulimit -n 8192 2>/dev/null; exec %s spec/support/target_server.lua %d %d"')
    :format(peers.lua_interpreter(), port, raising and 1 or 0))
  assert(copas_loop.step_until(function() return target.output():find('listening', 1, true) ~= nil end, 10),
    'the target server did not start: ' .. target.output())
  target.port = port
  target.url = 'ws://127.0.0.1:' .. port .. '/'
  -- Stopped however the test ends (stop() again after a normal end does nothing).
  finally(function() target.stop() end)
  return target
end

--- Starts spec/peers/attacker.py with `arguments` (PORT stands for the target's port).
local function start_attacker(target, arguments)
  local command = ('sh -c "ulimit -n 8192 2>/dev/null; ATTACK_STALL=1 exec %s spec/peers/attacker.py %s"')
    :format(peers.python_interpreter(), (arguments:gsub('PORT', tostring(target.port))))
  local attacker = services.spawn(command)
  finally(function() attacker.stop('KILL') end)
  return attacker
end

--- One echo of `text` on a new copas client of `url` (inside a copas coroutine).
local function echo_once(url, text)
  local client = websocket.client.copas({ timeout = 5 })
  assert(client:connect(url, 'echo'))
  assert(client:send(text))
  assert.are.equal(text, (client:receive()))
  client:close()
end

local pause = copas_loop.pause

--- Echoes with a normal client until `attacker` prints `word` (or `seconds` pass), then a
-- few more; returns the echoes served and the slowest round trip (seconds).
local function serve_during(target, attacker, word, seconds)
  local echoes, slowest, heard = 0, 0, false
  run(function()
    local client = websocket.client.copas({ timeout = 10 })
    assert(client:connect(target.url, 'echo'))
    local deadline = gettime() + seconds
    local after = 5
    while after > 0 and gettime() < deadline do
      local started = gettime()
      local text = 'normal ' .. echoes
      assert(client:send(text))
      local message, _, _, _, reason = client:receive()
      assert.are.equal(text, message, reason)
      echoes = echoes + 1
      slowest = math.max(slowest, gettime() - started)
      heard = heard or attacker.output():find(word, 1, true) ~= nil
      after = heard and after - 1 or after
      pause(0.05)
    end
    client:close()
  end)
  assert.is_true(heard, 'the attacker never said "' .. word .. '": ' .. attacker.output())
  return echoes, slowest
end

--- Runs an attack against a fresh target; returns the target's peak and final memory
-- (KiB) and what the attacker said, after checking that a normal client was served.
local function attack(arguments, protocol_word)
  local target = start_target()
  local _, before = process.memory_kib(target.pid)
  local attacker = start_attacker(target, arguments)
  local echoes, slowest = serve_during(target, attacker, protocol_word or 'stalled', 120)
  local rss, peak = process.memory_kib(target.pid)
  local said = attacker.output():match('stalled[^\n]*') or ''
  attacker.stop('KILL')
  target.stop()
  local mib = function(kib) return math.floor(kib / 1024) end
  print(('\n%s: peak %d MiB (from %d), now %d MiB; %s; normal client: %d echoes, slowest %.3f s')
    :format(arguments, mib(peak), mib(before), mib(rss), said, echoes, slowest))
  assert.is_true(echoes >= 5)
  return peak, rss, said
end

describe('memory no peer can exhaust (default settings)', function()
  it('a ping flood whose pongs are never read', function()
    local peak = attack(('pings PORT echo 4 %d'):format(LONG and 3000000 or 300000))
    assert.is_true(peak < 64 * 1024, 'peak ' .. peak .. ' KiB')
  end)

  it('16 x 60 MB messages per connection to a handler that never receives', function()
    local peak = attack(('flood PORT sink %d 16 60000000'):format(LONG and 20 or 5))
    assert.is_true(peak < LIMIT_KIB, 'peak ' .. peak .. ' KiB')
  end)

  it('16 x 60 MB messages to an echo whose client never reads the echoes', function()
    local peak = attack(('flood PORT echo %d 16 60000000'):format(LONG and 10 or 3))
    assert.is_true(peak < LIMIT_KIB, 'peak ' .. peak .. ' KiB')
  end)

  it('decompression bombs: 1 GB messages compressed to 1 MB (permessage-deflate)', function()
    local peak = attack(('bomb PORT sink %d 2 1000000000'):format(LONG and 16 or 4))
    assert.is_true(peak < LIMIT_KIB, 'peak ' .. peak .. ' KiB')
  end)

  it('1,000 connections each sending 16 x 1 MB to handlers that returned', function()
    local peak = attack('flood PORT gone 1000 16 1000000')
    assert.is_true(peak < LIMIT_KIB, 'peak ' .. peak .. ' KiB')
  end)

  it('peers that fill their queues and reset are let go, and their memory released', function()
    local target = start_target()
    local attacker = start_attacker(target, ('reset PORT %s 20 16 16000000'):format('gone'))
    serve_during(target, attacker, 'reset', 120)
    local _, peak = process.memory_kib(target.pid)
    local released_at
    local started = gettime()
    copas_loop.step_until(function()
      local rss = process.memory_kib(target.pid)
      if rss < 64 * 1024 then
        released_at = gettime() - started
        return true
      end
    end, 5)
    local rss = process.memory_kib(target.pid)
    -- The target still serves.
    run(function()
      echo_once(target.url, 'after the resets')
    end)
    attacker.stop('KILL')
    target.stop()
    local after = released_at and ('%.2f s'):format(released_at) or 'still'
    print(('\n20 peers filled their queues and reset: peak %d MiB, %d MiB %s after the resets')
      :format(math.floor(peak / 1024), math.floor(rss / 1024), after))
    assert.is_not_nil(released_at, 'RSS still ' .. rss .. ' KiB')
  end)

  it('a legitimate 64 MiB message (in 8 MiB frames) still gets through, both ways', function()
    local target = start_target()
    local output, status = copas_loop.run_process(('%s spec/peers/attacker.py legit %d echo 1 1 %d')
      :format(peers.python_interpreter(), target.port, 64 * 1024 * 1024), 60)
    local _, peak = process.memory_kib(target.pid)
    target.stop()
    print(('\na 64 MiB echo: %s; the server peaked at %d MiB'):format(output:match('[^\n]*'), math.floor(peak / 1024)))
    assert.are.equal(0, status, output)
    assert.matches('echoed 67108864', output, 1, true)
  end)
end)

describe('no Lua callback stops the server', function()
  it('keeps accepting when on_error raises, for bad requests and failing handlers', function()
    local target = start_target(true)
    run(function()
      for _ = 1, 3 do
        -- Not an upgrade: 400; a protocol nobody serves: 400; a handler that raises.
        assert.are.equal(400, (servers.http(target.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')))
        local refused = websocket.client.copas({ timeout = 5 })
        assert.is_nil((refused:connect(target.url, 'nothing-offered')))
        local failing = websocket.client.copas({ timeout = 5 })
        assert(failing:connect(target.url, 'boom'))
        local _, _, _, code = failing:receive()
        assert.are.equal(1011, code)
      end
      echo_once(target.url, 'still here')
    end)
    local raised = services.count_lines(target, 'on_error raised')
    target.stop()
    assert.are.equal(9, raised)
  end)

  it('answers 500 when on_request raises, even when on_error raises too', function()
    local stderr_lines = 0
    local server, url, _, port = servers.start({
      on_request = function(request)
        if request.path == '/fail' then
          error('on_request fails')
        end
      end,
      on_error = function()
        stderr_lines = stderr_lines + 1
        error('on_error fails too')
      end,
      protocols = { echo = require'spec.support.handlers'.echo },
    })
    run(function()
      local status = servers.http(port, 'GET /fail HTTP/1.1\r\nHost: x\r\n\r\n')
      assert.are.equal(500, status)
      echo_once(url, 'after')
    end)
    server:close()
    assert.are.equal(1, stderr_lines)
  end)
end)

describe('malformed requests and frames', function()
  local server, errors, port
  setup(function()
    local echo = require'spec.support.handlers'.echo
    local _
    server, _, errors, port = servers.start({ protocols = { echo = echo }, default = echo })
  end)
  teardown(function()
    server:close()
  end)

  local UPGRADE = servers.UPGRADE_REQUEST
  local function with_header(header)
    return UPGRADE:sub(1, -3) .. header .. '\r\n\r\n'
  end

  -- What is sent, and what on_error hears.
  local cases = {
    { 'Content-Length with Transfer-Encoding',
      with_header('Content-Length: 5\r\nTransfer-Encoding: chunked') .. 'hello',
      'Content-Length with Transfer-Encoding' },
    { 'a body announced by Content-Length', with_header('Content-Length: 5') .. 'hello', 'a request body' },
    { 'a pipelined second request', UPGRADE .. 'GET /second HTTP/1.1\r\nHost: x\r\n\r\n',
      'data after the request head' },
    { 'a frame in the same packet as the upgrade', UPGRADE .. '\129\133\0\0\0\0hello',
      'data after the request head' },
    { 'duplicate Sec-WebSocket-Key headers', with_header('Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA=='),
      'duplicate Sec-WebSocket-Key' },
  }
  for _, case in ipairs(cases) do
    it('answers 400 to ' .. case[1], function()
      local before = #errors
      run(function()
        assert.are.equal(400, (servers.http(port, case[2])))
      end)
      copas_loop.step_until(function() return #errors > before end, 2)
      assert.matches(case[3], errors[#errors] or '', 1, true)
    end)
  end

  it('upgrades the same request without any of these', function()
    run(function()
      assert.are.equal(101, (servers.http(port, UPGRADE)))
    end)
  end)

  it('answers a request with bare LF line ends at once', function()
    local started = gettime()
    local status
    run(function()
      status = servers.http(port, (UPGRADE:gsub('\r\n', '\n')))
    end)
    assert.is_true(status == 101 or status == 400, tostring(status))
    assert.is_true(gettime() - started < 3)
  end)

  it('fails a frame whose 64-bit length has its top bit set with 1002', function()
    local code
    run(function()
      local connection, tcp = servers.raw_websocket(port)
      connection:send('\130\255\255\255\255\255\255\255\255\255\0\0\0\0')
      local head = connection:receive(2)
      assert.are.equal('\136', head:sub(1, 1))
      local status = connection:receive(2)
      code = status:byte(1) * 256 + status:byte(2)
      tcp:close()
    end)
    assert.are.equal(1002, code)
  end)
end)
