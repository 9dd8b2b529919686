-- Mistakes the type definitions must catch (scripts/test.sh expects exactly these
-- warnings from the checker). Never run.

local websocket = require'websocket'

local client = websocket.client.sync({ ping_interval = 'soon' })   -- a string for seconds
client:sendd('typo')                                                -- no such method
local server = websocket.server.copas.listen({ port = 'eighty' })   -- a string for a port
server:broadcst('typo')                                             -- no such method
