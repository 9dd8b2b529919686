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
