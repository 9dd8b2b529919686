--- RFC 6455 conformance of the sync and copas clients: spec/peers/conformance_server.py
-- sends each case's crafted frames and checks what the client sends back (its verdict is
-- fetched afterwards); here each client's own answer is checked too.

local websocket = require'websocket'
local peers = require'spec.support.peers'

-- Each case: what receive() must answer. A string is the message expected (the client then
-- closes with 1000, which the server checks); a number is the close code of a failure; a
-- table is a close handshake that completed ({ clean = true, code = ... }).
local CASES = {
  masked_server_frame = 1002,
  invalid_utf8_text = 1007,
  invalid_utf8_in_a_later_fragment = 1007,
  reserved_bits = 1002,
  reserved_opcode = 1002,
  ping_over_125_bytes = 1002,
  fragmented_ping = 1002,
  continuation_without_start = 1002,
  new_message_inside_fragmented_one = 1002,
  -- The close code 1005 may not be sent (RFC 6455 7.4.1): the client answers 1002, which
  -- completes the close handshake with that code.
  close_with_reserved_code = { clean = true, code = 1002 },
  close_with_one_byte_payload = 1002,
  message_over_the_client_limit = 1009,
  ping_then_message = 'after the ping',
  unsolicited_pong_then_message = 'after the pong',
  fragments_around_a_ping = 'one two',
}

local function verdict_of(name)
  local client = websocket.client.sync({ timeout = 5 })
  assert(client:connect(peers.conformance('/verdict/' .. name)))
  local verdict = client:receive()
  client:close()
  return verdict
end

local function names()
  local sorted = {}
  for name in pairs(CASES) do
    sorted[#sorted + 1] = name
  end
  table.sort(sorted)
  return sorted
end

for _, flavour in ipairs({ 'sync', 'copas' }) do
  describe('the ' .. flavour .. ' client against RFC 6455 cases in raw frames', function()
    for _, name in ipairs(names()) do
      local expected = CASES[name]
      it(name:gsub('_', ' '), function()
        local client = websocket.client[flavour]({ timeout = 5, max_message_size = 1024 })
        assert.is_true((client:connect(peers.conformance('/case/' .. name))))
        local message, _, was_clean, code = client:receive()
        if type(expected) == 'string' then
          assert.are.equal(expected, message)
          assert.is_true((client:close()))
        elseif type(expected) == 'table' then
          assert.is_nil(message)
          assert.are.same({ expected.clean, expected.code }, { was_clean, code })
        else
          assert.is_nil(message)
          assert.is_false(was_clean)
          assert.are.equal(expected, code)
          assert.are.equal('CLOSED', client.state)
        end
        assert.are.equal('ok', verdict_of(name))
      end)
    end

    it('echoes a close started by the server and reports it clean', function()
      local client = websocket.client[flavour]({ timeout = 5 })
      assert.is_true((client:connect(peers.conformance('/case/server_close_is_echoed'))))
      assert.are.same({ nil, nil, true, 4000, 'server done' }, { client:receive() })
      assert.are.equal('ok', verdict_of('server_close_is_echoed'))
    end)
  end)
end
