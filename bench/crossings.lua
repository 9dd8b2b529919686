--- Calls one kind of function COUNT times (bench/crossings.sh counts the instructions).
-- usage: lua bench/crossings.lua COUNT lua|c|native-function|native-method

local native = require'websocket_native'
local socket = require'socket'

local count, kind = tonumber(arg[1]), arg[2]

local client = native.copas_client({})
local now = native.now
local gettime = socket.gettime

local calls = {
  -- A Lua function: what every call costs in the VM.
  lua = function() return true end,
  -- A plain C function (luasocket's).
  c = function() return gettime() end,
  -- A function of ours, through mlua.
  ['native-function'] = function() return now() end,
  -- A method of a userdata of ours, through mlua (a borrow of the handle).
  ['native-method'] = function() return client:ready() end,
}

local call = assert(calls[kind], 'unknown kind')
for _ = 1, count do
  call()
end
