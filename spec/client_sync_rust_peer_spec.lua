--- The sync client against the tokio-tungstenite peer (tools/testpeer): the shared echo
-- cases, then everything that needs the peer's special paths.

local peers = require'spec.support.peers'
local echo_cases = require'spec.support.echo_cases'

describe('sync client against tokio-tungstenite', function()
  for _, case in ipairs(echo_cases(peers.rust)) do
    it(case.name, case.run)
  end
end)
