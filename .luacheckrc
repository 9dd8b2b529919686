-- luacheck configuration: `luacheck lua spec examples bench` (CI runs it, zero warnings).
std = 'max'
max_line_length = 120
-- Methods need not use self (a flavour's method may not need its server).
self = false
-- The library's own modules must not touch globals at all.
files['lua'] = { std = 'min', read_globals = { 'jit', '_VERSION', 'rawget', '_G' } }
files['spec'] = { std = '+busted' }
-- Scripts that headless Neovim runs (spec/neovim_spec.lua).
files['spec/neovim'] = { read_globals = { 'vim' } }
files['examples/neovim-websocket.lua'] = { read_globals = { 'vim' } }
exclude_files = { 'build', 'target' }
