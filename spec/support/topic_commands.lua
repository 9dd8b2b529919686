--- The topic commands the topic specs' servers understand, in one place: `sub TOPIC`
-- (answers `subscribed TOPIC`), `unsub TOPIC` (answers `unsubscribed TOPIC`), `pub TOPIC
-- TEXT` (ws:publish: every subscriber but the sender) and `spub TOPIC TEXT`
-- (server:publish: every subscriber).

--- Runs `message` if it is a topic command on `ws` (of `server`); the command and topic,
-- or nil when it is not one.
return function(server, ws, message)
  local command, topic, text = message:match('^(%a+) (%S+) ?(.*)$')
  if command == 'sub' then
    assert(ws:subscribe(topic))
    ws:send('subscribed ' .. topic)
  elseif command == 'unsub' then
    ws:unsubscribe(topic)
    ws:send('unsubscribed ' .. topic)
  elseif command == 'pub' then
    ws:publish(topic, text)
  elseif command == 'spub' then
    server:publish(topic, text)
  else
    return nil
  end
  return command, topic
end
