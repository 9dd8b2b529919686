--- lua-websockets' return values from what a native call answered, shared by every client.
--
-- Native calls answer `false, message` for a bad argument (never a valid answer of connect
-- or send; of close only without a third value). `raise_bad_argument` raises it as a string
-- error at the program's line, as luaL_argerror would. Call it as a statement, never in a
-- tail position: Lua 5.1 counts lost tail calls as stack levels and 5.2+ do not.

local error = error

local results = {}

--- Raises `message` when `answer` is false (the native call's bad-argument answer), at
-- `level` (default 3: this function, the client method, the program's call).
function results.raise_bad_argument(answer, message, level)
  if answer == false then
    error(message, level or 3)
  end
end

--- connect: `true, protocol, headers`, or `nil, err` with headers only when there are some.
function results.connected(ok, protocol_or_err, headers)
  if ok or headers ~= nil then
    return ok, protocol_or_err, headers
  end
  return nil, protocol_or_err
end

--- send: `true` alone, or `nil, was_clean, code, reason`.
function results.sent(ok, was_clean, code, reason)
  if ok then
    return ok
  end
  return nil, was_clean, code, reason
end

return results
