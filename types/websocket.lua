---@meta websocket
-- Type definitions of `require'websocket'` for lua-language-server (LuaLS) and other
-- checkers that read LuaLS annotations. Nothing here runs. docs/api.md is the reference.

---@alias websocket.Opcode
---| 0 # CONTINUATION
---| 1 # TEXT
---| 2 # BINARY
---| 8 # CLOSE
---| 9 # PING
---| 10 # PONG

---@alias websocket.State 'CLOSED'|'OPEN'|'CLOSING'

---luasec-shaped TLS parameters of a client (`connect`'s third argument).
---@class websocket.SslParams
---@field verify? string|string[] `'none'` turns certificate checks off
---@field cafile? string PEM file whose certificates replace the platform's roots
---@field certificate? string PEM client certificate chain
---@field key? string PEM key of the client certificate
---@field protocol? 'any'|'tlsv1_2'|'tlsv1_3'
---@field mode? string accepted and ignored, as other luasec keys

---permessage-deflate's parameters (RFC 7692).
---@class websocket.Deflate
---@field server_no_context_takeover? boolean
---@field client_no_context_takeover? boolean
---@field server_max_window_bits? integer 9 to 15
---@field client_max_window_bits? integer 9 to 15

---@class websocket.ClientOptions
---@field timeout? number seconds for connect, each receive, each send and close
---@field max_message_size? integer bytes the peer may send in one message (64 MiB)
---@field max_frame_size? integer bytes the peer may send in one frame (16 MiB)
---@field headers? table<string, string> extra request headers
---@field ping_interval? number seconds between keepalive pings (off by default)
---@field ping_timeout? number seconds a pong may take (default `ping_interval`)
---@field max_queue? integer messages read ahead (copas client, default 16)
---@field unix? string a unix socket to connect to (the URL still gives Host and resource)
---@field compression? 'deflate'|websocket.Deflate permessage-deflate to offer
---@field proxy? string|false `'http://[user:pass@]host:port'`; `false` ignores `http_proxy` and the like

---A client: `websocket.client.sync(opts)` or `websocket.client.copas(opts)`.
---@class websocket.Client
---@field state websocket.State
---@field compression 'deflate'|nil once a handshake agreed to permessage-deflate
local Client = {}

---Opens the connection and performs the opening handshake.
---@param url string `ws://host[:port][/path]` or `wss://…`
---@param protocol? string|string[] offered as Sec-WebSocket-Protocol
---@param ssl_params? websocket.SslParams
---@param headers? table<string, string> extra request headers (win over `opts.headers`)
---@return true|nil ok
---@return string|nil protocol_or_err the server's protocol (nil when none), or the error
---@return table<string, string>|nil headers the response headers, names lower-cased
function Client:connect(url, protocol, ssl_params, headers) end

---The next whole message; after the end of the connection `nil, nil, was_clean, code, reason`.
---@return string|nil message
---@return websocket.Opcode|nil opcode TEXT or BINARY
---@return boolean|nil was_clean
---@return integer|nil code
---@return string|nil reason
function Client:receive() end

---Sends one message (TEXT by default); `nil, was_clean, code, reason` when not possible.
---@param message string
---@param opcode? websocket.Opcode TEXT, BINARY, PING or PONG
---@return true|nil ok
---@return boolean|nil was_clean
---@return integer|nil code
---@return string|nil reason
function Client:send(message, opcode) end

---Sends a ping and waits for its pong (blocks in sync, yields in copas).
---@param payload? string at most 125 bytes; one of the connection's own when nil
---@return number|nil seconds the round trip
---@return string|nil err 'timeout', 'wrong state', or how the connection ended
function Client:ping(payload) end

---The close handshake; returns the peer's close frame.
---@param code? integer 1000 by default
---@param reason? string at most 123 bytes
---@return boolean was_clean
---@return integer code
---@return string reason
function Client:close(code, reason) end

---What `on_request` and handlers learn of a request.
---@class websocket.Request
---@field method string
---@field path string with the query
---@field headers table<string, string> names lower-cased, repeated ones joined by ', '
---@field protocols string[] offered, maybe empty
---@field address string the peer's (on a unix socket: the socket's path)
---@field port integer|nil the peer's (nil on a unix socket)
---@field family 'inet'|'inet6'|'unix'
---@field secure boolean over TLS
---@field [string] any fields `on_request` set

---A server-side connection: the client interface without `connect`.
---@class websocket.ServerConnection: websocket.Client
---@field request websocket.Request
---@field protocol string|nil the selected protocol
---@field dropped integer broadcasts and publishes missed under `max_buffered`
local ServerConnection = {}

---Subscribes to `topic` (until the connection ends); false once it has ended.
---@param topic string 1 to 1024 bytes
---@return boolean
function ServerConnection:subscribe(topic) end

---@param topic string
function ServerConnection:unsubscribe(topic) end

---To every subscriber of `topic` but this connection (in every process of a cluster).
---@param topic string
---@param message string
---@param opcode? websocket.Opcode
function ServerConnection:publish(topic, message, opcode) end

---The bytes sent to this connection that its socket has not taken yet.
---@return integer
function ServerConnection:buffered() end

---To every OPEN connection of the same protocol, this one included.
---@param message string
---@param opcode? websocket.Opcode
function ServerConnection:broadcast(message, opcode) end

---The peer's address, like luasocket's (on a unix socket: its path, nil, 'unix').
---@return string address
---@return integer|nil port
---@return 'inet'|'inet6'|'unix' family
function ServerConnection:getpeername() end

---luasec-shaped server TLS parameters.
---@class websocket.ServerSsl
---@field certificate string PEM certificate chain
---@field key string PEM key (not encrypted)
---@field cafile? string CA certificates that check client certificates
---@field verify? string|string[] `'none'`, `'peer'`, or `{'peer', 'fail_if_no_peer_cert'}`
---@field protocol? 'any'|'tlsv1_2'|'tlsv1_3'

---@alias websocket.Handler fun(ws: websocket.ServerConnection)

---@class websocket.ServerConfig
---@field port? integer 80 by default
---@field unix? string a unix socket path to listen on instead of `port` and `interface`
---@field interface? string `'*'` (every address) by default
---@field protocols? table<string, websocket.Handler>
---@field default? websocket.Handler when no offered protocol matches
---@field on_error? fun(message: string)
---@field on_request? fun(request: websocket.Request): integer|true|nil, table<string, string>|nil, string|nil
---@field ssl? websocket.ServerSsl
---@field handshake_timeout? number seconds (10)
---@field ping_interval? number
---@field ping_timeout? number
---@field max_queue? integer
---@field max_message_size? integer
---@field max_frame_size? integer
---@field reuse_port? boolean
---@field incoming_budget? integer bytes all connections of the Lua thread may hold beyond 64 KiB each (256 MiB)
---@field cluster? {redis: string, channel: string} broadcasts reach every process of the channel
---@field compression? 'deflate'|websocket.Deflate permessage-deflate offers to accept
---@field origins? (string|false)[] the `Origin`s admitted (others get 403); `false` admits requests without one
---@field max_buffered? integer bytes a member may have unsent before broadcasts and publishes skip it
---@field on_backpressure? 'drop'|'close' what a member over `max_buffered` gets ('drop' by default)

---@class websocket.Server
local Server = {}

---Stops listening and, unless `keep_clients`, closes every connection (1001), returning
---once their closing handshakes are done.
---@param keep_clients? boolean
function Server:close(keep_clients) end

---To every OPEN connection of `protocol`'s group (`false`: the default handler's), or of
---every group when nil.
---@param message string
---@param opcode? websocket.Opcode
---@param protocol? string|false
function Server:broadcast(message, opcode, protocol) end

---To every subscriber of `topic` (in every process of a cluster).
---@param topic string
---@param message string
---@param opcode? websocket.Opcode
function Server:publish(topic, message, opcode) end

---@class websocket.client
local client = {}

---A client whose calls block until done.
---@param opts? websocket.ClientOptions
---@return websocket.Client
function client.sync(opts) end

---The same as `client.sync`.
---@param opts? websocket.ClientOptions
---@return websocket.Client
function client.new(opts) end

---A client whose waiting calls yield to copas (and block outside coroutines).
---@param opts? websocket.ClientOptions
---@return websocket.Client
function client.copas(opts) end

---A client of the luv flavour (lua-websockets' ev API on libuv): callbacks, calls that
---never wait.
---@param opts? websocket.LuvClientOptions
---@return websocket.LuvClient
function client.luv(opts) end

---@class websocket.server.copas
local server_copas = {}

---Listens and serves from the copas loop.
---@param config websocket.ServerConfig
---@return websocket.Server
function server_copas.listen(config) end

---A connection of the luv flavour: callbacks instead of receive, calls that never wait.
---@class websocket.LuvConnection
---@field state 'CLOSED'|'CONNECTING'|'OPEN'|'CLOSING'
---@field compression 'deflate'|nil once a handshake agreed to permessage-deflate
local LuvConnection = {}

---Called with each whole TEXT or BINARY message.
---@param callback fun(ws: websocket.LuvConnection, message: string, opcode: websocket.Opcode)
function LuvConnection:on_message(callback) end

---Called once when the connection has ended, cleanly or not.
---@param callback fun(ws: websocket.LuvConnection, was_clean: boolean, code: integer, reason: string)
function LuvConnection:on_close(callback) end

---Called with a connect's failure, or an error a callback of this connection raised.
---@param callback fun(ws: websocket.LuvConnection, err: any)
function LuvConnection:on_error(callback) end

---Sends now, or queues behind a send that waits for the socket; `nil, err` when not OPEN.
---@param message string
---@param opcode? websocket.Opcode TEXT, BINARY, PING or PONG
---@return true|nil ok
---@return string|nil err
function LuvConnection:send(message, opcode) end

---Sends a ping; `callback` gets the round trip once the pong came (`seconds` nil on failure).
---@param payload? string|fun(ws: websocket.LuvConnection, seconds: number|nil, err: string|nil)
---@param callback? fun(ws: websocket.LuvConnection, seconds: number|nil, err: string|nil)
function LuvConnection:ping(payload, callback) end

---The bytes sent that the socket has not taken yet, with the sends queued behind them.
---@return integer
function LuvConnection:buffered() end

---Starts the close handshake; `on_close` tells its end (unclean after `timeout`, 3 s).
---@param code? integer 1000 by default
---@param reason? string
---@param timeout? number seconds
function LuvConnection:close(code, reason, timeout) end

---A client of the luv flavour.
---@class websocket.LuvClient: websocket.LuvConnection
local LuvClient = {}

---Called when the opening handshake is done.
---@param callback fun(ws: websocket.LuvClient, protocol: string|nil, headers: table<string, string>)
function LuvClient:on_open(callback) end

---Starts connecting and returns at once: `on_open` or `on_error` tells the outcome.
---@param url string
---@param protocol? string|string[]
---@param ssl_params? websocket.SslParams
---@param headers? table<string, string>
function LuvClient:connect(url, protocol, ssl_params, headers) end

---A server-side connection of the luv flavour.
---@class websocket.LuvServerConnection: websocket.LuvConnection
---@field request websocket.Request
---@field protocol string|nil the selected protocol
---@field dropped integer broadcasts and publishes missed under `max_buffered`
local LuvServerConnection = {}

---@param topic string
---@return boolean
function LuvServerConnection:subscribe(topic) end

---@param topic string
function LuvServerConnection:unsubscribe(topic) end

---@param topic string
---@param message string
---@param opcode? websocket.Opcode
function LuvServerConnection:publish(topic, message, opcode) end

---To every OPEN connection of the same protocol, this one included.
---@param message string
---@param opcode? websocket.Opcode
function LuvServerConnection:broadcast(message, opcode) end

---The peer's address, like luasocket's (on a unix socket: its path, nil, 'unix').
---@return string address
---@return integer|nil port
---@return 'inet'|'inet6'|'unix' family
function LuvServerConnection:getpeername() end

---@class websocket.LuvClientOptions: websocket.ClientOptions
---@field loop? table the luv module whose loop runs the callbacks (else vim.uv, vim.loop, require'luv')

---The copas server's config, with handlers that set callbacks and return.
---@class websocket.LuvServerConfig: websocket.ServerConfig
---@field loop? table the luv module whose loop serves (else vim.uv, vim.loop, require'luv')
---@field protocols? table<string, fun(ws: websocket.LuvServerConnection)>
---@field default? fun(ws: websocket.LuvServerConnection)

---@class websocket.server.luv
local server_luv = {}

---Listens and serves from the luv loop; returns at once.
---@param config websocket.LuvServerConfig
---@return websocket.Server
function server_luv.listen(config) end

---@class websocket.server
---@field copas websocket.server.copas
---@field luv websocket.server.luv

---@class websocket
---@field client websocket.client
---@field server websocket.server
local websocket = {
  CONTINUATION = 0,
  TEXT = 1,
  BINARY = 2,
  CLOSE = 8,
  PING = 9,
  PONG = 10,
}

return websocket
