--- A server process with the default limits, for the specs that attack it and read its
-- memory from /proc: `echo` echoes, `sink` holds its connection and never receives, `gone`
-- returns at once (the core keeps the connection), `boom` raises. Prints `listening <pid>` once it listens
-- and `error <message>` for each on_error; with RAISING=1 its on_error also raises.
-- It agrees to permessage-deflate when a peer offers it.
--   lua spec/support/target_server.lua PORT RAISING(0|1)

local copas = require'copas'
local websocket = require'websocket'
local handlers = require'spec.support.handlers'
local process = require'spec.support.process'

local port, raising = tonumber(arg[1]), arg[2] == '1'
local say = process.say

websocket.server.copas.listen({
  port = port,
  interface = '127.0.0.1',
  compression = 'deflate',
  on_error = function(message)
    say('error ', tostring(message))
    if raising then
      error('on_error fails on purpose')
    end
  end,
  protocols = {
    echo = handlers.echo,
    sink = function(ws)
      -- copas 1.x has no sleep: a coroutine that yields nothing is never resumed there.
      local sleep = copas.sleep or coroutine.yield
      while ws.state == 'OPEN' do
        sleep(0.2)
      end
    end,
    gone = function() end,
    boom = function()
      error('the handler fails on purpose')
    end,
  },
})
say('listening ', tostring(process.pid()))
copas.loop()
