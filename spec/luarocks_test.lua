--- `luarocks test`: every test (scripts/test.sh) on the Lua that luarocks runs this with.
-- The specs need their peers, which scripts/test.sh builds and starts.

local name
if rawget(_G, 'jit') then
  name = 'luajit'
else
  name = 'lua' .. _VERSION:match('%d+%.%d+')
end
local command = ('LUAS=%s bash scripts/test.sh %s'):format(name, table.concat(arg, ' '))
print('luarocks test: ' .. command)
local ok, _, status = os.execute(command)
-- Lua 5.1 returns the status alone.
if ok == true or ok == 0 then
  os.exit(0)
end
os.exit(type(status) == 'number' and status or 1)
