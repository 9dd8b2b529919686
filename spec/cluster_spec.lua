--- Beyond one process (docs/scaling.md): SO_REUSEPORT, broadcasts across processes over
-- Redis pub/sub (`config.cluster`), Redis outages, and nginx in front of two processes.
-- Real components: Debian's redis-server and nginx, started here on free ports; server
-- processes running spec/support/cluster_server.lua; copas clients in this process and a
-- Python `websockets` client.

local websocket = require'websocket'
local peers = require'spec.support.peers'
local copas_loop = require'spec.support.copas_loop'
local process = require'spec.support.process'
local services = require'spec.support.services'

local run = copas_loop.run

local function chat_client(port, path, opts)
  local client = websocket.client.copas(opts or { timeout = 5 })
  local ok, err = client:connect('ws://127.0.0.1:' .. port .. (path or '/'), 'chat')
  assert(ok, err)
  return client
end

--- Waits until a broadcast sent from `sender` reaches `receiver` (both copas clients with
-- a short timeout): the cluster connects to Redis in the background.
local function until_linked(sender, receiver, seconds)
  local deadline = copas_loop.gettime() + (seconds or 15)
  repeat
    sender:send('probe')
    local message, _, _, _, reason = receiver:receive()
    if message == 'probe' then
      return true
    end
    assert(reason == 'timeout', 'the receiver closed: ' .. tostring(reason))
  until copas_loop.gettime() > deadline
  return false
end

--- The next `count` messages of `client` that are not probes, as { message, opcode }.
local function next_messages(client, count)
  local got = {}
  while #got < count do
    local message, opcode, _, _, reason = client:receive()
    if not message then
      error('got ' .. #got .. ' of ' .. count .. ' messages, then: ' .. tostring(reason), 2)
    end
    if message ~= 'probe' then
      got[#got + 1] = { message, opcode }
    end
  end
  return got
end

--- The next message that is not a probe, or the error (e.g. 'timeout').
local function next_message(client)
  while true do
    local message, _, _, _, reason = client:receive()
    if message ~= 'probe' then
      return message or reason
    end
  end
end

--- Marks the running test pending, and says so, when one of the programs is not installed.
local function missing(...)
  for _, program in ipairs({ ... }) do
    if not services.find(program) then
      pending(program .. ' is not installed (scripts/test.sh installs it as root)')
      return true
    end
  end
  return false
end

describe('beyond one process', function()
  local keep, stop_all = services.keeper()
  after_each(stop_all)

  it('raises from listen for a Redis URL it cannot use', function()
    local ok, err = pcall(websocket.server.copas.listen, {
      port = process.free_port(),
      default = function() end,
      cluster = { redis = 'http://127.0.0.1/', channel = 'x' },
    })
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'listen' (cluster: bad Redis URL 'http://127.0.0.1/'", err, 1, true)
    ok, err = pcall(websocket.server.copas.listen, {
      port = process.free_port(), default = function() end, cluster = { redis = 'redis://x' },
    })
    assert.is_false(ok)
    assert.matches('channel: non-empty string expected, got nil', err, 1, true)
  end)

  it('shares one port between processes with reuse_port, and refuses without it', function()
    local port = process.free_port()
    local first = keep(services.server(port, nil, nil, { reuse_port = true }))
    local second = keep(services.server(port, nil, nil, { reuse_port = true }))
    assert.matches('listening', first.output())
    assert.matches('listening', second.output())
    local pids = {}
    run(function()
      for _ = 1, 30 do
        local client = chat_client(port)
        client:send('whoami')
        pids[client:receive()] = true
        client:close()
      end
    end)
    assert.is_true(pids[first.pid] and pids[second.pid] and true or false,
      'the kernel gave every connection to one process')
    assert.has_error(function()
      websocket.server.copas.listen({ port = port, interface = '127.0.0.1', default = function() end })
    end, 'cannot listen on 127.0.0.1 port ' .. port .. ': address already in use')
  end)

  it('delivers every broadcast to every connection of every process once, in order', function()
    if missing('redis-server') then return end
    local redis = keep(services.redis())
    local a = keep(services.server(process.free_port(), redis.url, 'room'))
    local b = keep(services.server(process.free_port(), redis.url, 'room'))
    local elsewhere = keep(services.server(process.free_port(), redis.url, 'elsewhere'))
    local python = keep(services.spawn(('%s spec/peers/python_probe.py listen ws://127.0.0.1:%d/ 51')
      :format(peers.python_interpreter(), b.port)))
    assert(copas_loop.step_until(function() return python.output():find('ready', 1, true) end, 10),
      'the Python client did not connect: ' .. python.output())
    -- It gets the other processes' broadcasts compressed, the Lua clients uncompressed.
    assert.matches('ready permessage-deflate', python.output(), 1, true)
    local results, extra = {}, {}
    run(function()
      local opts = { timeout = 1 }
      local clients = {
        a1 = chat_client(a.port, '/', opts), a2 = chat_client(a.port, '/', opts),
        b1 = chat_client(b.port, '/', opts), b2 = chat_client(b.port, '/', opts),
      }
      local bystander = chat_client(elsewhere.port, '/', opts)
      assert.is_true(until_linked(clients.a1, clients.b1))
      for index = 1, 50 do
        assert(clients.a1:send('a' .. index))
      end
      assert(clients.b2:send('\0\1\255', websocket.BINARY))
      for name, client in pairs(clients) do
        results[name] = next_messages(client, 51)
        -- Nothing twice: after the 51, nothing more comes.
        extra[name] = next_message(client)
      end
      results.bystander = next_message(bystander)
    end)
    for _, name in ipairs({ 'a1', 'a2', 'b1', 'b2' }) do
      local texts = {}
      for _, item in ipairs(results[name]) do
        if item[2] == websocket.TEXT then
          texts[#texts + 1] = item[1]
        else
          assert.are.same({ '\0\1\255', websocket.BINARY }, item, name)
        end
      end
      assert.are.equal(50, #texts, name)
      for index = 1, 50 do
        assert.are.equal('a' .. index, texts[index], name)
      end
      assert.are.equal('timeout', extra[name], name)
    end
    assert.are.equal('timeout', results.bystander, 'a process on another channel got a broadcast')
    assert.is_true(copas_loop.step_until(function() return select(2, python.output():gsub('\n', '')) >= 52 end, 10))
    -- The texts in A's order; the binary (from B's own process) anywhere among them.
    local python_texts, python_binaries = {}, {}
    for line in python.output():gmatch('[^\n]+') do
      local text = line:match('^text (.*)')
      if text then
        python_texts[#python_texts + 1] = text
      elseif line:find('^binary ') then
        python_binaries[#python_binaries + 1] = line
      end
    end
    assert.are.equal(50, #python_texts)
    for index = 1, 50 do
      assert.are.equal('a' .. index, python_texts[index])
    end
    assert.are.same({ 'binary 0001ff' }, python_binaries)
  end)

  it('starts without Redis, serves locally meanwhile, and links up once Redis is there', function()
    if missing('redis-server') then return end
    local redis_port = process.free_port()
    local url = 'redis://127.0.0.1:' .. redis_port
    local a = keep(services.server(process.free_port(), url, 'late'))
    assert.matches('listening', a.output())
    local local_echo, linked
    run(function()
      local opts = { timeout = 1 }
      local on_a = chat_client(a.port, '/', opts)
      on_a:send('only here')
      local_echo = next_message(on_a)
      keep(services.redis(redis_port))
      local b = keep(services.server(process.free_port(), url, 'late'))
      local on_b = chat_client(b.port, '/', opts)
      linked = until_linked(on_a, on_b, 20)
    end)
    assert.are.equal('only here', local_echo)
    assert.is_true(linked)
    assert.are.equal(1, services.count_lines(a, 'error cluster: Redis unreachable'), a.output())
  end)

  it('keeps local delivery through a Redis restart and links up again, one error per outage', function()
    if missing('redis-server') then return end
    local redis = keep(services.redis())
    local a = keep(services.server(process.free_port(), redis.url, 'restart'))
    local b = keep(services.server(process.free_port(), redis.url, 'restart'))
    local during, relinked
    run(function()
      local opts = { timeout = 1 }
      local on_a, on_b = chat_client(a.port, '/', opts), chat_client(b.port, '/', opts)
      assert.is_true(until_linked(on_a, on_b))
      redis.stop('KILL')
      assert.is_true(copas_loop.step_until(function()
        return services.count_lines(a, 'error cluster:') > 0
      end, 10), 'no outage reported: ' .. a.output())
      on_a:send('during the outage')
      during = { next_message(on_a), next_message(on_b) }
      keep(services.redis(redis.port))
      relinked = until_linked(on_a, on_b, 20)
    end)
    assert.are.same({ 'during the outage', 'timeout' }, during)
    assert.is_true(relinked)
    assert.are.equal(1, services.count_lines(a, 'error cluster:'), a.output())
  end)

  describe('behind nginx', function()
    --- nginx in front of two upstreams: /plain/ to `plain` servers, /keepalive/ to
    -- `keepalive` servers, with a 2 s proxy_read_timeout.
    local function start_nginx(plain, keepalive)
      local function addresses(servers)
        local list = {}
        for _, server in ipairs(servers) do
          list[#list + 1] = '127.0.0.1:' .. server.port
        end
        return list
      end
      return keep(services.nginx({ plain = addresses(plain), keepalive = addresses(keepalive) }, '2s'))
    end

    it('spreads clients over two processes that see each other\'s broadcasts', function()
      if missing('redis-server', 'nginx') then return end
      local redis = keep(services.redis())
      local a = keep(services.server(process.free_port(), redis.url, 'nginx'))
      local b = keep(services.server(process.free_port(), redis.url, 'nginx'))
      local proxy = start_nginx({ a, b }, { a, b })
      local pids, heard, forwarded = {}, {}, nil
      run(function()
        local opts = { timeout = 2 }
        local clients = {}
        for index = 1, 4 do
          clients[index] = chat_client(proxy.port, '/plain/', opts)
          clients[index]:send('whoami')
          local pid, _, _, _, reason = clients[index]:receive()
          assert(pid, 'whoami through nginx: ' .. tostring(reason))
          pids[pid] = index
        end
        clients[1]:send('xff')
        forwarded = clients[1]:receive()
        -- One client on each process: link them up, then broadcast from the first.
        local on_a, on_b
        for pid, index in pairs(pids) do
          if pid == a.pid then on_a = clients[index] else on_b = clients[index] end
        end
        assert(on_a and on_b, 'nginx sent every client to one process')
        assert.is_true(until_linked(on_a, on_b))
        clients[1]:send('through nginx')
        for index = 1, 4 do
          heard[index] = next_message(clients[index])
        end
      end)
      assert.are.same({ 'through nginx', 'through nginx', 'through nginx', 'through nginx' }, heard)
      assert.are.equal('127.0.0.1', forwarded)
    end)

    it('keeps idle connections through nginx with keepalive, and nginx cuts them without', function()
      if missing('nginx') then return end
      local plain = keep(services.server(process.free_port()))
      local pinging = keep(services.server(process.free_port(), nil, nil, { ping_interval = 0.5 }))
      local proxy = start_nginx({ plain }, { pinging })
      local kept, cut
      run(function()
        -- Each receive waits 4 s, twice nginx's proxy_read_timeout.
        local opts = { timeout = 4 }
        local with_pings = chat_client(proxy.port, '/keepalive/', opts)
        local without = chat_client(proxy.port, '/plain/', opts)
        local _, _, _, _, reason = with_pings:receive()
        with_pings:send('still here')
        kept = { reason, with_pings:receive() }
        local message, _, _, code = without:receive()
        cut = { message, code, without.state }
      end)
      assert.are.same({ 'timeout', 'still here', websocket.TEXT }, kept)
      assert.is_nil(cut[1])
      assert.are.equal('CLOSED', cut[3])
    end)
  end)
end)
