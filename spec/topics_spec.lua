--- Topics (ws:subscribe, ws:publish, server:publish) in one process with this project's,
-- Python's and Node's clients, and across processes over Debian's redis-server (exactly
-- once, in order, a process hearing a topic on Redis only while it has a subscriber);
-- slow readers under config.max_buffered with both on_backpressure policies, against a
-- server process whose memory is read from /proc.

local copas = require'copas'
local websocket = require'websocket'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local process = require'spec.support.process'
local servers = require'spec.support.servers'
local services = require'spec.support.services'
local topic_command = require'spec.support.topic_commands'

local run = copas_loop.run

-- A server of the topic commands (spec/support/topic_commands.lua), plus `go TOPIC`: the
-- server publishes `one`, `two` and `end` to TOPIC.
local function topic_server()
  local server
  local function handler(ws)
    while true do
      local message = ws:receive()
      if not message then
        return
      end
      local topic = message:match('^go (%S+)$')
      if topic then
        for _, word in ipairs({ 'one', 'two', 'end' }) do
          server:publish(topic, word)
        end
      else
        topic_command(server, ws, message)
      end
    end
  end
  local url, errors
  server, url, errors = servers.start({ protocols = { chat = handler } })
  return server, url, errors
end

local function client(url)
  -- A short timeout: drained() reads until a receive times out.
  local ws = websocket.client.copas({ timeout = 0.3 })
  assert(ws:connect(url, 'chat'))
  return ws
end

local function subscribed(ws, topic)
  assert(ws:send('sub ' .. topic))
  assert.are.equal('subscribed ' .. topic, (ws:receive()))
end

-- The next messages of `ws` until a receive times out.
local function drained(ws)
  local got = {}
  while true do
    local message = ws:receive()
    if not message then
      return got
    end
    got[#got + 1] = message
  end
end

describe('topics in one process', function()
  it('reach every subscriber, the publisher excluded for ws:publish, until unsubscribed', function()
    local server, url, errors = topic_server()
    local heard = {}
    run(function()
      local alice, bob, carol = client(url), client(url), client(url)
      subscribed(alice, 'news')
      subscribed(bob, 'news')
      subscribed(carol, 'sport')
      subscribed(carol, 'news')
      assert(alice:send('pub news from alice'))
      assert(carol:send('pub sport from carol'))
      -- From a coroutine that is no handler, as a timer would.
      copas.addthread(function() server:publish('news', 'from a timer') end)
      copas_loop.pause(0.2)
      heard.alice, heard.bob, heard.carol = drained(alice), drained(bob), drained(carol)
      assert(bob:send('unsub news'))
      assert.are.equal('unsubscribed news', (bob:receive()))
      assert(alice:send('pub news after bob left'))
      heard.bob_after, heard.carol_after = drained(bob), drained(carol)
      -- A topic nobody subscribed to reaches nobody, and a bad topic raises.
      server:publish('nobody', 'lost')
      heard.bad = select(2, pcall(server.publish, server, 42, 'x'))
      for _, ws in ipairs({ alice, bob, carol }) do ws:close() end
    end)
    server:close()
    assert.are.same({ 'from a timer' }, heard.alice)
    -- The timer's publish and alice's race: either may come first.
    table.sort(heard.bob)
    table.sort(heard.carol)
    assert.are.same({ 'from a timer', 'from alice' }, heard.bob)
    assert.are.same({ 'from a timer', 'from alice' }, heard.carol)
    assert.are.same({}, heard.bob_after)
    assert.are.same({ 'after bob left' }, heard.carol_after)
    assert.matches("bad argument #1 to 'publish'", heard.bad, 1, true)
    assert.are.same({}, errors)
  end)

  it('holds thousands of topics on one connection, and forgets them when it closes', function()
    local server, url = topic_server()
    local got, later = {}, {}
    run(function()
      local many = client(url)
      for index = 1, 3000 do
        many:send('sub t' .. index)
      end
      for _ = 1, 3000 do
        assert.matches('^subscribed t', (many:receive()))
      end
      for index = 1, 3000 do
        server:publish('t' .. index, 'to ' .. index)
      end
      for index = 1, 3000 do
        got[index] = many:receive()
      end
      many:close()
      local other = client(url)
      subscribed(other, 't1')
      server:publish('t1', 'still works')
      later = drained(other)
      other:close()
    end)
    server:close()
    for index = 1, 3000 do
      assert.are.equal('to ' .. index, got[index])
    end
    assert.are.same({ 'still works' }, later)
  end)

  it("serve Python websockets' and Node ws' subscribers", function()
    local server, url = topic_server()
    local lua_heard
    local python, python_status, node, node_status
    run(function()
      local watcher = client(url)
      subscribed(watcher, 'py')
      subscribed(watcher, 'js')
      python, python_status = copas_loop.run_process(peers.python_probe('topics ' .. url .. ' py'), 20)
      node, node_status = copas_loop.run_process('NODE_PATH=' .. peers.node_modules()
        .. ' node spec/peers/node_topics.cjs ' .. url .. ' js', 20)
      lua_heard = drained(watcher)
      watcher:close()
    end)
    server:close()
    assert.are.equal(0, python_status, python)
    assert.are.equal(0, node_status, node)
    -- The publisher gets the server's publishes, not its own.
    assert.are.equal('got one\ngot two\ngot end\n', python)
    assert.are.equal('got one\ngot two\ngot end\n', node)
    assert.are.same({ 'hello from python', 'one', 'two', 'end', 'hello from node', 'one', 'two', 'end' },
      lua_heard)
  end)
end)

describe('topics across processes', function()
  local keep, stop_all = services.keeper()
  after_each(stop_all)

  -- How many subscribers Redis counts on `channel`.
  local function numsub(redis, channel)
    local pipe = assert(io.popen(('redis-cli -p %d PUBSUB NUMSUB %s'):format(redis.port, channel)))
    local output = pipe:read('*a')
    pipe:close()
    return tonumber(output:match('\n(%d+)'))
  end

  -- Waits (stepping copas) until Redis counts `count` subscribers on `channel`.
  local function until_numsub(redis, channel, count)
    return copas_loop.step_until(function() return numsub(redis, channel) == count end, 10)
  end

  it('deliver exactly once, in order, and a process hears a topic only while it has subscribers', function()
    if not services.find('redis-server') then
      pending('redis-server is not installed (scripts/test.sh installs it as root)')
      return
    end
    local redis = keep(services.redis())
    local a = keep(services.server(process.free_port(), redis.url, 'room'))
    local b = keep(services.server(process.free_port(), redis.url, 'room'))
    local heard, counts = {}, {}
    run(function()
      local a1, a2 = client('ws://127.0.0.1:' .. a.port .. '/'), client('ws://127.0.0.1:' .. a.port .. '/')
      local b1, b2 = client('ws://127.0.0.1:' .. b.port .. '/'), client('ws://127.0.0.1:' .. b.port .. '/')
      subscribed(a1, 'news')
      subscribed(b1, 'news')
      subscribed(b2, 'other')
      counts.news = until_numsub(redis, 'room:topic:news', 2) and 2
      counts.other = until_numsub(redis, 'room:topic:other', 1) and 1
      -- a2 subscribes to nothing: its process hears news for a1 only.
      for index = 1, 40 do
        assert(a2:send('pub news n' .. index))
      end
      assert(b1:send('pub news from b1'))
      assert(b2:send('spub other to other'))
      copas_loop.pause(0.5)
      heard.a1, heard.b1, heard.a2, heard.b2 = drained(a1), drained(b1), drained(a2), drained(b2)
      a1:close()
      counts.after_close = until_numsub(redis, 'room:topic:news', 1) and 1
      assert(b1:send('unsub news'))
      assert.are.equal('unsubscribed news', (b1:receive()))
      counts.after_unsub = until_numsub(redis, 'room:topic:news', 0) and 0
      for _, ws in ipairs({ a2, b1, b2 }) do ws:close() end
    end)
    assert.are.equal(2, counts.news, 'each process subscribes to a topic it has subscribers for')
    assert.are.equal(1, counts.other, 'only the process with a subscriber hears the topic')
    assert.are.equal(1, counts.after_close, 'a closed subscriber takes its process off the topic')
    assert.are.equal(0, counts.after_unsub)
    local expected = {}
    for index = 1, 40 do
      expected[index] = 'n' .. index
    end
    -- b1's own publish goes to a1 only; b1 hears a2's 40 in order, once each.
    local a1_expected = {}
    for index = 1, 40 do a1_expected[index] = expected[index] end
    a1_expected[41] = 'from b1'
    assert.are.same(expected, heard.b1)
    assert.are.equal(41, #heard.a1)
    table.sort(heard.a1)
    table.sort(a1_expected)
    assert.are.same(a1_expected, heard.a1)
    assert.are.same({}, heard.a2)
    assert.are.same({ 'to other' }, heard.b2)
  end)
end)

describe('slow readers', function()
  local keep, stop_all = services.keeper()
  after_each(stop_all)

  local function start(max_buffered, policy)
    local port = process.free_port()
    local server = keep(services.spawn(('%s spec/support/broadcast_server.lua %d %s %s'):format(
      peers.lua_interpreter(), port, tostring(max_buffered or 'none'), policy or 'drop')))
    assert(copas_loop.step_until(function() return server.output():find('listening', 1, true) end, 10),
      server.output())
    server.pid = tonumber(server.output():match('listening (%d+)'))
    server.port = port
    return server
  end

  -- Five raw peers that never read, two healthy clients, a control connection that starts
  -- COUNT broadcasts of 64 KB; returns the control's `done` line, what each healthy client
  -- got, the server's RSS growth in KiB, and the stats once `members` came down to
  -- `members_left` (or after 10 s).
  local function slow_reader_run(server, count, members_left)
    local result = {}
    run(function()
      local url = 'ws://127.0.0.1:' .. server.port .. '/'
      local slow = {}
      for index = 1, 5 do
        slow[index] = { servers.raw_websocket(server.port) }
      end
      local healthy = { websocket.client.copas({ timeout = 10 }), websocket.client.copas({ timeout = 10 }) }
      for _, ws in ipairs(healthy) do assert(ws:connect(url)) end
      local control = websocket.client.copas({ timeout = 60 })
      assert(control:connect(url))
      local rss_before = process.memory_kib(server.pid)
      result.received = { 0, 0 }
      for index, ws in ipairs(healthy) do
        copas.addthread(function()
          for _ = 1, count do
            local message = ws:receive()
            if not message then return end
            if #message == 65536 then
              result.received[index] = result.received[index] + 1
            end
          end
        end)
      end
      control:send('go ' .. count .. ' 65536')
      -- The control gets the broadcasts too (it is a member), and asks for each next one.
      repeat
        local message = assert(control:receive())
        if #message == 65536 then
          control:send('next')
        end
        result.done = message:match('^done .*')
      until result.done
      result.growth = process.memory_kib(server.pid) - rss_before
      local deadline = copas_loop.gettime() + 10
      repeat
        control:send('stats')
        local message
        repeat message = assert(control:receive()) until message:find('^dropped')
        result.stats = message
        copas_loop.pause(0.1)
      until tonumber(message:match('members (%d+)')) <= members_left or copas_loop.gettime() > deadline
      copas_loop.pause(0.5)
      for _, pair in ipairs(slow) do pair[2]:close() end
      for _, ws in ipairs(healthy) do ws:close() end
      control:close()
    end)
    return result
  end

  it("never hold a broadcast with on_backpressure = 'drop': healthy clients get everything", function()
    local server = start(1024 * 1024, 'drop')
    local result = slow_reader_run(server, 300, 8)
    process.say('drop: ', result.done, '; RSS growth ', result.growth, ' KiB')
    assert.are.same({ 300, 300 }, result.received)
    local dropped = tonumber(result.done:match('dropped (%d+)'))
    assert.is_true(dropped > 0, result.done)
    -- Five slow members hold at most 1 MiB and one message each; 300 x 64 KB to five never
    -- read sockets would be 94 MiB.
    assert.is_true(result.growth < 40 * 1024, 'the server grew by ' .. result.growth .. ' KiB')
  end)

  it("close slow members with on_backpressure = 'close', and the others keep everything", function()
    local server = start(1024 * 1024, 'close')
    local result = slow_reader_run(server, 300, 3)
    process.say('close: ', result.done, '; ', result.stats, '; RSS growth ', result.growth, ' KiB')
    assert.are.same({ 300, 300 }, result.received)
    assert.matches('members 3$', result.stats)
    assert.is_true(result.growth < 40 * 1024, 'the server grew by ' .. result.growth .. ' KiB')
  end)
end)
