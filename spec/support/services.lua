--- Real components the cluster specs start on free ports of 127.0.0.1, each a process of
-- its own that the spec stops: redis-server, nginx, and server processes
-- (spec/support/cluster_server.lua).

local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local process = require'spec.support.process'

local services = {}

--- The path of `program`, or nil when it is not installed.
function services.find(program)
  local found = io.popen('command -v ' .. program .. ' 2>/dev/null || ls /usr/sbin/' .. program
    .. ' 2>/dev/null'):read('*l')
  return found ~= '' and found or nil
end

local function read_file(path)
  local file = io.open(path)
  if not file then
    return ''
  end
  local text = file:read('*a')
  file:close()
  return text
end

--- Runs `command` in the background; returns an object with `pid`, `log` (its output
-- file), `output()` and `stop([signal])`.
function services.spawn(command)
  local log = os.tmpname()
  local pid_file = os.tmpname()
  os.execute(('%s >%s 2>&1 & echo $! >%s'):format(command, log, pid_file))
  local pid = read_file(pid_file):match('%d+')
  os.remove(pid_file)
  local service = { pid = pid, log = log }
  function service.output()
    return read_file(log)
  end
  function service.stop(signal)
    os.execute(('kill -%s %s 2>/dev/null'):format(signal or 'TERM', pid))
    -- Until it is gone: a port it held must be free for the next test.
    copas_loop.step_until(function() return not services.alive(pid) end, 5)
  end
  return service
end

--- Whether process `pid` runs (a zombie, which nobody reaped yet, does not).
function services.alive(pid)
  local state = read_file('/proc/' .. pid .. '/stat'):match('%) (%a)')
  return state ~= nil and state ~= 'Z'
end

--- Whether something accepts TCP connections on 127.0.0.1:port.
function services.port_open(port)
  local tcp = require'socket'.tcp()
  tcp:settimeout(0.2)
  local ok = tcp:connect('127.0.0.1', port)
  tcp:close()
  return ok ~= nil
end

--- For a describe that starts services: `keep(service)` (returns it) and `stop_all()` (for
-- its after_each: kills what was kept, the last first, also after a test failed half-way).
function services.keeper()
  local started = {}
  local function keep(service)
    started[#started + 1] = service
    return service
  end
  local function stop_all()
    for index = #started, 1, -1 do
      started[index].stop('KILL')
    end
    started = {}
  end
  return keep, stop_all
end

--- redis-server on `port` (a free one by default), without persistence.
function services.redis(port)
  port = port or process.free_port()
  local redis = services.spawn(('%s --port %d --bind 127.0.0.1 --save "" --appendonly no')
    :format(services.find('redis-server'), port))
  redis.port = port
  redis.url = 'redis://127.0.0.1:' .. port
  assert(copas_loop.step_until(function() return services.port_open(port) end, 10),
    'redis-server did not start: ' .. redis.output())
  return redis
end

--- A cluster server process (spec/support/cluster_server.lua) on `port`.
function services.server(port, redis_url, channel, options)
  options = options or {}
  local server = services.spawn(('%s spec/support/cluster_server.lua %d %s %s %d %s'):format(
    peers.lua_interpreter(), port, redis_url or 'none', channel or 'test',
    options.reuse_port and 1 or 0, tostring(options.ping_interval or 0)))
  server.port = port
  copas_loop.step_until(function() return server.output():find('listening', 1, true) ~= nil end, 10)
  return server
end

--- tinyproxy on a free port of 127.0.0.1, in the foreground, with the extra configuration
-- `lines` (e.g. `BasicAuth user secret`, `ConnectPort 443`). Its output logs every
-- CONNECT it serves (`CONNECT ... host:port`).
function services.tinyproxy(lines)
  local port = process.free_port()
  local config = os.tmpname()
  local file = assert(io.open(config, 'w'))
  file:write(table.concat({
    'Port ' .. port, 'Listen 127.0.0.1', 'Timeout 30', 'MaxClients 100', 'LogLevel Info',
    table.concat(lines or {}, '\n'),
  }, '\n'), '\n')
  file:close()
  local proxy = services.spawn(services.find('tinyproxy') .. ' -d -c ' .. config)
  proxy.port = port
  proxy.url = 'http://127.0.0.1:' .. port
  local stop = proxy.stop
  function proxy.stop()
    stop()
    os.remove(config)
    os.remove(proxy.log)
  end
  assert(copas_loop.step_until(function() return services.port_open(port) end, 10),
    'tinyproxy did not start: ' .. proxy.output())
  return proxy
end

--- nginx on a free port of 127.0.0.1 in front of `upstreams` (name -> list of `server`
-- addresses: `127.0.0.1:port` or `unix:/path`), each at `/name/`, with WebSocket upgrades
-- passed on and `read_timeout` as proxy_read_timeout (60s by default). One process
-- (`master_process off`): a stopped master would leave its workers running.
function services.nginx(upstreams, read_timeout)
  local prefix = os.tmpname()
  os.remove(prefix)
  os.execute('mkdir -p ' .. prefix .. '/logs')
  local port = process.free_port()
  local blocks, locations = {}, {}
  for name, addresses in pairs(upstreams) do
    local lines = { '  upstream ' .. name .. ' {' }
    for _, address in ipairs(addresses) do
      lines[#lines + 1] = '    server ' .. address .. ';'
    end
    lines[#lines + 1] = '  }'
    blocks[#blocks + 1] = table.concat(lines, '\n')
    locations[#locations + 1] = table.concat({
      '    location /' .. name .. '/ {', '      proxy_pass http://' .. name .. '/;',
      '      proxy_http_version 1.1;', '      proxy_set_header Upgrade $http_upgrade;',
      '      proxy_set_header Connection "upgrade";',
      '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
      '      proxy_read_timeout ' .. (read_timeout or '60s') .. ';', '    }',
    }, '\n')
  end
  local conf = table.concat({
    'daemon off;', 'master_process off;', 'pid ' .. prefix .. '/nginx.pid;',
    'error_log ' .. prefix .. '/logs/error.log;',
    'events { worker_connections 1024; }',
    'http {', '  access_log off;',
    '  client_body_temp_path ' .. prefix .. '/body;', '  proxy_temp_path ' .. prefix .. '/proxy;',
    '  fastcgi_temp_path ' .. prefix .. '/fastcgi;', '  uwsgi_temp_path ' .. prefix .. '/uwsgi;',
    '  scgi_temp_path ' .. prefix .. '/scgi;',
    table.concat(blocks, '\n'),
    '  server {', '    listen 127.0.0.1:' .. port .. ';', table.concat(locations, '\n'), '  }', '}',
  }, '\n')
  local file = assert(io.open(prefix .. '/nginx.conf', 'w'))
  file:write(conf)
  file:close()
  local proxy = services.spawn(('%s -p %s -c %s/nginx.conf'):format(services.find('nginx'), prefix, prefix))
  proxy.port = port
  local stop = proxy.stop
  function proxy.stop()
    stop()
    os.execute('rm -rf ' .. prefix)
  end
  assert(copas_loop.step_until(function() return services.port_open(port) end, 10),
    'nginx did not start: ' .. proxy.output())
  return proxy
end

--- How many lines of `service`'s output contain `text`.
function services.count_lines(service, text)
  local count = 0
  for line in service.output():gmatch('[^\n]+') do
    if line:find(text, 1, true) then
      count = count + 1
    end
  end
  return count
end

return services
