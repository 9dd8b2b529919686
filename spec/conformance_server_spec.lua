--- RFC 6455 conformance of the copas server: spec/peers/conformance_client.py speaks crafted
-- frames to a copas echo server in this process and checks each answer against the RFC.
-- One test per case; the client runs once, while copas serves it.

local websocket = require'websocket'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local process = require'spec.support.process'

local CLIENT = 'spec/peers/conformance_client.py'

local echo_handler = require'spec.support.handlers'.echo

local function case_names()
  local listing = assert(io.popen(peers.python_interpreter() .. ' ' .. CLIENT .. ' --list'))
  local names = {}
  for name in listing:lines() do
    names[#names + 1] = name
  end
  listing:close()
  return names
end

describe('the copas server against RFC 6455 cases in raw frames', function()
  local outcomes = {}
  local client_output

  setup(function()
    local echo_port, limited_port = process.free_port(), process.free_port()
    local servers = {
      websocket.server.copas.listen({ port = echo_port, interface = '127.0.0.1',
        default = echo_handler, on_error = function() end }),
      websocket.server.copas.listen({ port = limited_port, interface = '127.0.0.1',
        default = echo_handler, max_message_size = 1024, on_error = function() end }),
    }
    local command = ('%s %s ws://127.0.0.1:%d/ ws://127.0.0.1:%d/'):format(
      peers.python_interpreter(), CLIENT, echo_port, limited_port)
    -- Each fuzz round may wait up to 0.2 s for an answer that never comes, twice.
    local fuzz_rounds = tonumber(os.getenv('FUZZ_ROUNDS')) or 150
    client_output = copas_loop.run_process(command, 60 + fuzz_rounds * 0.5)
    for _, server in ipairs(servers) do
      server:close()
    end
    for name, verdict in client_output:gmatch('case (%S+) ([^\n]*)') do
      outcomes[name] = verdict
    end
  end)

  for _, name in ipairs(case_names()) do
    it(name:gsub('_', ' '), function()
      assert.are.equal('ok', outcomes[name] or ('no verdict; the client said:\n' .. client_output))
    end)
  end
end)

describe('the copas server answers what came before a violation (strict, as Autobahn says)', function()
  local servers = require'spec.support.servers'

  --- A client frame masked with the zero key (which leaves the payload as it is).
  local function frame(first, payload)
    return string.char(first, 0x80 + #payload, 0, 0, 0, 0) .. payload
  end

  --- Sends `bytes` in one write to an echo server; the frames it answers, as
  -- `opcode:payload` (a close as `close:<code>`), until it closes.
  local function answers(bytes)
    local server, _, _, port = servers.start({ default = echo_handler, on_error = function() end })
    local seen = {}
    copas_loop.run(function()
      local connection, tcp = servers.raw_websocket(port)
      connection:send(bytes)
      while true do
        local head = connection:receive(2)
        if not head then break end
        local body = connection:receive(head:byte(2) % 128) or ''
        local opcode = head:byte(1) % 16
        if opcode == 8 then
          seen[#seen + 1] = 'close:' .. (body:byte(1) * 256 + body:byte(2))
          break
        end
        seen[#seen + 1] = opcode .. ':' .. body
      end
      tcp:close()
    end)
    server:close()
    return seen
  end

  it('echoes the messages before a frame with reserved bits, then closes with 1002', function()
    local bytes = frame(0x81, 'one') .. frame(0x82, 'two') .. frame(0xA1, 'bad')
    assert.are.same({ '1:one', '2:two', 'close:1002' }, answers(bytes))
  end)

  it('echoes the message before invalid UTF-8, then closes with 1007', function()
    assert.are.same({ '1:fine', 'close:1007' }, answers(frame(0x81, 'fine') .. frame(0x81, '\255\254')))
  end)

  it('echoes a fragmented message and answers a ping before an unknown opcode, then 1002', function()
    local bytes = frame(0x01, 'frag') .. frame(0x89, 'p') .. frame(0x80, 'ment') .. frame(0x83, 'x')
    assert.are.same({ '10:p', '1:fragment', 'close:1002' }, answers(bytes))
  end)
end)
