--- Server handlers the specs share.

local handlers = {}

--- Sends every message back as it came, until the connection ends.
function handlers.echo(ws)
  while true do
    local message, opcode = ws:receive()
    if not message then
      return
    end
    ws:send(message, opcode)
  end
end

return handlers
