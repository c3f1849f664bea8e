#!/usr/bin/env node
// The reference y-websocket server (@y/websocket-server's setupWSConnection, in memory), on a
// given host and port. Used to prove the peer harness and as the baseline in benchmarks.
//
//   node reference-server.mjs [--host 127.0.0.1] [--port 0] [--exit-on-stdin-close]
//
// Prints one JSON line {"event": "ready", "host": ..., "port": <actual port>, "url": ...} on
// stdout once listening (port 0 picks a free port). The room is the URL path: a client with
// serverUrl ws://HOST:PORT and room `x` connects to /x. Stops on SIGINT/SIGTERM, and with
// --exit-on-stdin-close also when its parent closes stdin (so it never outlives a test run).

import http from 'node:http'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { WebSocketServer } from 'ws'
import { setupWSConnection, docs } from '@y/websocket-server/utils'

console.log = console.info = (...args) => console.error(...args)

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'exit-on-stdin-close': { type: 'boolean', default: false }
  }
})

const require = createRequire(import.meta.url)
const version = require('@y/websocket-server/package.json').version

const wss = new WebSocketServer({ noServer: true })
wss.on('connection', setupWSConnection)

const server = http.createServer((_request, response) => {
  response.writeHead(200, { 'Content-Type': 'text/plain' })
  response.end('okay')
})
server.on('upgrade', (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request))
})

const stop = () => {
  for (const client of wss.clients) client.terminate()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
if (values['exit-on-stdin-close']) {
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.resume()
}

server.listen(Number(values.port), values.host, () => {
  const { address, port } = server.address()
  const host = address.includes(':') ? `[${address}]` : address
  process.stdout.write(JSON.stringify({
    event: 'ready',
    host: address,
    port,
    url: `ws://${host}:${port}`,
    server: `@y/websocket-server ${version}`,
    rooms: docs.size
  }) + '\n')
})
