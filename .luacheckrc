-- luacheck configuration: `luacheck lua spec examples bench` (CI runs it, zero warnings).
std = 'max'
max_line_length = 120
-- The library's own modules must not touch globals at all.
files['lua'] = { std = 'min', read_globals = { 'jit', '_VERSION', 'rawget', '_G' } }
files['spec'] = { std = '+busted' }
exclude_files = { 'build', 'target' }
