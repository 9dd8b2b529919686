--- A real browser against the copas server: Debian's chromium, headless, loads a page the
-- server itself serves from `on_request`, opens a WebSocket to the same port, exchanges TEXT
-- and BINARY messages and closes; and the browser chat example (examples/
-- chat-server-browser.lua) with its token check. Skipped, and only this, when chromium is
-- not installed.

local websocket = require'websocket'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local process = require'spec.support.process'
local servers = require'spec.support.servers'
local services = require'spec.support.services'

local run = copas_loop.run

local function chromium_path()
  for _, name in ipairs({ 'chromium', 'chromium-browser' }) do
    local found = io.popen('command -v ' .. name .. ' 2>/dev/null'):read('*l')
    if found and found ~= '' then
      return found
    end
  end
  return nil
end

--- Starts headless chromium on `url` in the background; returns a function that stops it
-- and returns what it printed.
local function open_in_chromium(url)
  local profile = os.tmpname()
  os.remove(profile)
  local log, pid_file = os.tmpname(), os.tmpname()
  os.execute(('%s --headless=new --no-sandbox --disable-gpu --no-first-run --disable-extensions '
    .. '--user-data-dir=%s %q >%s 2>&1 & echo $! >%s'):format(chromium_path(), profile, url, log, pid_file))
  return function()
    local pid = io.open(pid_file):read('*l')
    os.execute('kill ' .. pid .. ' 2>/dev/null; sleep 0.2; kill -9 ' .. pid .. ' 2>/dev/null')
    os.execute('rm -rf ' .. profile)
    local file = io.open(log)
    local printed = file and file:read('*a') or ''
    if file then file:close() end
    os.remove(log)
    os.remove(pid_file)
    return printed
  end
end

local PAGE = [[<!doctype html><title>echo</title><pre id="log"></pre><script>
const ws = new WebSocket('ws://' + location.host + '/echo', 'echo');
ws.binaryType = 'arraybuffer';
const got = [];
ws.onopen = () => { ws.send('hello from chromium'); ws.send(new Uint8Array([0, 1, 255]).buffer); };
ws.onmessage = (event) => {
  got.push(typeof event.data === 'string' ? 'text:' + event.data
    : 'binary:' + Array.from(new Uint8Array(event.data)).join(','));
  if (got.length === 2) { ws.send('report ' + got.join(' | ')); ws.close(1000, 'done'); }
};
</script>]]

-- A page that opens a WebSocket to another server (WS_PORT) and reports to its own what
-- became of it: the echo, or the close code of a connection that never opened.
local ORIGIN_PAGE = [[<!doctype html><title>origin</title><script>
let opened = false;
const report = (what) => fetch('/report?' + what);
const ws = new WebSocket('ws://127.0.0.1:WS_PORT/', 'echo');
ws.onopen = () => { opened = true; ws.send('hello from an allowed page'); };
ws.onmessage = (event) => { report('echo=' + encodeURIComponent(event.data)); ws.close(); };
ws.onclose = (event) => { if (!opened) report('refused=' + event.code); };
</script>]]

-- A page that echoes the server's first message and then reports its WebSocket's
-- negotiated extensions.
local COMPRESSION_PAGE = [[<!doctype html><title>deflate</title><script>
const ws = new WebSocket('ws://' + location.host + '/');
ws.onmessage = (event) => { ws.send(event.data); ws.send('extensions ' + ws.extensions); };
</script>]]

describe('a real browser (headless chromium)', function()
  local browser = chromium_path()

  it('loads a page from on_request and talks to the server on the same port', function()
    if not browser then
      pending('chromium is not installed (scripts/test.sh installs it as root)')
      return
    end
    local report, ending, page_requests = nil, nil, 0
    local server, _, errors, port = servers.start({
      on_request = function(request)
        if request.path == '/' then
          page_requests = page_requests + 1
          return 200, { ['content-type'] = 'text/html' }, PAGE
        elseif request.headers.upgrade == nil then
          return 404
        end
      end,
      protocols = {
        echo = function(ws)
          while true do
            local message, opcode, was_clean, code, reason = ws:receive()
            if not message then
              ending = { was_clean, code, reason }
              return
            elseif message:find('^report ') then
              report = message:sub(8)
            else
              ws:send(message, opcode)
            end
          end
        end,
      },
    })
    local stop = open_in_chromium('http://127.0.0.1:' .. port .. '/')
    local finished = copas_loop.step_until(function() return ending ~= nil end, 60)
    local printed = stop()
    server:close()
    assert.is_true(finished, 'the browser never closed its WebSocket; chromium said: ' .. printed)
    assert.are.equal(1, page_requests)
    assert.are.equal('text:hello from chromium | binary:0,1,255', report)
    assert.are.same({ true, 1000, 'done' }, ending)
    assert.are.same({}, errors)
  end)

  it('runs the browser chat example: page, token check, broadcast to a Lua client', function()
    local port = process.free_port()
    local example_log = os.tmpname()
    os.execute(('%s examples/chat-server-browser.lua %d secret >%s 2>&1 & echo $! >%s.pid')
      :format(peers.lua_interpreter(), port, example_log, example_log))
    local function stop_example()
      os.execute('kill $(cat ' .. example_log .. '.pid) 2>/dev/null')
      os.remove(example_log .. '.pid')
      os.remove(example_log)
    end
    assert.is_true(copas_loop.step_until(function()
      local file = io.open(example_log)
      local text = file and file:read('*a') or ''
      if file then file:close() end
      return text:find('listening', 1, true) ~= nil
    end, 10))
    local base = 'ws://127.0.0.1:' .. port .. '/chat'
    local page_status, page_type, refused, heard
    local ok, failure = pcall(run, function()
      local status, headers = servers.http(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
      page_status, page_type = status, headers['content-type']
      local intruder = websocket.client.copas({ timeout = 5 })
      refused = select(2, intruder:connect(base .. '?token=wrong', 'chat'))
      local listener = websocket.client.copas({ timeout = 30 })
      assert(listener:connect(base .. '?token=secret&name=lua', 'chat'))
      assert.are.equal('lua joined', (listener:receive()))
      if browser then
        local stop = open_in_chromium('http://127.0.0.1:' .. port .. '/?token=secret&name=chromium')
        heard = listener:receive()
        stop()
      end
      listener:close()
    end)
    stop_example()
    assert.is_true(ok, failure)
    assert.are.equal(200, page_status)
    assert.are.equal('text/html; charset=utf-8', page_type)
    assert.are.equal('Websocket Handshake failed: HTTP status 401 Unauthorized', refused)
    if browser then
      assert.are.equal('chromium joined', heard)
    end
  end)

  it('lets a page of a listed origin in and keeps one of another origin out (config.origins)', function()
    if not browser then
      pending('chromium is not installed (scripts/test.sh installs it as root)')
      return
    end
    local reports = {}
    local ws_port
    local page_server, _, _, page_port = servers.start({
      interface = '*',
      on_request = function(request)
        if request.path == '/' then
          return 200, { ['content-type'] = 'text/html' }, ORIGIN_PAGE:gsub('WS_PORT', ws_port)
        end
        reports[#reports + 1] = request.path:match('^/report%?(.*)$')
        return 204
      end,
      default = function() end,
    })
    local ws_server, _, ws_errors
    ws_server, _, ws_errors, ws_port = servers.start({
      origins = { 'http://127.0.0.1:' .. page_port },
      protocols = { echo = require'spec.support.handlers'.echo },
    })
    local function visit(url)
      local before = #reports
      local stop = open_in_chromium(url)
      local reported = copas_loop.step_until(function() return #reports > before end, 60)
      local printed = stop()
      assert.is_true(reported, 'the page never reported; chromium said: ' .. printed)
      return reports[#reports]
    end
    local admitted = visit('http://127.0.0.1:' .. page_port .. '/')
    local refused = visit('http://localhost:' .. page_port .. '/')
    ws_server:close()
    page_server:close()
    assert.are.equal('echo=hello%20from%20an%20allowed%20page', admitted)
    assert.are.equal('refused=1006', refused)
    assert.are.same({ 'origin not allowed: http://localhost:' .. page_port }, ws_errors)
  end)

  it('compresses with permessage-deflate when the server offers it: fewer bytes both ways', function()
    if not browser then
      pending('chromium is not installed (scripts/test.sh installs it as root)')
      return
    end
    local document = ('{"id":1234,"name":"an item in a list","tags":["red","green"]},'):rep(4000)
    local function exchange(compression)
      local seen = {}
      local server, _, errors, port = servers.start({
        compression = compression,
        on_request = function(request)
          if request.headers.upgrade then
            return
          elseif request.path == '/' then
            return 200, { ['content-type'] = 'text/html' }, COMPRESSION_PAGE
          end
          return 404
        end,
        default = function(ws)
          ws:send(document)
          seen.echoed = ws:receive() == document
          seen.extensions = ws:receive()
          seen.compression = ws.compression
          ws:close()
        end,
      })
      -- The browser talks through a relay that counts the bytes on the wire.
      local relay = services.spawn(peers.python_interpreter() .. ' spec/peers/python_probe.py relay ' .. port)
      assert(copas_loop.step_until(function() return relay.output():find('port %d+') end, 10))
      local relay_port = relay.output():match('port (%d+)')
      local stop = open_in_chromium('http://127.0.0.1:' .. relay_port .. '/')
      local finished = copas_loop.step_until(function() return seen.extensions ~= nil end, 60)
      local printed = stop()
      server:close()
      -- Every connection of the killed browser ends within moments: the last total counts all.
      copas_loop.step_until(function() return false end, 0.5)
      local up, down
      for sent, received in relay.output():gmatch('total up (%d+) down (%d+)') do
        up, down = tonumber(sent), tonumber(received)
      end
      relay.stop()
      assert.is_true(finished, 'the page never reported; chromium said: ' .. printed)
      assert.are.same({}, errors)
      seen.read, seen.written = up, down
      return seen
    end
    local plain = exchange(nil)
    local compressed = exchange('deflate')
    print(('\n%d-byte message and its echo on the wire: %d bytes to the browser, %d back;'
      .. ' compressed: %d to the browser, %d back')
      :format(#document, plain.written, plain.read, compressed.written, compressed.read))
    assert.are.same({ true, 'extensions ', nil }, { plain.echoed, plain.extensions, plain.compression })
    assert.are.same({ true, 'extensions permessage-deflate', 'deflate' },
      { compressed.echoed, compressed.extensions, compressed.compression })
    assert.is_true(compressed.written * 5 < plain.written)
    assert.is_true(compressed.read * 5 < plain.read)
  end)
end)

