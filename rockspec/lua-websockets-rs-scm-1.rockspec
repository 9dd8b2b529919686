rockspec_format = "3.0"
package = "lua-websockets-rs"
version = "scm-1"

-- `luarocks make` builds from this checkout; the URL only satisfies the rockspec format.
source = {
  url = "git+https://example.invalid/lua-websockets-rs.git",
}

description = {
  summary = "Drop-in replacement for lua-websockets with a native Rust core",
  detailed = [[
    The lua-websockets API (websocket.client.sync, websocket.client.copas,
    websocket.server.copas) on a native core built on tokio and tokio-tungstenite.
  ]],
  license = "MIT",
}

dependencies = {
  "lua >= 5.1, < 5.5",
}

build = {
  -- Needs cargo on PATH. The feature (lua51 … lua54, luajit) follows $(LUA).
  type = "command",
  build_command = "sh scripts/build-native.sh '$(LUA)'",
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
      ["websocket.client_nonblocking"] = "lua/websocket/client_nonblocking.lua",
      ["websocket.results"] = "lua/websocket/results.lua",
      ["websocket.server"] = "lua/websocket/server.lua",
      ["websocket.server_copas"] = "lua/websocket/server_copas.lua",
      ["websocket.wait"] = "lua/websocket/wait.lua",
      ["websocket.pause"] = "lua/websocket/pause.lua",
    },
  },
}
