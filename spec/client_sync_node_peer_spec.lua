--- The sync client against Node's `ws` server (spec/peers/node_server.cjs): the shared
-- echo cases against a third implementation.

local peers = require'spec.support.peers'
local echo_cases = require'spec.support.echo_cases'

describe('sync client against Node ws', function()
  for _, case in ipairs(echo_cases(peers.node)) do
    it(case.name, case.run)
  end
end)
