--- A connection of the callback flavours (lua-websockets' ev API): the program sets
-- `on_message`, `on_close` and `on_error` callbacks and calls `send` and `close`, which
-- never wait. The driver (websocket.callback_driver) calls `pump` when the core raised the
-- connection's handle; pump takes what arrived and calls the callbacks.
--
-- A send that the socket cannot take at once stays with the core; later sends queue here
-- behind it, in order, until it is done. A Lua error in a callback goes to the
-- connection's `on_error` (else `report`: the server's on_error, or stderr) and closes
-- the connection with 1011; nothing else is touched.

local native = require'websocket_native'
local client_object = require'websocket.client_object'
local results = require'websocket.results'

local io_stderr = io.stderr
local pcall = pcall
local setmetatable = setmetatable
local tostring = tostring
local type = type

local PENDING = native.PENDING
local check_send = native.check_send
local raw = native.raw_functions()
local native_receive = raw.receive
local native_send = raw.send
local raise_bad_argument = results.raise_bad_argument

-- The connection's state sits under a key no program can name, like the handle.
local STATE = {}

-- How long close waits for the peer's close frame when not told.
local DEFAULT_CLOSE_WAIT = 3
-- How long a ping waits for its pong when the connection has no timeout.
local DEFAULT_PING_WAIT = 10
-- Messages one pump delivers before letting the loop's other work run.
local MESSAGES_PER_PUMP = 64

local function report_to_stderr(message)
  io_stderr:write('websocket: ', tostring(message), '\n')
end

local Connection = {}
Connection.__index = Connection

local close

-- Calls the program's `callback(...)`, if set; an error it raises fails the connection.
local function call(connection, callback, ...)
  if callback == nil then
    return
  end
  local ok, problem = pcall(callback, ...)
  if not ok then
    connection:fail(problem)
  end
end

--- Tells on_error (else report) about `problem`.
function Connection:tell_error(problem)
  local on_error = self.on_error
  if on_error then
    local ok, raised = pcall(on_error, self.ws, problem)
    if not ok then
      self.report(('on_error raised "%s" for: %s'):format(tostring(raised), tostring(problem)))
    end
  else
    self.report(problem)
  end
end

--- A callback raised `problem`: tells on_error (else report), then closes with 1011.
function Connection:fail(problem)
  self:tell_error(problem)
  if not self.finished and not self.closing and self.handle:state() == 'OPEN' then
    close(self, 1011, 'internal error')
  end
end

local function cancel_timer(self)
  if self.cancel_timer then
    self.cancel_timer()
    self.cancel_timer = nil
  end
end

--- The connection ended: no more pumps; `on_close` hears how.
function Connection:finish(was_clean, code, reason)
  if self.finished then
    return
  end
  self.finished = true
  self.closing = false
  self.sending = false
  self.queue = {}
  self.queue_head = 1
  cancel_timer(self)
  self.driver.unregister(self.id)
  if self.ping_callback ~= nil then
    self:check_ping()
  end
  if self.on_finish then
    self.on_finish(self)
  end
  call(self, self.on_close, self.ws, was_clean, code, reason or '')
end

--- Starts connecting (a client) with `timeout` (seconds, or nil for none): the outcome
-- arrives as on_open or on_error.
function Connection:connect(url, protocol, ssl_params, headers, timeout)
  local ok, protocol_or_err, response_headers =
    self.handle:connect(url, protocol, ssl_params, headers)
  raise_bad_argument(ok, protocol_or_err, 4)
  if ok ~= PENDING then
    self.driver.defer(function()
      self:connected(ok, protocol_or_err, response_headers)
    end)
    return
  end
  self.connecting = true
  self.finished = false
  self.driver.register(self.id, self)
  if timeout then
    self.cancel_timer = self.driver.after(timeout, function()
      self.cancel_timer = nil
      if self.connecting then
        self.handle:cancel_connect()
        self.connecting = false
        self:connected(nil, 'timeout')
      end
    end)
  end
end

--- A connect's outcome: on_open, or on_error.
function Connection:connected(ok, protocol_or_err, headers)
  if ok then
    self.finished = false
    self.closing = false
    self.driver.register(self.id, self)
    call(self, self.on_open, self.ws, protocol_or_err, headers)
    -- What arrived with the handshake's answer raised nothing new.
    self.driver.pump_soon(self)
  else
    self.finished = true
    self.driver.unregister(self.id)
    self:tell_error(protocol_or_err)
  end
end

function Connection:resume_connect()
  local ok, protocol_or_err, headers = self.handle:resume_connect()
  if ok == PENDING then
    return
  end
  self.connecting = false
  cancel_timer(self)
  self:connected(ok, protocol_or_err, headers)
end

-- A close while connecting gives up the connect: on_close says so, as lua-websockets' did.
function Connection:cancel_connect()
  self.handle:cancel_connect()
  self.connecting = false
  self.finished = true
  cancel_timer(self)
  self.driver.unregister(self.id)
  self.driver.defer(function()
    call(self, self.on_close, self.ws, false, 1006, '')
  end)
end

-- Sends the queued messages, in order, until one has to wait.
local function send_queued(self)
  local queue = self.queue
  while self.queue_head <= #queue do
    local index = self.queue_head
    local message, opcode = queue[index][1], queue[index][2]
    queue[index] = nil
    self.queue_head = index + 1
    local ok = self.handle:send(message, opcode)
    if ok == PENDING then
      self.sending = true
      return
    elseif ok ~= true then
      -- The connection broke: receive tells how.
      break
    end
  end
  self.queue = {}
  self.queue_head = 1
end

local function resume_send(self)
  local ok = self.handle:resume_send()
  if ok == PENDING then
    return
  end
  self.sending = false
  if ok == true then
    send_queued(self)
  else
    self.queue = {}
    self.queue_head = 1
  end
end

-- Delivers what arrived, at most MESSAGES_PER_PUMP messages; true when there may be more.
local function deliver(self)
  local id, handle, ws = self.id, self.handle, self.ws
  for _ = 1, MESSAGES_PER_PUMP do
    local message, opcode, was_clean, code, reason = native_receive(id, false)
    if message == false then
      message, opcode, was_clean, code, reason = handle:receive(false)
    end
    if message == PENDING then
      return false
    elseif message then
      call(self, self.on_message, ws, message, opcode)
      if self.finished or self.closing or self.connecting then
        return false
      end
    else
      self:finish(was_clean, code, reason)
      return false
    end
  end
  return true
end

--- Takes what the core has for this connection and calls the callbacks.
function Connection:pump()
  if self.finished then
    return
  end
  if self.connecting then
    self:resume_connect()
    if self.connecting or self.finished then
      return
    end
  end
  if self.sending then
    resume_send(self)
  end
  if self.ping_callback ~= nil then
    self:check_ping()
  end
  if self.closing then
    local was_clean, code, reason = self.handle:resume_close()
    if was_clean ~= PENDING then
      self:finish(was_clean, code, reason)
    end
    return
  end
  if deliver(self) then
    -- A peer that floods waits its turn behind the loop's other work.
    self.driver.pump_soon(self)
  end
end

-- Ends the ping under way with `seconds, problem` for its callback.
local function ping_done(self, seconds, problem)
  local callback = self.ping_callback
  self.ping_callback = nil
  if self.cancel_ping then
    self.cancel_ping()
    self.cancel_ping = nil
  end
  if callback then
    call(self, callback, self.ws, seconds, problem)
  end
end

--- The ping under way: done once its pong came or the connection ended.
function Connection:check_ping()
  local seconds, problem = self.handle:round_trip()
  if seconds ~= PENDING then
    ping_done(self, seconds, problem)
  end
end

--- Starts the closing handshake; the end arrives as on_close. (A method of the ws.)
close = function(self, code, reason, timeout)
  if self.connecting then
    self:cancel_connect()
    return
  end
  if self.finished or self.closing or self.handle:state() ~= 'OPEN' then
    return
  end
  local was_clean, close_code, close_reason = self.handle:close(code, reason)
  if close_reason == nil then
    raise_bad_argument(was_clean, close_code, 4)
  end
  self.queue = {}
  self.queue_head = 1
  if was_clean == PENDING then
    self.closing = true
    self.cancel_timer = self.driver.after(timeout or DEFAULT_CLOSE_WAIT, function()
      self.cancel_timer = nil
      self:finish(self.handle:abort())
    end)
  else
    self.driver.defer(function()
      self:finish(was_clean, close_code, close_reason)
    end)
  end
end

local methods = {}

function methods:on_message(callback)
  self[STATE].on_message = callback
end

function methods:on_close(callback)
  self[STATE].on_close = callback
end

function methods:on_error(callback)
  self[STATE].on_error = callback
end

--- Sends `message` (TEXT unless `opcode` says otherwise) or queues it behind a send that
-- waits for the socket: `true`, or `nil, err` when the connection is not OPEN.
function methods:send(message, opcode)
  local connection = self[STATE]
  if connection.sending then
    local ok, problem = check_send(message, opcode)
    raise_bad_argument(ok, problem)
    if connection.closing or connection.handle:state() ~= 'OPEN' then
      return nil, 'wrong state'
    end
    local queue = connection.queue
    queue[#queue + 1] = { message, opcode }
    return true
  end
  local ok, was_clean, _, reason = native_send(connection.id, message, opcode)
  if ok == false then
    ok, was_clean, _, reason = connection.handle:send(message, opcode)
  end
  if ok == true then
    return true
  elseif ok == PENDING then
    connection.sending = true
    return true
  end
  raise_bad_argument(ok, was_clean)
  return nil, reason or 'wrong state'
end

--- `ws:ping([payload], [callback])`: sends a ping; `callback(ws, seconds)` gets the
-- round trip once the pong came, or `callback(ws, nil, err)` ('timeout' after the
-- connection's timeout, else 10 s; how it ended). A new ping replaces one under way.
function methods:ping(payload, callback)
  if type(payload) == 'function' then
    payload, callback = nil, payload
  end
  local connection = self[STATE]
  if connection.sending or connection.closing then
    connection.driver.defer(function()
      call(connection, callback, self, nil, connection.closing and 'wrong state' or 'busy sending')
    end)
    return
  end
  local ok, problem, _, reason = connection.handle:ping(payload)
  raise_bad_argument(ok, problem)
  if ok ~= true and ok ~= PENDING then
    connection.driver.defer(function()
      call(connection, callback, self, nil, reason or 'wrong state')
    end)
    return
  end
  if ok == PENDING then
    connection.sending = true
  end
  if connection.cancel_ping then
    connection.cancel_ping()
  end
  connection.ping_callback = callback or false
  connection.cancel_ping = connection.driver.after(connection.timeout or DEFAULT_PING_WAIT, function()
    connection.cancel_ping = nil
    ping_done(connection, nil, 'timeout')
  end)
end

--- The bytes sent that the socket has not taken yet, with the sends queued behind a
-- waiting one.
function methods:buffered()
  local connection = self[STATE]
  local queued = 0
  local queue = connection.queue
  for index = connection.queue_head, #queue do
    queued = queued + #queue[index][1]
  end
  return connection.handle:buffered() + queued
end

--- `ws:close([code], [reason], [timeout])`: starts the closing handshake (code 1000 and an
-- empty reason unless given); on_close tells its end, clean or not once `timeout` seconds
-- (default 3) passed without the peer's answer.
function methods:close(code, reason, timeout)
  close(self[STATE], code, reason, timeout)
end

local callback_connection = {
  methods = methods,
  STATE = STATE,
  report_to_stderr = report_to_stderr,
}

-- The metatable of connections with `extra_methods` (found before `methods`), made once.
local metatables = setmetatable({}, { __mode = 'k' })
local NO_EXTRAS = {}
local NO_FIELDS = {}

local function metatable_for(extra_methods, lazy_fields)
  local metatable = metatables[extra_methods]
  if not metatable then
    local base = client_object.metatable_with_fields(lazy_fields, extra_methods, methods)
    local base_index = base.__index
    metatable = {
      __index = function(ws, key)
        -- While connecting, the handle still says CLOSED.
        if key == 'state' and ws[STATE].connecting then
          return 'CONNECTING'
        end
        return base_index(ws, key)
      end,
    }
    metatables[extra_methods] = metatable
  end
  return metatable
end

--- A ws over native `handle`, pumped by `driver`. `options`: `extra_methods` (a table,
-- the same one for every ws of a kind), `lazy_fields` (name -> function(ws)), `fields`
-- (the ws table to start from), `report` (where errors go when the ws has no on_error),
-- `on_finish` (called with the connection when it ends), `open` (a server's connection,
-- open already). Returns the ws and its connection
-- state.
function callback_connection.new(handle, driver, options)
  local ws = options.fields or {}
  local connection = setmetatable({
    ws = ws,
    handle = handle,
    id = handle:id(),
    driver = driver,
    report = options.report or report_to_stderr,
    on_finish = options.on_finish,
    queue = {},
    queue_head = 1,
    sending = false,
    closing = false,
    connecting = false,
    -- A client is not pumped until it connects.
    finished = not options.open,
  }, Connection)
  ws[STATE] = connection
  client_object.new(handle, metatable_for(options.extra_methods or NO_EXTRAS, options.lazy_fields or NO_FIELDS), ws)
  return ws, connection
end

return callback_connection
