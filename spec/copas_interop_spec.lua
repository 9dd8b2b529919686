--- Other implementations' clients against the copas server: Python `websockets` and Node
-- `ws`, each run as its own process while this process serves them from its copas loop.

local websocket = require'websocket'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local assert_echoed = require'spec.support.conversation'.assert_echoed
local process = require'spec.support.process'

local echo_handler = require'spec.support.handlers'.echo

--- Serves an echo server from copas while `command_for(url)` runs; returns its output lines.
local function serve_while_running(command_for)
  local port = process.free_port()
  local errors = {}
  local server = websocket.server.copas.listen({
    port = port,
    interface = '127.0.0.1',
    protocols = { echo = echo_handler },
    on_error = function(message) errors[#errors + 1] = message end,
  })
  local output, status = copas_loop.run_process(command_for('ws://127.0.0.1:' .. port .. '/'), 20)
  server:close()
  assert.are.equal(0, status, 'the client failed or did not finish: ' .. output)
  assert.are.same({}, errors)
  return output
end

describe('the copas server serving other implementations', function()
  it("serves Python websockets' client", function()
    local output = serve_while_running(function(url)
      return peers.python_interpreter() .. ' spec/peers/python_client.py ' .. url
    end)
    assert_echoed(output, '\nbinary 0001ff\n')
  end)

  it("serves Node ws' client", function()
    local output = serve_while_running(function(url)
      return 'NODE_PATH=' .. peers.node_modules() .. ' node spec/peers/node_client.cjs ' .. url
    end)
    assert_echoed(output, '\nbinary 0001ff true\n')
  end)
end)
