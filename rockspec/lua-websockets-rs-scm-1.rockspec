rockspec_format = "3.0"
package = "lua-websockets-rs"
version = "scm-1"

-- No public repository or release yet: the rock is built from a clone with
-- `luarocks make rockspec/lua-websockets-rs-scm-1.rockspec`, and "." is that clone.
source = {
  url = ".",
}

description = {
  summary = "Drop-in replacement for lua-websockets with a native Rust core",
  detailed = [[
    The lua-websockets API (websocket.client.sync, websocket.client.copas,
    websocket.server.copas) on a native core built on tokio and tokio-tungstenite,
    plus a server for production: wss://, a request hook for auth and plain HTTP,
    keepalive, read-ahead with backpressure. Type definitions for lua-language-server
    are in the rock's types/ directory.
  ]],
  license = "MIT",
  maintainer = "the lua-websockets-rs developers (see the git history of the clone)",
  labels = { "websocket", "copas", "networking", "server", "client", "tls" },
}

-- `luarocks test` runs every test on the Lua that luarocks targets (scripts/test.sh).
test = {
  type = "command",
  script = "spec/luarocks_test.lua",
}

dependencies = {
  "lua >= 5.1, < 5.5",
}

build = {
  -- Needs cargo on PATH. The feature (lua51 … lua54, luajit) follows $(LUA).
  type = "command",
  build_command = "sh scripts/build-native.sh '$(LUA)'",
  -- Type definitions for lua-language-server (point its workspace.library at them).
  copy_directories = { "types", "docs" },
  install = {
    lib = {
      websocket_native = "target/rock/websocket_native.so",
    },
    lua = {
      ["websocket"] = "lua/websocket.lua",
      ["websocket.client"] = "lua/websocket/client.lua",
      ["websocket.client_sync"] = "lua/websocket/client_sync.lua",
      ["websocket.client_copas"] = "lua/websocket/client_copas.lua",
      ["websocket.client_object"] = "lua/websocket/client_object.lua",
      ["websocket.copas_connection"] = "lua/websocket/copas_connection.lua",
      ["websocket.results"] = "lua/websocket/results.lua",
      ["websocket.server"] = "lua/websocket/server.lua",
      ["websocket.server_copas"] = "lua/websocket/server_copas.lua",
      ["websocket.server_common"] = "lua/websocket/server_common.lua",
      ["websocket.wait"] = "lua/websocket/wait.lua",
      ["websocket.pause"] = "lua/websocket/pause.lua",
      ["websocket.client_luv"] = "lua/websocket/client_luv.lua",
      ["websocket.server_luv"] = "lua/websocket/server_luv.lua",
      ["websocket.luv_loop"] = "lua/websocket/luv_loop.lua",
      ["websocket.callback_driver"] = "lua/websocket/callback_driver.lua",
      ["websocket.callback_connection"] = "lua/websocket/callback_connection.lua",
      ["websocket.callback_client"] = "lua/websocket/callback_client.lua",
      ["websocket.callback_server"] = "lua/websocket/callback_server.lua",
    },
  },
}
