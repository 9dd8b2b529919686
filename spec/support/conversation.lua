--- What spec/peers/python_client.py and spec/peers/node_client.cjs print after talking to
-- an echo server with the `echo` protocol, checked in one place for every server flavour.

-- busted's assert, which modules required from a spec do not see as a global.
local assert = require'luassert'

local conversation = {}

--- Asserts the client's `output`; `binary_line` is how that client prints the binary echo.
function conversation.assert_echoed(output, binary_line)
  assert.matches('protocol echo\n', output, 1, true)
  assert.matches('\ntext hello from ', output, 1, true)
  assert.matches(binary_line, output, 1, true)
  assert.matches('\nbig 70000 [Tt]rue\n', output)
  assert.matches('\npong received\n', output, 1, true)
  assert.matches('\nclosed 4001 done\n', output, 1, true)
end

return conversation
