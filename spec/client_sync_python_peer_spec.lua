--- The sync client against Python's `websockets` (spec/peers/python_peer.py): the shared
-- echo cases against a second, independent implementation.

local peers = require'spec.support.peers'
local echo_cases = require'spec.support.echo_cases'

describe('sync client against Python websockets', function()
  for _, case in ipairs(echo_cases(peers.python)) do
    it(case.name, case.run)
  end
end)
