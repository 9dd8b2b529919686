--- wss:// with the sync client against the tokio-tungstenite peer serving a self-signed
-- certificate that scripts/test.sh made with openssl.

local websocket = require'websocket'
local peers = require'spec.support.peers'

local function assert_echo_over(client)
  assert.is_true(client:send('over tls'))
  assert.are.equal('over tls', (client:receive()))
  assert.is_true((client:close()))
end

describe('sync client over TLS', function()
  it("connects without checking the certificate with verify = 'none'", function()
    local client = websocket.client.sync({ timeout = 10 })
    local ok, err = client:connect(peers.rust_tls('/echo'), nil,
      { mode = 'client', protocol = 'any', verify = 'none', options = { 'all' } })
    assert.is_true(ok, err)
    assert_echo_over(client)
  end)

  it('verifies the server against a cafile, by host name and by IP', function()
    for _, host in ipairs({ 'localhost', '127.0.0.1' }) do
      local client = websocket.client.sync({ timeout = 10 })
      local ok, err = client:connect(peers.rust_tls('/echo', host), 'echo',
        { mode = 'client', protocol = 'tlsv1_2', verify = 'peer', cafile = peers.ca_file() })
      assert.is_true(ok, err)
      assert_echo_over(client)
    end
  end)

  it("fails with the reason when the platform's roots do not trust the certificate", function()
    local client = websocket.client.sync({ timeout = 10 })
    local ok, err = client:connect(peers.rust_tls('/echo'))
    assert.is_nil(ok)
    assert.matches('TLS handshake failed: invalid peer certificate', err, 1, true)
    assert.are.equal('CLOSED', client.state)
  end)

  it('names a cafile it cannot read', function()
    local client = websocket.client.sync({ timeout = 10 })
    local ok, err = client:connect(peers.rust_tls('/echo'), nil,
      { verify = 'peer', cafile = '/nonexistent/ca.pem' })
    assert.is_nil(ok)
    assert.matches('/nonexistent/ca.pem', err, 1, true)
  end)
end)
