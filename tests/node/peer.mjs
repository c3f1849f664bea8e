#!/usr/bin/env node
// One stock y-websocket peer (a Y.Doc + WebsocketProvider over the `ws` package), driven by the
// Python tests over stdin/stdout with newline-delimited JSON. See tests/node_peer.py.
//
// Request:  {"id": N, "cmd": "<name>", ...args}
// Reply:    {"id": N, "ok": true, ...result}  or  {"id": N, "ok": false, "error": "..."}
// Event:    {"event": "<name>", ...}          (unsolicited: status, synced, connection-close, ...)
//
// stdout carries nothing but these JSON lines; diagnostics go to stderr. Timeouts in arguments
// are in seconds (default 10). Text indexes and lengths are Yjs (JavaScript) positions: UTF-16
// code units. `name` of a text defaults to "content" (the note body); maps and XML need a name.
//
// Commands (args -> result):
//   ping                                   -> {versions, clientId}
//   connect {url, room, clientId?, params?, protocols?, maxBackoffTime?, resyncInterval?,
//            timeout?, wait?=true}         -> status; waits until synced (wait:false: at once)
//   disconnect                             -> status (provider.disconnect(); edits go on offline)
//   reconnect {timeout?, wait?=true}       -> status (provider.connect(); waits until synced)
//   status                                 -> {connected, connecting, synced, shouldConnect,
//                                              clientId, lastClose: {code, reason, local}|null}
//   waitSynced {timeout?} / waitStatus {connected, timeout?} -> status
//   insertText {name?, index, text, attributes?} / deleteText {name?, index, length} -> {text}
//                                            (insertText index 'end': after what the peer has)
//   getText {name?} -> {text};  waitText {name?, text, timeout?} -> {text}
//   setMap {name, key, value} / deleteMap {name, key} / getMap {name} -> {value: map.toJSON()}
//   waitMap {name, value, timeout?}        -> {value}   (deep equality, key order ignored)
//   xmlInsert {name, index?=end, nodeName, text?, attributes?} / getXml {name} -> {xml}
//   waitXml {name, xml, timeout?}          -> {xml}     (fragment.toString())
//   stateVector -> {sv}; encodeState {sv?} -> {update}; applyUpdate {update} -> {}  (base64, v1)
//   toJSON -> {value: doc.toJSON()}
//   setAwareness {state} -> {clientId};  getAwareness -> {states: {clientId: state}, clientId}
//   waitAwareness {present?: [ids], absent?: [ids], timeout?} -> {states}
//   close                                  -> {} then exit 0 (also on stdin EOF)
// Events: ready {versions, pid}, status {status}, synced {synced}, connection-close {code,
//   reason, local}, connection-error {message}, closed {code, reason} (4400-4499: no retry),
//   error {error} (an uncaught exception; the peer keeps running).

import { createInterface } from 'node:readline'
import { createRequire } from 'node:module'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as awarenessProtocol from 'y-protocols/awareness'
import WebSocket from 'ws'

// Libraries must never write to stdout: it is the reply channel.
console.log = console.info = console.debug = (...args) => console.error(...args)

const require = createRequire(import.meta.url)
const VERSIONS = {
  node: process.versions.node,
  yjs: require('yjs/package.json').version,
  'y-websocket': require('y-websocket/package.json').version,
  'y-protocols': require('y-protocols/package.json').version,
  ws: require('ws/package.json').version
}
const DEFAULT_TIMEOUT = 10 // seconds
const POLL_MS = 10

let doc = new Y.Doc()
/** @type {awarenessProtocol.Awareness | null} */
let awareness = null
/** @type {WebsocketProvider | null} */
let provider = null
/** @type {{code: number | null, reason: string, local: boolean} | null} */
let lastClose = null
let closing = false

const write = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const emit = (event, data = {}) => write({ event, ...data })

class CommandError extends Error {}

const fail = (message) => { throw new CommandError(message) }

const b64 = (u8) => Buffer.from(u8).toString('base64')

const need = (args, key) => {
  if (args[key] === undefined || args[key] === null) fail(`missing argument '${key}'`)
  return args[key]
}

const requireProvider = () => provider ?? fail('not connected: send connect first')

// The Awareness captures doc.clientID when it is created, so it is created lazily: a clientId
// given to connect can still be applied as long as nothing has used the doc or the awareness.
const getAwarenessInstance = () => {
  if (awareness === null) awareness = new awarenessProtocol.Awareness(doc)
  return awareness
}

const statesObject = () => {
  const out = {}
  for (const [clientId, state] of getAwarenessInstance().getStates()) out[clientId] = state
  return out
}

const statusObject = () => ({
  connected: provider !== null && provider.wsconnected,
  connecting: provider !== null && provider.wsconnecting,
  synced: provider !== null && provider.synced,
  shouldConnect: provider !== null && provider.shouldConnect,
  clientId: doc.clientID,
  lastClose
})

const describeStatus = () => JSON.stringify(statusObject())

/**
 * Resolve once check() returns a non-undefined value; reject with describe() after timeout s.
 * Polling keeps this independent of which event (doc update, awareness, status) made it true.
 */
const waitFor = (check, timeout, describe) => new Promise((resolve, reject) => {
  const deadline = Date.now() + 1000 * (timeout ?? DEFAULT_TIMEOUT)
  const tick = () => {
    let value
    try {
      value = check()
    } catch (err) {
      reject(err)
      return
    }
    if (value !== undefined) {
      resolve(value)
    } else if (Date.now() >= deadline) {
      reject(new CommandError(`timed out after ${timeout ?? DEFAULT_TIMEOUT}s: ${describe()}`))
    } else {
      setTimeout(tick, POLL_MS)
    }
  }
  tick()
})

const waitSynced = (timeout) => waitFor(
  () => (provider !== null && provider.synced ? true : undefined),
  timeout,
  () => `not synced; status ${describeStatus()}`
)

const jsonEqual = (a, b) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b))
const canonical = (value) => {
  if (Array.isArray(value)) return value.map(canonical)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]))
  }
  return value
}

const commands = {
  ping: () => ({ versions: VERSIONS, clientId: doc.clientID }),

  async connect (args) {
    if (provider !== null) fail('already connected: use reconnect, or a new peer')
    const url = need(args, 'url')
    const room = need(args, 'room')
    if (args.clientId !== undefined && args.clientId !== null) {
      const clientId = Number(args.clientId)
      if (!Number.isInteger(clientId) || clientId < 0 || clientId > 0xffffffff) {
        fail(`clientId must be an unsigned 32-bit integer, got ${args.clientId}`)
      }
      if (clientId !== doc.clientID) {
        if (doc.store.clients.size > 0 || awareness !== null) {
          fail('clientId must be set before any edit or awareness use')
        }
        doc.clientID = clientId
      }
    }
    provider = new WebsocketProvider(url, room, doc, {
      WebSocketPolyfill: WebSocket,
      awareness: getAwarenessInstance(),
      // One peer per process: cross-tab BroadcastChannel sync would only blur what the server did.
      disableBc: true,
      params: args.params ?? {},
      protocols: args.protocols ?? [],
      ...(args.maxBackoffTime !== undefined ? { maxBackoffTime: args.maxBackoffTime } : {}),
      ...(args.resyncInterval !== undefined ? { resyncInterval: args.resyncInterval } : {})
    })
    provider.on('status', ({ status }) => emit('status', { status }))
    provider.on('sync', (synced) => emit('synced', { synced }))
    provider.on('connection-close', (event) => {
      lastClose = event === null
        ? { code: null, reason: '', local: true }
        : { code: event.code ?? null, reason: String(event.reason ?? ''), local: false }
      emit('connection-close', lastClose)
    })
    provider.on('connection-error', (event) => {
      emit('connection-error', { message: String(event?.message ?? event?.error ?? event?.type ?? event) })
    })
    provider.on('closed', ({ code, reason }) => emit('closed', { code, reason }))
    if (args.wait === false) return statusObject()
    await waitSynced(args.timeout)
    return statusObject()
  },

  disconnect () {
    requireProvider().disconnect()
    return statusObject()
  },

  async reconnect (args) {
    requireProvider().connect()
    if (args.wait === false) return statusObject()
    await waitSynced(args.timeout)
    return statusObject()
  },

  status: () => statusObject(),

  waitSynced: async (args) => { await waitSynced(args.timeout); return statusObject() },

  waitStatus: async (args) => {
    const want = need(args, 'connected')
    await waitFor(
      () => (provider !== null && provider.wsconnected === want ? true : undefined),
      args.timeout,
      () => `connected != ${want}; status ${describeStatus()}`
    )
    return statusObject()
  },

  insertText (args) {
    const text = doc.getText(args.name ?? 'content')
    const index = need(args, 'index')
    text.insert(index === 'end' ? text.length : index, need(args, 'text'), args.attributes ?? undefined)
    return { text: text.toString() }
  },

  deleteText (args) {
    const text = doc.getText(args.name ?? 'content')
    text.delete(need(args, 'index'), need(args, 'length'))
    return { text: text.toString() }
  },

  getText: (args) => ({ text: doc.getText(args.name ?? 'content').toString() }),

  waitText: async (args) => {
    const text = doc.getText(args.name ?? 'content')
    const want = need(args, 'text')
    await waitFor(
      () => (text.toString() === want ? true : undefined),
      args.timeout,
      () => `text ${JSON.stringify(args.name ?? 'content')} is ${JSON.stringify(text.toString())}, want ${JSON.stringify(want)}`
    )
    return { text: text.toString() }
  },

  setMap (args) {
    const map = doc.getMap(need(args, 'name'))
    if (!('value' in args)) fail("missing argument 'value'")
    map.set(need(args, 'key'), args.value)
    return { value: map.toJSON() }
  },

  deleteMap (args) {
    const map = doc.getMap(need(args, 'name'))
    map.delete(need(args, 'key'))
    return { value: map.toJSON() }
  },

  getMap: (args) => ({ value: doc.getMap(need(args, 'name')).toJSON() }),

  waitMap: async (args) => {
    const map = doc.getMap(need(args, 'name'))
    if (!('value' in args)) fail("missing argument 'value'")
    await waitFor(
      () => (jsonEqual(map.toJSON(), args.value) ? true : undefined),
      args.timeout,
      () => `map ${JSON.stringify(args.name)} is ${JSON.stringify(map.toJSON())}, want ${JSON.stringify(args.value)}`
    )
    return { value: map.toJSON() }
  },

  xmlInsert (args) {
    const fragment = doc.getXmlFragment(need(args, 'name'))
    const element = new Y.XmlElement(need(args, 'nodeName'))
    for (const [key, value] of Object.entries(args.attributes ?? {})) element.setAttribute(key, value)
    if (args.text !== undefined && args.text !== null) element.insert(0, [new Y.XmlText(args.text)])
    fragment.insert(args.index ?? fragment.length, [element])
    return { xml: fragment.toString() }
  },

  getXml: (args) => ({ xml: doc.getXmlFragment(need(args, 'name')).toString() }),

  waitXml: async (args) => {
    const fragment = doc.getXmlFragment(need(args, 'name'))
    const want = need(args, 'xml')
    await waitFor(
      () => (fragment.toString() === want ? true : undefined),
      args.timeout,
      () => `xml ${JSON.stringify(args.name)} is ${JSON.stringify(fragment.toString())}, want ${JSON.stringify(want)}`
    )
    return { xml: fragment.toString() }
  },

  stateVector: () => ({ sv: b64(Y.encodeStateVector(doc)) }),

  encodeState: (args) => ({
    update: b64(args.sv ? Y.encodeStateAsUpdate(doc, Buffer.from(args.sv, 'base64')) : Y.encodeStateAsUpdate(doc))
  }),

  applyUpdate (args) {
    Y.applyUpdate(doc, Buffer.from(need(args, 'update'), 'base64'))
    return {}
  },

  toJSON: () => ({ value: doc.toJSON() }),

  setAwareness (args) {
    if (!('state' in args)) fail("missing argument 'state'")
    getAwarenessInstance().setLocalState(args.state)
    return { clientId: doc.clientID }
  },

  getAwareness: () => ({ states: statesObject(), clientId: doc.clientID }),

  waitAwareness: async (args) => {
    const present = (args.present ?? []).map(Number)
    const absent = (args.absent ?? []).map(Number)
    const aw = getAwarenessInstance()
    await waitFor(
      () => {
        const states = aw.getStates()
        return present.every((id) => states.has(id)) && absent.every((id) => !states.has(id))
          ? true
          : undefined
      },
      args.timeout,
      () => `awareness has ${JSON.stringify(statesObject())}; want present ${JSON.stringify(present)}, absent ${JSON.stringify(absent)}`
    )
    return { states: statesObject() }
  },

  async close () {
    await shutdown()
    return {}
  }
}

const shutdown = async () => {
  if (closing) return
  closing = true
  if (provider !== null) {
    const ws = provider.ws
    // destroy() sends our awareness removal and closes the socket; wait (briefly) for the close
    // handshake so the server sees a clean close rather than a dropped TCP connection.
    const closed = ws !== null && ws.readyState !== WebSocket.CLOSED
      ? new Promise((resolve) => {
        ws.once('close', resolve)
        setTimeout(resolve, 1000)
      })
      : Promise.resolve()
    provider.destroy()
    await closed
  }
  if (awareness !== null) awareness.destroy()
  doc.destroy()
  provider = null
  awareness = null
  doc = new Y.Doc()
}

const exit = (code) => process.stdout.write('', () => process.exit(code))

const handle = async (line) => {
  if (line.trim() === '') return
  let request
  try {
    request = JSON.parse(line)
  } catch (err) {
    write({ id: null, ok: false, error: `invalid JSON: ${err.message}` })
    return
  }
  const id = request?.id ?? null
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    write({ id, ok: false, error: 'a request must be a JSON object' })
    return
  }
  const { cmd, id: _id, ...args } = request
  const command = Object.hasOwn(commands, cmd) ? commands[cmd] : undefined
  if (command === undefined) {
    write({ id, ok: false, error: `unknown command ${JSON.stringify(cmd)}` })
    return
  }
  try {
    // Synchronous commands reply at once, so replies keep the order of their requests.
    let result = command(args)
    if (result instanceof Promise) result = await result
    write({ id, ok: true, ...(result ?? {}) })
  } catch (err) {
    if (!(err instanceof CommandError)) console.error(`[peer] ${cmd} failed:`, err)
    write({ id, ok: false, error: err instanceof Error ? err.message : String(err) })
  }
  if (cmd === 'close') exit(0)
}

// Keep running after a stray exception (a test harness should report, not vanish), but say so
// on both channels so the Python side can fail the test.
process.on('uncaughtException', (err) => {
  console.error('[peer] uncaught exception:', err)
  emit('error', { error: String(err?.stack ?? err) })
})
process.on('unhandledRejection', (err) => {
  console.error('[peer] unhandled rejection:', err)
  emit('error', { error: String(err?.stack ?? err) })
})

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => { handle(line) })
// The controlling process went away: clean up and leave.
lines.on('close', () => { shutdown().finally(() => exit(0)) })

emit('ready', { versions: VERSIONS, pid: process.pid })
