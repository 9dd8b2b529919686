--- permessage-deflate (docs/api.md, "Compression"): the copas server and both clients
-- against Python `websockets` and Node `ws`, which negotiate it, with every window size and
-- with and without context takeover; what RFC 7692 says an endpoint must refuse, in raw
-- frames; the negotiation's edge cases in raw handshakes. Real sockets on 127.0.0.1.

local websocket = require'websocket'
local clients = require'spec.support.clients'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local servers = require'spec.support.servers'
local services = require'spec.support.services'
local echo_handler = require'spec.support.handlers'.echo

local run = copas_loop.run

local python_probe = peers.python_probe

local function node_client(url)
  return 'NODE_PATH=' .. peers.node_modules() .. ' node spec/peers/node_client.cjs ' .. url .. ' deflate'
end

--- A raw request offering `extensions`; the response head's Sec-WebSocket-Extensions
-- (false when the response has none) and the connection, upgraded.
local function raw_upgrade(port, extensions)
  local connection, tcp = servers.raw_connection(port)
  local offer = '\r\nSec-WebSocket-Extensions: ' .. extensions .. '\r\n\r\n'
  local request = servers.UPGRADE_REQUEST:gsub('\r\n\r\n$', offer)
  connection:send(request)
  local answer = false
  repeat
    local line = connection:receive('*l')
    answer = line:match('^[Ss]ec%-[Ww]eb[Ss]ocket%-[Ee]xtensions: (.*)$') or answer
  until line == ''
  return answer, connection, tcp
end

--- A client frame: `first` (FIN, RSV bits, opcode), `payload`, masked with a zero key
-- (which leaves the payload as it is).
local function client_frame(first, payload)
  assert(#payload < 126)
  return string.char(first, 0x80 + #payload, 0, 0, 0, 0) .. payload
end

--- The close code of the close frame `connection` reads next.
local function close_code(connection)
  local head = connection:receive(2)
  assert.are.equal(0x88, head:byte(1))
  local body = connection:receive(head:byte(2))
  return body:byte(1) * 256 + body:byte(2)
end

describe('permessage-deflate on the copas server', function()
  local server, url, errors, port

  setup(function()
    server, url, errors, port = servers.start({
      compression = 'deflate',
      protocols = { echo = echo_handler },
      default = function(ws)
        if ws.request.path == '/which' then
          ws:send(tostring(ws.compression))
        end
        echo_handler(ws)
      end,
    })
  end)

  teardown(function()
    server:close()
  end)

  it('talks compressed with Python websockets: TEXT, BINARY, small, large, fragmented', function()
    local output = copas_loop.run_process(python_probe('deflate ' .. url), 30)
    assert.matches('^extensions permessage%-deflate\nechoed 6\n$', output)
  end)

  it('negotiates every window size and no context takeover with Python websockets', function()
    for bits = 9, 15 do
      -- Every other size without context takeover.
      local no_takeover = bits % 2 == 0
      local output = copas_loop.run_process(python_probe(('deflate %s %d %d %s')
        :format(url, bits, bits, no_takeover and '1' or '0')), 30)
      local expected = 'permessage-deflate'
        .. (no_takeover and '; server_no_context_takeover; client_no_context_takeover' or '')
        .. '; server_max_window_bits=' .. bits
      assert.are.equal('extensions ' .. expected .. '\nechoed 6\n', output)
    end
  end)

  it("talks compressed with Node ws' client", function()
    local output = copas_loop.run_process(node_client(url), 30)
    assert.matches('extensions permessage%-deflate', output)
    assert.matches('\ntext hello from node\nbinary 0001ff true\nbig 70000 true\n', output, 1, true)
    assert.matches('closed 4001 done', output, 1, true)
  end)

  it('gives the handler ws.compression', function()
    local compressed, plain
    run(function()
      local client = websocket.client.copas({ timeout = 5, compression = 'deflate' })
      assert(client:connect(url .. 'which'))
      compressed = client:receive()
      client:close()
      client = websocket.client.copas({ timeout = 5 })
      assert(client:connect(url .. 'which'))
      plain = client:receive()
      client:close()
    end)
    assert.are.same({ 'deflate', 'nil' }, { compressed, plain })
  end)

  it('answers offers as RFC 7692 says', function()
    local answers = {}
    run(function()
      for _, offer in ipairs({
        'permessage-deflate',
        'permessage-deflate; client_max_window_bits',
        'permessage-deflate; client_no_context_takeover; server_no_context_takeover',
        'permessage-deflate; server_max_window_bits=10',
        'permessage-deflate; server_max_window_bits=8, permessage-deflate',
        'permessage-deflate; server_max_window_bits=16',
        'permessage-deflate; mystery',
        'permessage-deflate; server_no_context_takeover=1',
        'x-webkit-deflate-frame',
      }) do
        local answer, _, tcp = raw_upgrade(port, offer)
        answers[#answers + 1] = answer
        tcp:close()
      end
    end)
    assert.are.same({
      'permessage-deflate',
      'permessage-deflate',
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
      'permessage-deflate; server_max_window_bits=10',
      'permessage-deflate',
      false, false, false, false,
    }, answers)
  end)

  it('fails bad compressed data with 1007, RSV1 on a control or continuation frame with 1002', function()
    local codes = {}
    run(function()
      local cases = {
        -- FIN, RSV1, TEXT: bytes that are no deflate stream.
        client_frame(0xC1, ('\255'):rep(20)),
        -- FIN, RSV1, PING.
        client_frame(0xC9, 'ping'),
        -- An uncompressed first fragment, then a continuation with RSV1.
        client_frame(0x01, 'a') .. client_frame(0xC0, 'b'),
        -- RSV2 on a data frame.
        client_frame(0xA1, 'x'),
      }
      for _, frames in ipairs(cases) do
        local _, connection, tcp = raw_upgrade(port, 'permessage-deflate')
        connection:send(frames)
        codes[#codes + 1] = close_code(connection)
        tcp:close()
      end
    end)
    assert.are.same({ 1007, 1002, 1002, 1002 }, codes)
    assert.are.same({}, errors)
    -- The server still serves.
    local output = copas_loop.run_process(python_probe('deflate ' .. url), 30)
    assert.matches('\nechoed 6\n$', output)
  end)

  it('closes with 1009 a message that inflates past max_message_size, and serves the next client', function()
    local small, small_url = servers.start({
      compression = 'deflate',
      max_message_size = 100000,
      default = echo_handler,
      on_error = function() end,
    })
    local code, reason, echoed
    run(function()
      local client = websocket.client.copas({ timeout = 5, compression = 'deflate' })
      assert(client:connect(small_url))
      -- 1 MB of one letter compresses to about a kilobyte.
      client:send(('a'):rep(1000000))
      local _, _, _, close, why = client:receive()
      code, reason = close, why
      local next_client = websocket.client.copas({ timeout = 5, compression = 'deflate' })
      assert(next_client:connect(small_url))
      next_client:send('still here')
      echoed = next_client:receive()
      next_client:close()
    end)
    small:close()
    assert.are.equal(1009, code)
    assert.are.equal('still here', echoed)
    assert.is_string(reason)
  end)

  it('broadcasts to compressed and plain members alike (compressed once without context takeover)', function()
    local standalone, standalone_url = servers.start({
      compression = { server_no_context_takeover = true },
      default = function(ws)
        while true do
          local message = ws:receive()
          if not message then return end
          for index = 1, 20 do
            local body = (index % 2 == 0) and (message .. index):rep(index * 200) or message .. index
            ws:broadcast(body, index % 3 == 0 and websocket.BINARY or websocket.TEXT)
          end
        end
      end,
    })
    local received = {}
    run(function()
      local members = {}
      for index, compression in ipairs({ 'deflate', 'deflate', false, 'deflate' }) do
        local client = websocket.client.copas({ timeout = 10, compression = compression })
        assert(client:connect(standalone_url))
        members[index] = client
      end
      members[1]:send('go')
      for index, client in ipairs(members) do
        local bodies = {}
        for _ = 1, 20 do
          bodies[#bodies + 1] = client:receive()
        end
        received[index] = table.concat(bodies, '|')
        client:close()
      end
    end)
    standalone:close()
    local expected = {}
    for index = 1, 20 do
      expected[index] = (index % 2 == 0) and ('go' .. index):rep(index * 200) or 'go' .. index
    end
    expected = table.concat(expected, '|')
    assert.are.same({ expected, expected, expected, expected }, received)
  end)

  it('leaves messages uncompressed when a server has no compression option', function()
    local plain, plain_url = servers.start({ default = echo_handler })
    local output = copas_loop.run_process(python_probe('deflate ' .. plain_url), 30)
    plain:close()
    assert.matches('^extensions None\n', output)
    assert.matches('\nechoed 6\n$', output)
  end)
end)

describe('permessage-deflate in the clients', function()
  local document = ('{"id":1,"name":"an item","tags":["a","b"]},'):rep(20000)

  it('talks compressed with the Python websockets peer, fragmented messages too (copas client)', function()
    local results = {}
    run(function()
      local client = websocket.client.copas({ timeout = 10, compression = 'deflate' })
      assert(client:connect(peers.python('/echo')))
      results.compression = client.compression
      client:send(document)
      results.document = client:receive() == document
      client:send('\0\1\255', websocket.BINARY)
      results.binary = client:receive()
      client:close()
      local fragments = websocket.client.copas({ timeout = 10, compression = 'deflate' })
      assert(fragments:connect(peers.python('/fragments/5')))
      results.fragments = fragments:receive()
      fragments:close()
    end)
    assert.are.same({
      compression = 'deflate',
      document = true,
      binary = '\0\1\255',
      fragments = 'fragment-0;fragment-1;fragment-2;fragment-3;fragment-4;',
    }, results)
  end)

  it('talks compressed with the Node ws peer, with its window and takeover choices', function()
    local results = {}
    run(function()
      for _, options in ipairs({
        'deflate',
        { server_no_context_takeover = true, client_no_context_takeover = true },
        { server_max_window_bits = 10, client_max_window_bits = 9 },
      }) do
        local client = websocket.client.copas({ timeout = 10, compression = options })
        assert(client:connect(peers.node('/echo')))
        client:send(document)
        client:send(document)
        results[#results + 1] = client.compression == 'deflate'
          and client:receive() == document and client:receive() == document
        client:close()
      end
    end)
    assert.are.same({ true, true, true }, results)
  end)

  it('works in the sync client (in a process of its own)', function()
    local script = "local ws = require'websocket'.client.sync({ timeout = 10, compression = 'deflate' })"
      .. "; assert(ws:connect('" .. peers.python('/echo') .. "'))"
      .. "; local big = ('compress me '):rep(50000); ws:send(big)"
      .. "; print(ws.compression, ws:receive() == big); ws:close()"
    local output = copas_loop.run_process(peers.lua_interpreter() .. ' -e "' .. script .. '"', 30)
    assert.are.equal('deflate\ttrue\n', output)
  end)

  it('fails a connect whose answer the offer did not allow, naming the problem', function()
    local answers = {
      ['permessage-deflate; client_max_window_bits=8'] = 'client_max_window_bits=8 cannot be honoured',
      ['permessage-deflate; mystery=1'] = 'unknown parameter mystery',
      ['x-unknown'] = 'an extension that was not offered',
    }
    for extensions, problem in pairs(answers) do
      local server = services.spawn(python_probe('answer "' .. extensions .. '"'))
      assert(copas_loop.step_until(function() return server.output():find('port %d+') end, 10))
      local port = server.output():match('port (%d+)')
      local ok, err
      run(function()
        local client = websocket.client.copas({ timeout = 5, compression = 'deflate' })
        ok, err = client:connect('ws://127.0.0.1:' .. port .. '/')
        assert.are.equal('CLOSED', client.state)
      end)
      server.stop()
      assert.is_nil(ok)
      assert.matches('Websocket Handshake failed: ', err, 1, true)
      assert.matches(problem, err, 1, true)
    end
  end)

  it('offers nothing without the option, and rejects bad options', function()
    local client = clients.connected('copas', peers.python('/echo'))
    assert.is_nil(client.compression)
    client:close()
    assert.has_error(function() websocket.client.sync({ compression = 'gzip' }) end,
      "bad argument #1 to 'sync' (compression: 'deflate' or table expected, got string)")
    assert.has_error(function() websocket.client.copas({ compression = { server_max_window_bits = 8 } }) end,
      "bad argument #1 to 'copas' (compression: server_max_window_bits: "
        .. "a window size from 9 to 15 expected, got number)")
    assert.has_error(function()
      websocket.server.copas.listen({ port = 0, compression = { speed = true }, default = echo_handler })
    end, "bad argument #1 to 'listen' (compression: unknown parameter 'speed')")
  end)
end)
