--- server:broadcast (docs/api.md, "The server for production"): members whose socket is
-- full, members that just failed, protocol groups, and small broadcasts held for one write
-- per member. Real sockets on 127.0.0.1, copas clients in the same loop, raw luasocket
-- members.

local copas = require'copas'
local websocket = require'websocket'
local clients = require'spec.support.clients'
local copas_loop = require'spec.support.copas_loop'
local servers = require'spec.support.servers'

local run = copas_loop.run
local copas_client = clients.copas

describe('server:broadcast', function()
  it('waits for a member whose socket is full, loses nothing and keeps the order', function()
    local server, url, _, port = servers.start({ default = function() end })
    local size, count = 60000, 200
    local total = count * (size + 4)
    local payload = ('b'):rep(size)
    local got, raw_bytes, order_ok, stalled = 0, 0, true, false
    local raw_chunks = {}
    run(function()
      local reader = copas_client(url, nil, { timeout = 1 })
      -- A member that reads nothing at first: its socket fills, and the broadcasts to it wait
      -- in send() (so the reader stops getting them too) until it reads.
      local raw, raw_tcp = servers.raw_websocket(port)
      local sent = false
      copas.addthread(function()
        for index = 1, count do
          server:broadcast(('%06d'):format(index) .. payload:sub(7))
        end
        sent = true
      end)
      local function drain_raw()
        while raw_bytes < total do
          local chunk, err, partial = raw:receive(math.min(65536, total - raw_bytes))
          chunk = chunk or partial
          raw_bytes = raw_bytes + #chunk
          raw_chunks[#raw_chunks + 1] = chunk
          if err == 'closed' then break end
        end
      end
      while got < count do
        local message, _, _, _, reason = reader:receive()
        if message then
          got = got + 1
          order_ok = order_ok and message:sub(1, 6) == ('%06d'):format(got)
        else
          assert(reason == 'timeout' and not stalled, 'reader: ' .. tostring(reason))
          -- The broadcasts stalled on the full member: let it read.
          stalled = true
          copas.addthread(drain_raw)
        end
      end
      assert.is_true(copas_loop.step_until(function() return sent and raw_bytes >= total end, 20),
        ('sent %s, raw member read %d bytes'):format(tostring(sent), raw_bytes))
      raw_tcp:close()
      reader:close()
    end)
    server:close()
    assert.is_true(stalled, 'the full member never held the broadcasts back')
    assert.are.equal(count, got)
    assert.is_true(order_ok)
    assert.are.equal(total, raw_bytes)
    -- The raw member's bytes are whole frames in order: the socket took many of them in
    -- parts, and no other frame may come between the parts.
    local stream = table.concat(raw_chunks)
    local header = string.char(0x81, 126, math.floor(size / 256), size % 256)
    for index = 1, count do
      local at = (index - 1) * (size + 4) + 1
      assert.are.equal(header, stream:sub(at, at + 3), 'frame header ' .. index)
      assert.are.equal(('%06d'):format(index), stream:sub(at + 4, at + 9), 'frame ' .. index)
    end
  end)

  it('sends broadcasts made without yielding in order with the members\' own sends', function()
    -- 3,000 broadcasts of 1,400 bytes in one go: far over what one member holds (16 KiB)
    -- and what all hold (4 MiB) before it is written, with a direct send every 1,000.
    local count, filler = 3000, ('f'):rep(1394)
    local server, url = servers.start({
      default = function(ws)
        if ws:receive() ~= 'go' then return end
        for index = 1, count do
          ws:broadcast(('%05d '):format(index) .. filler)
          if index % 1000 == 0 then ws:send('direct ' .. index) end
        end
        ws:send('done')
        ws:receive()
      end,
    })
    local sender_got, other_got = {}, {}
    run(function()
      local sender = copas_client(url, nil, { timeout = 5 })
      local other = copas_client(url, nil, { timeout = 5 })
      copas_loop.step_until(function() return false end, 0.1)
      sender:send('go')
      repeat
        local message = sender:receive()
        sender_got[#sender_got + 1] = message and message:sub(1, 12)
      until message == nil or message == 'done'
      for _ = 1, count do
        other_got[#other_got + 1] = (other:receive() or 'nothing'):sub(1, 5)
      end
      sender:close()
      other:close()
    end)
    server:close()
    local expected_sender, expected_other = {}, {}
    for index = 1, count do
      expected_sender[#expected_sender + 1] = ('%05d '):format(index) .. filler:sub(1, 6)
      expected_other[index] = ('%05d'):format(index)
      if index % 1000 == 0 then expected_sender[#expected_sender + 1] = 'direct ' .. index end
    end
    expected_sender[#expected_sender + 1] = 'done'
    assert.are.same(expected_sender, sender_got)
    assert.are.same(expected_other, other_got)
  end)

  it('goes on past a member whose socket just failed, and the server keeps serving', function()
    local server, url, errors, port = servers.start({ default = function() end })
    local got
    run(function()
      local reader = copas_client(url)
      local _, doomed_tcp = servers.raw_websocket(port)
      copas_loop.step_until(function() return false end, 0.2)
      -- A reset, and broadcasts before the core has seen it: writing to it fails.
      doomed_tcp:setoption('linger', { on = true, timeout = 0 })
      doomed_tcp:close()
      for index = 1, 3 do
        server:broadcast('after the reset ' .. index)
      end
      got = { (reader:receive()), (reader:receive()), (reader:receive()) }
      reader:close()
    end)
    server:close()
    assert.are.same({ 'after the reset 1', 'after the reset 2', 'after the reset 3' }, got)
    assert.are.same({}, errors)
  end)

  it('reaches one group, the default group, or every group', function()
    local server, url = servers.start({
      protocols = { chat = function() end, news = function() end },
      default = function() end,
    })
    local got = {}
    run(function()
      local chat = copas_client(url, 'chat')
      local news = copas_client(url, 'news')
      local plain = copas_client(url)
      server:broadcast('to chat', websocket.TEXT, 'chat')
      server:broadcast('to the default group', websocket.BINARY, false)
      server:broadcast('to all')
      got.chat = { chat:receive() }
      got.chat_all = chat:receive()
      got.plain = { plain:receive() }
      got.plain_all = plain:receive()
      got.news = news:receive()
      chat:close()
      news:close()
      plain:close()
    end)
    server:close()
    assert.are.same({ 'to chat', websocket.TEXT }, got.chat)
    assert.are.equal('to all', got.chat_all)
    assert.are.same({ 'to the default group', websocket.BINARY }, got.plain)
    assert.are.equal('to all', got.plain_all)
    assert.are.equal('to all', got.news)
  end)
end)
