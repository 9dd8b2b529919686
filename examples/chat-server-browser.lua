--- A chat for browsers in one file: the page and the WebSocket on one port.
--
--   lua examples/chat-server-browser.lua [port] [token]
--   then open http://127.0.0.1:<port>/?token=<token>&name=you in a browser (or two).
--
-- It shows what the server does for production: `on_request` serves the page and a health
-- check as plain HTTP and refuses WebSocket upgrades without the token (401), before any
-- handler runs; what it learns (the name) reaches the handler as `ws.request.name`;
-- keepalive pings find browsers that vanished (and keep proxies from cutting idle
-- connections).

local copas = require'copas'
local websocket = require'websocket'

local port = tonumber(arg[1]) or 8080
local token = arg[2] or 'letmein'

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>lua-websockets-rs chat</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}#log{white-space:pre-wrap}</style>
</head><body>
<h1>Chat</h1>
<div id="log"></div>
<form id="form"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
<script>
const query = new URLSearchParams(location.search);
const url = 'ws://' + location.host + '/chat?' + query.toString();
const ws = new WebSocket(url, 'chat');
const log = document.getElementById('log');
const show = (line) => { log.textContent += line + '\n'; };
ws.onopen = () => show('connected as ' + (query.get('name') || 'someone'));
ws.onmessage = (event) => show(event.data);
ws.onclose = (event) => show('closed ' + event.code);
document.getElementById('form').onsubmit = (event) => {
  event.preventDefault();
  const text = document.getElementById('text');
  if (text.value) ws.send(text.value);
  text.value = '';
};
</script>
</body></html>
]]

-- The value of `name` in a query string, or nil.
local function query_value(path, name)
  local query = path:match('%?(.*)$') or ''
  for key, value in query:gmatch('([^&=]+)=([^&]*)') do
    if key == name then
      return (value:gsub('%%(%x%x)', function(hex) return string.char(tonumber(hex, 16)) end))
    end
  end
  return nil
end

local function on_request(request)
  local path = request.path:match('^[^?]*')
  if request.headers.upgrade == nil then
    if path == '/' then
      return 200, { ['content-type'] = 'text/html; charset=utf-8' }, PAGE
    elseif path == '/health' then
      return 200, { ['content-type'] = 'text/plain' }, 'ok'
    end
    return 404, { ['content-type'] = 'text/plain' }, 'not found'
  end
  if query_value(request.path, 'token') ~= token then
    return 401, { ['content-type'] = 'text/plain' }, 'a valid token is needed'
  end
  -- Seen by the handler as ws.request.name.
  request.name = (query_value(request.path, 'name') or 'someone'):sub(1, 32)
end

websocket.server.copas.listen({
  port = port,
  on_request = on_request,
  ping_interval = 20,
  protocols = {
    chat = function(ws)
      local name = ws.request.name
      ws:broadcast(name .. ' joined')
      while true do
        local message = ws:receive()
        if not message then
          ws:broadcast(name .. ' left')
          return
        end
        ws:broadcast(name .. ': ' .. message)
      end
    end,
  },
  on_error = function(message)
    io.stderr:write('chat: ', tostring(message), '\n')
  end,
})
print(('chat for browsers listening: open http://127.0.0.1:%d/?token=%s&name=you'):format(port, token))
io.stdout:flush()
copas.loop()
