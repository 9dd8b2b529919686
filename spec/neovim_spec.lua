--- The luv flavour inside a real headless Neovim (Debian's, on LuaJIT with `vim.loop`),
-- loading the module built for the 5.1 ABI: a client talking to the tokio-tungstenite
-- peer while a Neovim timer fires, and a server that Python's websockets client talks to.
-- Neovim runs once, from the LuaJIT pass of the suite (or the Lua 5.1 one when the suite
-- runs without LuaJIT).

local peers = require'spec.support.peers'
local process = require'spec.support.process'

local function rock_tree()
  for _, lua in ipairs({ 'luajit', 'lua5.1' }) do
    local tree = os.getenv('PWD') .. '/build/rocks/' .. lua
    local file = io.open(tree .. '/lib/lua/5.1/websocket_native.so')
    if file then
      file:close()
      return tree, lua
    end
  end
end

local tree, built_for = rock_tree()
local this_lua = peers.lua_interpreter():match('[^/]+$')
local runs_here = tree ~= nil and (this_lua == built_for)
local describe_here = runs_here and describe or pending

-- Runs `script` in headless Neovim with `env` (name -> value) set; returns its output and
-- whether it exited with 0.
local function neovim(script, env)
  local settings = {
    'WS_NVIM_PATH=' .. tree .. '/share/lua/5.1/?.lua',
    'WS_NVIM_CPATH=' .. tree .. '/lib/lua/5.1/?.so',
  }
  for name, value in pairs(env) do
    settings[#settings + 1] = name .. "='" .. value .. "'"
  end
  local command = ('env %s timeout 60 nvim --headless -u NONE -i NONE -n -c "luafile %s" 2>&1'):format(
    table.concat(settings, ' '), script)
  local pipe = assert(io.popen(command))
  local output = pipe:read('*a')
  local ok = pipe:close()
  return output, ok == true or ok == 0
end

describe_here('the luv flavour in headless Neovim', function()
  it('connects with vim.loop found by itself, while a Neovim timer keeps firing', function()
    local output, ok = neovim('spec/neovim/client.lua', { WS_NVIM_URL = peers.rust('/echo') })
    assert.is_true(ok, output)
    local ticks = tonumber(output:match('echoed 200 closed true 1000 done ticks (%d+)'))
    assert.is_not_nil(ticks, output)
    assert.is_true(ticks > 0, output)
    assert.is_nil(output:find('wrong echo', 1, true), output)
  end)

  it('runs the Neovim example, which shows incoming messages in a buffer', function()
    local output, ok = neovim('spec/neovim/snippet.lua', { WEBSOCKET_URL = peers.rust('/echo') })
    assert.is_true(ok, output)
    assert.matches('connected to ws://', output, 1, true)
    assert.matches('\n> hello from neovim\n< hello from neovim\n', output, 1, true)
    assert.matches('closed: clean=true code=1000', output, 1, true)
  end)

  it('serves a Python websockets client from inside Neovim', function()
    local output, ok = neovim('spec/neovim/server.lua', {
      WS_NVIM_PORT = tostring(process.free_port()),
      WS_NVIM_CLIENT = peers.python_interpreter() .. ' spec/peers/python_client.py ws://127.0.0.1:$WS_NVIM_PORT/',
    })
    assert.is_true(ok, output)
    assert.matches('protocol echo\n', output, 1, true)
    assert.matches('big 70000 True', output, 1, true)
    assert.matches('closed 4001 done', output, 1, true)
    assert.matches('client exit 0', output, 1, true)
  end)
end)
