#!/usr/bin/env node
// Load generator for bench/run.py: raw `ws` sockets speaking the y-websocket protocol, with
// yjs / y-protocols / lib0 encoders. Readers are lightweight: they look at the frame type, scan
// update frames for the writers' send-time markers and keep a latency histogram; only the
// clients that must have the document (trace reader, joiners, writers) hold a Y.Doc.
//
//   node loadgen.mjs SCENARIO --url-prefix ws://127.0.0.1:PORT/ws/ [options]
//
// Scenarios:
//   fanout  one room, 1 writer + --readers readers; the writer sends an update every
//           --interval-ms for --duration-s. Fan-out latency per delivered update.
//   rooms   --rooms rooms x --per-room clients, every client writes every --interval-ms for
//           --duration-s (sends spread evenly over the interval). Latency of every delivery to
//           the other clients of the room (a client's own echo is not counted).
//   trace   a sequential editing trace (--trace, .json.gz) replayed by one client in updates of
//           --batch edits (first --limit edits, 0 = all), sent back to back; a second client
//           applies what it receives. Time from the first send until it has the final text.
//   join    one client seeds a room with --seed (a Yjs v1 update, sent as one update), then
//           --clients clients join; time-to-synced per client (socket open -> sync step 2
//           received and applied; its text --text-name must have --expect-length characters).
//           One unmeasured joiner per worker syncs first (warm-up).
//   burst   one room, --writers writers + --readers readers; every writer sends --updates
//           updates as fast as it can (yielding to the event loop every --chunk sends). Time
//           from the first send until every reader has every update.
//   idle    --rooms rooms x --per-room clients that sync and then stay idle. Prints
//           {"event":"measure","stage":...,"sockets":N} with no socket open, once the first
//           client of every room is synced, and once all are, and waits for a line on stdin
//           after each (the driver reads the server's memory meanwhile; without a stdin, it
//           waits --measure-wait-s).
//
// --stateless: the server holds no document (bench/peers/relay.py): it does not echo an update
// to its sender and a joiner's sync step 2 is empty, so `join` does not wait for the seed's
// echo nor check the joiners' text (their time-to-synced is then the handshake alone).
//
// Clients connect in waves of --wave-size, a wave starting once the previous one is synced and
// at least --wave-ms after it started, so no two clients ever open a new room at the same
// instant (pycrdt-websocket 0.16.5 hangs the second of two such clients) and every server sees
// the same arrival pattern. Clients are spread over --procs worker processes.
//
// Latency: a writer inserts the text `#@<client>.<seq>.<t>@#` where t is its send time in
// microseconds of CLOCK_MONOTONIC (process.hrtime), shared by every process on the machine; a
// receiver finds the markers in the raw update frame (the inserted string is in it verbatim) and
// records receive time - t.
//
// stdout: {"event":"phase","phase":"run"} when the measured phase starts, then one result line
// {"event":"result","status":"ok"|"failed"|"timeout","error"?,"metrics":{...}} before the sockets
// are closed. Progress goes to stderr.

import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { gunzipSync } from 'node:zlib'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import WebSocket from 'ws'
import * as syncProtocol from 'y-protocols/sync'
import * as Y from 'yjs'

const MSG_SYNC = 0
const STEP1 = 0
const STEP2 = 1
const UPDATE = 2
const MARK_OPEN = Buffer.from('#@')
const MARK_CLOSE = 0x40 // '@' then '#'
const EMPTY_SV = Y.encodeStateVector(new Y.Doc())
const EMPTY_UPDATE = Y.encodeStateAsUpdate(new Y.Doc())
// After the phase event, wait this long before loading the server, so the driver's CPU
// sample is taken before the load starts.
const PHASE_PAUSE_MS = 300

const nowUs = () => Number(process.hrtime.bigint() / 1000n)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
const log = (...args) => process.stderr.write(`[loadgen${process.env.LOADGEN_WORKER ? ' w' + process.env.LOADGEN_WORKER : ''}] ${args.join(' ')}\n`)

// --- latency histogram: log buckets of 2 %, mergeable across processes ---------------------

const BUCKET_BASE = Math.log(1.02)
const N_BUCKETS = 1200 // up to ~2e10 us
const newHist = () => new Array(N_BUCKETS).fill(0)
const bucketOf = (us) => Math.min(N_BUCKETS - 1, Math.max(0, Math.floor(Math.log(Math.max(us, 1)) / BUCKET_BASE)))
const bucketMid = (i) => Math.exp((i + 0.5) * BUCKET_BASE)

const histQuantile = (hist, q) => {
  const total = hist.reduce((a, b) => a + b, 0)
  if (total === 0) return null
  const rank = Math.ceil(q * total)
  let seen = 0
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]
    if (seen >= rank) return bucketMid(i)
  }
  return null
}

const quantile = (values, q) => {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

// --- frames ---------------------------------------------------------------------------------

const frame = (write) => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MSG_SYNC)
  write(encoder)
  return encoding.toUint8Array(encoder)
}
const step1Frame = (sv) => frame((e) => { encoding.writeVarUint(e, STEP1); encoding.writeVarUint8Array(e, sv) })
const step2Frame = (update) => frame((e) => { encoding.writeVarUint(e, STEP2); encoding.writeVarUint8Array(e, update) })
const updateFrame = (update) => frame((e) => syncProtocol.writeUpdate(e, update))

/** The payload (varUint8Array after type and subtype) of a sync frame. */
const syncPayload = (buf) => {
  const decoder = decoding.createDecoder(buf)
  decoding.readVarUint(decoder)
  decoding.readVarUint(decoder)
  return decoding.readVarUint8Array(decoder)
}

/** Call fn(clientId, seq, sentUs) for every marker in a raw frame. */
const scanMarkers = (buf, fn) => {
  let pos = buf.indexOf(MARK_OPEN)
  while (pos !== -1) {
    let i = pos + 2
    const fields = [0, 0, 0]
    let f = 0
    let digits = 0
    let ok = false
    for (; i < buf.length && i < pos + 64; i++) {
      const c = buf[i]
      if (c >= 0x30 && c <= 0x39) { fields[f] = fields[f] * 10 + (c - 0x30); digits++ } else if (c === 0x2e && digits > 0 && f < 2) { f++; digits = 0 } else if (c === MARK_CLOSE && f === 2 && digits > 0 && buf[i + 1] === 0x23) { ok = true; break } else break
    }
    if (ok) fn(fields[0], fields[1], fields[2])
    pos = buf.indexOf(MARK_OPEN, i)
  }
}

// --- one client -----------------------------------------------------------------------------

class Client {
  /**
   * @param {object} opts
   * @param {number} opts.id   our number, also the writer id in markers
   * @param {string} opts.url
   * @param {'reader'|'writer'|'both'|'doc'|'joiner'|'raw'} opts.role
   */
  constructor ({ id, url, role, textName = 'content', expectLength = null, stats = null }) {
    this.id = id
    this.url = url
    this.role = role
    this.textName = textName
    this.expectLength = expectLength
    this.stats = stats
    this.doc = (role === 'writer' || role === 'both' || role === 'doc') ? new Y.Doc() : null
    this.text = this.doc ? this.doc.getText(textName) : null
    this.seq = 0
    this.synced = false
    this.closed = null
    this.tStart = 0
    this.tOpen = 0
    this.tStep2 = 0
    this.tApplied = 0
    this.applyUs = 0
    this.step2Bytes = 0
    this.onUpdate = null // (buf) => void, extra hook
    this.updatesReceived = 0
    if (this.doc && role !== 'doc') {
      this.doc.on('update', (update, origin) => {
        if (origin !== 'remote' && this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(updateFrame(update))
      })
    }
  }

  /** Connect; resolves when synced (sync step 2 received and applied), rejects on close. */
  connect (timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client ${this.id}: not synced after ${timeoutMs} ms`)), timeoutMs)
      this._resolve = () => { clearTimeout(timer); resolve(this) }
      this._reject = (err) => { clearTimeout(timer); reject(err) }
      this.tStart = nowUs()
      const ws = new WebSocket(this.url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 })
      this.ws = ws
      ws.binaryType = 'nodebuffer'
      ws.on('open', () => {
        this.tOpen = nowUs()
        ws.send(step1Frame(this.doc ? Y.encodeStateVector(this.doc) : EMPTY_SV))
      })
      ws.on('message', (data, isBinary) => this._message(data, isBinary))
      ws.on('error', (err) => { if (!this.synced) this._reject(new Error(`client ${this.id}: ${err.message}`)) })
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString() }
        if (!this.synced) this._reject(new Error(`client ${this.id}: closed ${code} ${reason} before sync`))
        else if (this.stats && !this.stats.closing) this.stats.disconnects.push({ id: this.id, code, reason: reason.toString() })
      })
    })
  }

  _message (buf, isBinary) {
    if (!isBinary || buf.length < 2 || buf[0] !== MSG_SYNC) return // awareness, auth, ...
    const sub = buf[1]
    if (sub === UPDATE) {
      this.updatesReceived++
      if (this.doc && this.role === 'doc') Y.applyUpdate(this.doc, syncPayload(buf), 'remote')
      if (this.onUpdate) this.onUpdate(buf)
    } else if (sub === STEP1) {
      // The server's step 1: answer with what it misses (nothing, for a client without a doc).
      const sv = syncPayload(buf)
      this.ws.send(step2Frame(this.doc ? Y.encodeStateAsUpdate(this.doc, sv) : EMPTY_UPDATE))
    } else if (sub === STEP2) {
      if (this.synced) return
      this.tStep2 = nowUs()
      if (this.doc) {
        Y.applyUpdate(this.doc, syncPayload(buf), 'remote')
      } else if (this.role === 'joiner') {
        // Time-to-synced is tStep2 + this client's own apply. tStep2 is when this handler
        // runs: it includes waiting for other joiners of this process to finish theirs.
        const doc = new Y.Doc()
        const payload = syncPayload(buf)
        this.step2Bytes = payload.length
        Y.applyUpdate(doc, payload)
        const length = doc.getText(this.textName).length
        this.applyUs = nowUs() - this.tStep2
        this.tApplied = this.tStep2 + this.applyUs
        if (this.expectLength !== null && length !== this.expectLength) {
          this._reject(new Error(`client ${this.id}: synced text has ${length} characters, expected ${this.expectLength}`))
          doc.destroy()
          return
        }
        doc.destroy()
      }
      if (!this.tApplied) this.tApplied = nowUs()
      this.synced = true
      this._resolve()
    }
  }

  /** Insert one marker at the end of our text: the doc's update goes out at once. */
  writeMarker () {
    const seq = this.seq++
    this.text.insert(this.text.length, `#@${this.id}.${seq}.${nowUs()}@#`)
  }

  close () {
    if (this.ws) this.ws.terminate()
  }
}

// --- worker process -------------------------------------------------------------------------

const runWorker = () => {
  const stats = { hist: newHist(), received: 0, echoes: 0, sent: 0, lastRecvUs: 0, disconnects: [], closing: false, syncTimes: [], openTimes: [], applyTimes: [], step2Bytes: [] }
  /** @type {Map<number, Client>} */
  const clients = new Map()
  let config = null
  let cpuBase = null // CPU at the start of the measured phase
  const cpuNow = () => { const c = process.cpuUsage(); return c.user + c.system }

  const send = (msg) => process.send(msg)

  const track = (client) => {
    client.onUpdate = (buf) => {
      const t = nowUs()
      scanMarkers(buf, (writer, _seq, sentUs) => {
        if (writer === client.id) { stats.echoes++; return }
        stats.received++
        stats.hist[bucketOf(t - sentUs)]++
        stats.lastRecvUs = t
      })
    }
  }

  const writeLoop = async (client, startUs, endUs, intervalUs) => {
    let k = 0
    for (;;) {
      const target = startUs + k * intervalUs
      if (target >= endUs) break
      const now = nowUs()
      if (target > now) await sleep((target - now) / 1000)
      if (client.closed) break
      client.writeMarker()
      stats.sent++
      k++
    }
  }

  process.on('message', async (msg) => {
    try {
      if (msg.type === 'init') {
        config = msg.config
        if (config.warmup) {
          // JIT warm-up: the first applies of a big update are several times slower than later
          // ones, and would otherwise land in the first wave's time-to-synced.
          const update = readFileSync(config.warmup)
          for (let i = 0; i < 5; i++) { const doc = new Y.Doc(); Y.applyUpdate(doc, update); doc.destroy() }
        }
        for (const c of msg.clients) {
          const client = new Client({ id: c.id, url: c.url, role: c.role, textName: config.textName, expectLength: config.expectLength, stats })
          if (c.role === 'reader' || c.role === 'both') track(client)
          clients.set(c.id, client)
        }
        send({ type: 'init-ok' })
      } else if (msg.type === 'connect') {
        if (msg.measure && cpuBase === null) cpuBase = cpuNow()
        const failed = []
        await Promise.all(msg.ids.map(async (id) => {
          const client = clients.get(id)
          try {
            await client.connect(config.connectTimeoutMs)
            if (msg.unmeasured) return
            stats.syncTimes.push((client.tApplied - client.tOpen) / 1000)
            stats.openTimes.push((client.tOpen - client.tStart) / 1000)
            stats.applyTimes.push(client.applyUs / 1000)
            stats.step2Bytes.push(client.step2Bytes)
          } catch (err) {
            failed.push(String(err.message || err))
          }
        }))
        send({ type: 'connected', wave: msg.wave, failed })
      } else if (msg.type === 'start') {
        cpuBase = cpuNow()
        const writers = [...clients.values()].filter((c) => c.role === 'writer' || c.role === 'both')
        const intervalUs = msg.intervalMs * 1000
        const endUs = msg.startUs + msg.durationMs * 1000
        await Promise.all(writers.map((c) => writeLoop(c, msg.startUs + Math.round((msg.phases[c.id] ?? 0) * intervalUs), endUs, intervalUs)))
        send({ type: 'sent', sent: stats.sent })
      } else if (msg.type === 'burst') {
        // Every writer sends msg.count updates as fast as it can; the writers interleave,
        // each yielding to the event loop after msg.chunk sends so sockets get written.
        cpuBase = cpuNow()
        const writers = [...clients.values()].filter((c) => c.role === 'writer')
        const wait = msg.startUs - nowUs()
        if (wait > 0) await sleep(wait / 1000)
        const firstSendUs = writers.length ? nowUs() : null
        await Promise.all(writers.map(async (c) => {
          for (let k = 0; k < msg.count; k++) {
            if (c.closed) break
            c.writeMarker()
            stats.sent++
            if ((k + 1) % msg.chunk === 0) await new Promise((resolve) => setImmediate(resolve))
          }
        }))
        send({ type: 'sent', sent: stats.sent, firstSendUs, lastSendUs: writers.length ? nowUs() : null })
      } else if (msg.type === 'stats') {
        send({ type: 'stats', received: stats.received, sent: stats.sent, disconnects: stats.disconnects.length })
      } else if (msg.type === 'report') {
        send({
          type: 'report',
          hist: stats.hist,
          received: stats.received,
          echoes: stats.echoes,
          sent: stats.sent,
          lastRecvUs: stats.lastRecvUs,
          disconnects: stats.disconnects,
          syncTimes: stats.syncTimes,
          openTimes: stats.openTimes,
          applyTimes: stats.applyTimes,
          step2Bytes: stats.step2Bytes,
          cpuUs: cpuNow() - (cpuBase ?? 0)
        })
      } else if (msg.type === 'exit') {
        stats.closing = true
        for (const c of clients.values()) c.close()
        setTimeout(() => process.exit(0), 50)
      }
    } catch (err) {
      send({ type: 'error', error: String(err.stack || err) })
    }
  })
  process.on('disconnect', () => process.exit(0))
}

// --- coordinator ----------------------------------------------------------------------------

class Worker {
  constructor (index) {
    this.index = index
    this.proc = fork(new URL(import.meta.url).pathname, ['--worker'], {
      env: { ...process.env, LOADGEN_WORKER: String(index) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc']
    })
    this.waiters = new Map()
    this.proc.on('message', (msg) => {
      if (msg.type === 'error') { log(`worker ${index} error: ${msg.error}`); return }
      const queue = this.waiters.get(msg.type)
      if (queue && queue.length) queue.shift()(msg)
    })
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve))
  }

  /** Send msg and wait for a reply of type replyType. */
  request (msg, replyType) {
    return new Promise((resolve) => {
      if (!this.waiters.has(replyType)) this.waiters.set(replyType, [])
      this.waiters.get(replyType).push(resolve)
      this.proc.send(msg)
    })
  }
}

class ScenarioError extends Error {
  constructor (status, message) { super(message); this.status = status }
}

const withTimeout = (promise, ms, what) => {
  let timer
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new ScenarioError('timeout', `${what}: no answer after ${ms / 1000} s`)), ms) })
  ])
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

/** Connect clients (ids, already placed on workers) in waves. */
const connectInWaves = async (workers, placement, ids, opts) => {
  const waves = []
  for (let i = 0; i < ids.length; i += opts.waveSize) waves.push(ids.slice(i, i + opts.waveSize))
  const t0 = Date.now()
  for (let w = 0; w < waves.length; w++) {
    const started = Date.now()
    const byWorker = new Map()
    for (const id of waves[w]) {
      const wi = placement.get(id)
      if (!byWorker.has(wi)) byWorker.set(wi, [])
      byWorker.get(wi).push(id)
    }
    const replies = await withTimeout(
      Promise.all([...byWorker].map(([wi, list]) => workers[wi].request({ type: 'connect', wave: w, ids: list, measure: opts.measureConnect, unmeasured: opts.unmeasured }, 'connected'))),
      opts.connectTimeoutMs + 5000,
      `connect wave ${w + 1}/${waves.length}`
    )
    const failed = replies.flatMap((r) => r.failed)
    if (failed.length) {
      const status = failed.some((f) => f.includes('not synced after')) ? 'timeout' : 'failed'
      throw new ScenarioError(status, `wave ${w + 1}/${waves.length}: ${failed.length} client(s) failed to sync, e.g. ${failed[0]}`)
    }
    await sleep(opts.waveMs - (Date.now() - started))
  }
  log(`${ids.length} clients synced in ${waves.length} waves of ${opts.waveSize} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
}

const startWorkers = async (n, clientsByWorker, config) => {
  const workers = []
  for (let i = 0; i < n; i++) workers.push(new Worker(i))
  await Promise.all(workers.map((w, i) => w.request({ type: 'init', config, clients: clientsByWorker[i] }, 'init-ok')))
  return workers
}

const collectReports = async (workers) => {
  const reports = await withTimeout(Promise.all(workers.map((w) => w.request({ type: 'report' }, 'report'))), 30000, 'report')
  const hist = newHist()
  let received = 0; let sent = 0; let echoes = 0; let lastRecvUs = 0; let cpuUs = 0
  const disconnects = []; const syncTimes = []; const openTimes = []; const applyTimes = []; const step2Bytes = []
  for (const r of reports) {
    r.hist.forEach((v, i) => { hist[i] += v })
    received += r.received; sent += r.sent; echoes += r.echoes
    lastRecvUs = Math.max(lastRecvUs, r.lastRecvUs)
    cpuUs += r.cpuUs
    disconnects.push(...r.disconnects); syncTimes.push(...r.syncTimes); openTimes.push(...r.openTimes); applyTimes.push(...r.applyTimes); step2Bytes.push(...r.step2Bytes)
  }
  return { hist, received, sent, echoes, lastRecvUs, cpuUs, disconnects, syncTimes, openTimes, applyTimes, step2Bytes }
}

const stopWorkers = async (workers) => {
  for (const w of workers) { try { w.proc.send({ type: 'exit' }) } catch { /* already gone */ } }
  await Promise.race([Promise.all(workers.map((w) => w.exited)), sleep(3000)])
  for (const w of workers) w.proc.kill('SIGKILL')
}

const selfCpuUs = () => { const c = process.cpuUsage(); return c.user + c.system }

/** fanout and rooms: writers send markers for a fixed time, readers record latencies. */
const runWriteScenario = async (opts, kind) => {
  const clients = []
  let expectedPerUpdate
  const phases = {}
  if (kind === 'fanout') {
    const room = `${opts.roomPrefix}-fanout`
    clients.push({ id: 0, room, role: 'writer' })
    for (let i = 1; i <= opts.readers; i++) clients.push({ id: i, room, role: 'reader' })
    expectedPerUpdate = opts.readers
  } else {
    // Connection order: the first member of every room, then the second of every room, ...:
    // each wave opens distinct rooms, and a room's later members come after it is open.
    let id = 0
    const total = opts.rooms * opts.perRoom
    for (let m = 0; m < opts.perRoom; m++) {
      for (let r = 0; r < opts.rooms; r++) {
        clients.push({ id, room: `${opts.roomPrefix}-room${r}`, role: 'both' })
        phases[id] = id / total // spread the sends evenly over one interval
        id++
      }
    }
    expectedPerUpdate = opts.perRoom - 1
  }
  for (const c of clients) c.url = opts.urlPrefix + c.room
  // fanout across instances of a cluster: every other reader on the second instance.
  if (opts.readerUrlPrefix) for (const c of clients) if (c.role === 'reader' && c.id % 2 === 0) c.url = opts.readerUrlPrefix + c.room
  // fanout: the writer gets worker 0 to itself when there is more than one worker, so its send
  // times are not delayed by readers' work.
  const placement = new Map()
  const clientsByWorker = Array.from({ length: opts.procs }, () => [])
  let rr = 0
  for (const c of clients) {
    let wi
    if (kind === 'fanout' && opts.procs > 1) wi = c.role === 'writer' ? 0 : 1 + (rr++ % (opts.procs - 1))
    else wi = rr++ % opts.procs
    placement.set(c.id, wi)
    clientsByWorker[wi].push(c)
  }
  const workers = await startWorkers(opts.procs, clientsByWorker, { connectTimeoutMs: opts.connectTimeoutMs, textName: 'content', expectLength: null })
  emit.workers = workers
  {
    if (kind === 'fanout') {
      await connectInWaves(workers, placement, [0], opts)
      await connectInWaves(workers, placement, clients.slice(1).map((c) => c.id), opts)
    } else {
      await connectInWaves(workers, placement, clients.map((c) => c.id), opts)
    }
    emit({ event: 'phase', phase: 'run' })
    const cpuBefore = selfCpuUs()
    const startUs = nowUs() + PHASE_PAUSE_MS * 1000
    const durationMs = opts.durationS * 1000
    const sentReplies = await withTimeout(
      Promise.all(workers.map((w) => w.request({ type: 'start', startUs, durationMs, intervalMs: opts.intervalMs, phases }, 'sent'))),
      durationMs + 30000,
      'writers'
    )
    const sent = sentReplies.reduce((a, r) => a + r.sent, 0)
    const expected = sent * expectedPerUpdate
    // Drain: wait until every expected delivery arrived, or the drain timeout.
    const drainUntil = Date.now() + opts.drainTimeoutS * 1000
    let received = 0
    let disconnects = 0
    for (;;) {
      const st = await withTimeout(Promise.all(workers.map((w) => w.request({ type: 'stats' }, 'stats'))), 10000, 'stats')
      received = st.reduce((a, r) => a + r.received, 0)
      disconnects = st.reduce((a, r) => a + r.disconnects, 0)
      if (received >= expected || Date.now() > drainUntil) break
      await sleep(100)
    }
    const rep = await collectReports(workers)
    const spanS = Math.max(1e-6, (Math.max(rep.lastRecvUs, startUs + durationMs * 1000) - startUs) / 1e6)
    const metrics = {
      sent,
      expected,
      received: rep.received,
      delivery_ratio: expected ? rep.received / expected : null,
      delivered_per_s: rep.received / spanS,
      span_s: spanS,
      phase_s: spanS,
      latency_p50_ms: ms(histQuantile(rep.hist, 0.5)),
      latency_p99_ms: ms(histQuantile(rep.hist, 0.99)),
      latency_max_ms: ms(histQuantile(rep.hist, 1)),
      disconnects: rep.disconnects.length,
      disconnect_codes: [...new Set(rep.disconnects.map((d) => d.code))],
      connect_sync_p50_ms: quantile(rep.syncTimes, 0.5),
      loadgen_cpu_s: (rep.cpuUs + selfCpuUs() - cpuBefore) / 1e6,
      clients: clients.length
    }
    let status = 'ok'
    let error
    if (rep.received < expected) {
      status = disconnects ? 'failed' : 'timeout'
      error = `${rep.received} of ${expected} deliveries arrived (${disconnects} disconnects)`
    }
    return { status, error, metrics }
  }
}

const ms = (us) => (us === null ? null : us / 1000)

/** trace: replay a sequential trace through the server, until a second client has the text. */
const runTrace = async (opts) => {
  const trace = JSON.parse(gunzipSync(readFileSync(opts.trace)).toString('utf8'))
  const gen = new Y.Doc()
  const gtext = gen.getText('content')
  const updates = []
  gen.on('update', (u) => updates.push(u))
  let edits = 0
  let batch = []
  const flush = () => {
    if (!batch.length) return
    const patches = batch
    batch = []
    gen.transact(() => {
      for (const [pos, del, ins] of patches) {
        if (del) gtext.delete(pos, del)
        if (ins) gtext.insert(pos, ins)
      }
    })
  }
  const t0 = Date.now()
  outer: for (const txn of trace.txns) {
    for (const patch of txn.patches) {
      if (opts.limit && edits >= opts.limit) break outer
      batch.push(patch)
      edits++
      if (batch.length >= opts.batch) flush()
    }
  }
  flush()
  const expected = gtext.toString()
  if (!opts.limit && expected !== trace.endContent) throw new ScenarioError('failed', 'local replay does not match endContent')
  const frames = updates.map(updateFrame)
  const bytes = frames.reduce((a, f) => a + f.length, 0)
  log(`trace: ${edits} edits -> ${frames.length} updates (${(bytes / 1e6).toFixed(2)} MB) in ${Date.now() - t0} ms`)

  const url = opts.urlPrefix + `${opts.roomPrefix}-trace`
  const reader = new Client({ id: 1, url, role: 'doc' })
  const writer = new Client({ id: 2, url, role: 'raw' })
  const clients = [reader, writer]
  emit.clients = clients
  await reader.connect(opts.connectTimeoutMs)
  await sleep(opts.waveMs)
  await writer.connect(opts.connectTimeoutMs)
  const rtext = reader.doc.getText('content')
  let echoes = 0
  let tEchoes = 0
  emit({ event: 'phase', phase: 'run' })
  await sleep(PHASE_PAUSE_MS)
  const cpuBefore = selfCpuUs()
  const done = new Promise((resolve) => {
    const check = () => {
      if (rtext.length === expected.length && rtext.toString() === expected) resolve(nowUs())
    }
    reader.doc.on('afterTransaction', check)
  })
  const echoesDone = new Promise((resolve) => {
    writer.onUpdate = () => { if (++echoes === frames.length) { tEchoes = nowUs(); resolve() } }
  })
  const start = nowUs()
  for (const f of frames) writer.ws.send(f)
  const tSent = nowUs()
  let tDone
  try {
    tDone = await withTimeout(done, opts.timeoutS * 1000, 'trace replay')
  } catch (err) {
    err.message += ` (reader has ${rtext.length} of ${expected.length} characters, ${reader.updatesReceived} of ${frames.length} updates)`
    throw err
  }
  await Promise.race([echoesDone, sleep(2000)])
  return {
    status: 'ok',
    metrics: {
      edits,
      updates: frames.length,
      batch_edits: opts.batch,
      update_bytes: bytes,
      final_chars: expected.length,
      time_to_final_s: (tDone - start) / 1e6,
      phase_s: (tDone - start) / 1e6,
      send_s: (tSent - start) / 1e6,
      writer_echoes: echoes,
      writer_echoes_s: tEchoes ? (tEchoes - start) / 1e6 : null,
      edits_per_s: edits / ((tDone - start) / 1e6),
      loadgen_cpu_s: (selfCpuUs() - cpuBefore) / 1e6
    }
  }
}

/** join: seed a room with one big update, then clients join in waves. */
const runJoin = async (opts) => {
  const seed = readFileSync(opts.seed)
  const url = opts.urlPrefix + `${opts.roomPrefix}-join`
  const seeder = new Client({ id: 0, url, role: 'raw' })
  emit.clients = [seeder]
  await seeder.connect(opts.connectTimeoutMs)
  const echoed = new Promise((resolve) => { seeder.onUpdate = (buf) => { if (buf.length > 1000) resolve() } })
  const tSeed = nowUs()
  seeder.ws.send(updateFrame(seed))
  if (opts.stateless) await sleep(500) // no echo to wait for, and nothing is kept anyway
  else await withTimeout(echoed, opts.connectTimeoutMs, 'seed update echo')
  log(`seeded ${seed.length} bytes in ${((nowUs() - tSeed) / 1000).toFixed(1)} ms`)

  const clients = []
  for (let i = 1; i <= opts.clients; i++) clients.push({ id: i, url, role: 'joiner' })
  const placement = new Map()
  const clientsByWorker = Array.from({ length: opts.procs }, () => [])
  clients.forEach((c, i) => { placement.set(c.id, i % opts.procs); clientsByWorker[i % opts.procs].push(c) })
  // One unmeasured joiner per worker goes first: a worker's first sync through a socket
  // (receiving the big frame, decoding it, applying it into a fresh doc) runs 3-5x slower than
  // its later ones however much the apply alone was warmed up, and with 100 clients the p99 is
  // the first wave's two slowest: without this it measured the load generator's JIT, alike
  // for every server, more than the server.
  const warmers = clientsByWorker.map((list, wi) => {
    const c = { id: opts.clients + 1 + wi, url, role: 'joiner' }
    placement.set(c.id, wi)
    list.push(c)
    return c
  })
  const expectLength = opts.stateless ? null : opts.expectLength
  const workers = await startWorkers(opts.procs, clientsByWorker, { connectTimeoutMs: opts.connectTimeoutMs, textName: opts.textName, expectLength, warmup: opts.seed })
  emit.workers = workers
  await connectInWaves(workers, placement, warmers.map((c) => c.id), { ...opts, waveSize: warmers.length, unmeasured: true })
  emit({ event: 'phase', phase: 'run' })
  await sleep(PHASE_PAUSE_MS)
  const cpuBefore = selfCpuUs()
  const tWaves = nowUs()
  await connectInWaves(workers, placement, clients.map((c) => c.id), { ...opts, measureConnect: true })
  const phaseS = (nowUs() - tWaves) / 1e6
  const rep = await collectReports(workers)
  return {
    status: 'ok',
    metrics: {
      clients: clients.length,
      phase_s: phaseS,
      step2_bytes: quantile(rep.step2Bytes, 0.5),
      seed_bytes: seed.length,
      sync_p50_ms: quantile(rep.syncTimes, 0.5),
      sync_p99_ms: quantile(rep.syncTimes, 0.99),
      sync_max_ms: quantile(rep.syncTimes, 1),
      open_p50_ms: quantile(rep.openTimes, 0.5),
      client_apply_p50_ms: quantile(rep.applyTimes, 0.5),
      loadgen_cpu_s: (rep.cpuUs + selfCpuUs() - cpuBefore) / 1e6
    }
  }
}

/** Put `clients` on workers: writers on worker 0 alone when there is more than one worker. */
const place = (clients, procs) => {
  const placement = new Map()
  const clientsByWorker = Array.from({ length: procs }, () => [])
  let rr = 0
  for (const c of clients) {
    const wi = procs > 1 ? (c.role === 'writer' ? 0 : 1 + (rr++ % (procs - 1))) : 0
    placement.set(c.id, wi)
    clientsByWorker[wi].push(c)
  }
  return { placement, clientsByWorker }
}

/** burst: writers send as fast as they can into one room; readers must get every update. */
const runBurst = async (opts) => {
  const room = `${opts.roomPrefix}-burst`
  const clients = []
  for (let i = 0; i < opts.writers; i++) clients.push({ id: i, room, role: 'writer', url: opts.urlPrefix + room })
  for (let i = 0; i < opts.readers; i++) clients.push({ id: opts.writers + i, room, role: 'reader', url: opts.urlPrefix + room })
  const { placement, clientsByWorker } = place(clients, opts.procs)
  const workers = await startWorkers(opts.procs, clientsByWorker, { connectTimeoutMs: opts.connectTimeoutMs, textName: 'content', expectLength: null })
  emit.workers = workers
  await connectInWaves(workers, placement, clients.map((c) => c.id), opts)
  emit({ event: 'phase', phase: 'run' })
  const cpuBefore = selfCpuUs()
  const startUs = nowUs() + PHASE_PAUSE_MS * 1000
  const replies = await withTimeout(
    Promise.all(workers.map((w) => w.request({ type: 'burst', startUs, count: opts.updates, chunk: opts.chunk }, 'sent'))),
    opts.timeoutS * 1000,
    'writers'
  )
  const sent = replies.reduce((a, r) => a + r.sent, 0)
  const firstSendUs = Math.min(...replies.map((r) => r.firstSendUs ?? Infinity))
  const lastSendUs = Math.max(...replies.map((r) => r.lastSendUs ?? 0))
  const expected = opts.writers * opts.updates * opts.readers
  const drainUntil = Date.now() + opts.drainTimeoutS * 1000
  let received = 0
  for (;;) {
    const st = await withTimeout(Promise.all(workers.map((w) => w.request({ type: 'stats' }, 'stats'))), 10000, 'stats')
    received = st.reduce((a, r) => a + r.received, 0)
    if (received >= expected || Date.now() > drainUntil) break
    await sleep(50)
  }
  const rep = await collectReports(workers)
  const complete = rep.received >= expected
  const spanS = Math.max(1e-6, (Math.max(rep.lastRecvUs, lastSendUs) - firstSendUs) / 1e6)
  const metrics = {
    sent,
    expected,
    received: rep.received,
    delivery_ratio: rep.received / expected,
    burst_s: complete ? spanS : null,
    send_s: (lastSendUs - firstSendUs) / 1e6,
    delivered_per_s: rep.received / spanS,
    phase_s: spanS,
    latency_p50_ms: ms(histQuantile(rep.hist, 0.5)),
    latency_p99_ms: ms(histQuantile(rep.hist, 0.99)),
    latency_max_ms: ms(histQuantile(rep.hist, 1)),
    disconnects: rep.disconnects.length,
    disconnect_codes: [...new Set(rep.disconnects.map((d) => d.code))],
    loadgen_cpu_s: (rep.cpuUs + selfCpuUs() - cpuBefore) / 1e6,
    clients: clients.length
  }
  if (complete) return { status: 'ok', metrics }
  const status = rep.disconnects.length ? 'failed' : 'timeout'
  return { status, error: `${rep.received} of ${expected} deliveries arrived (${rep.disconnects.length} disconnects)`, metrics }
}

/** idle: sockets that sync and stay idle; the driver reads the server's memory at each stage. */
const runIdle = async (opts) => {
  const clients = []
  let id = 0
  for (let m = 0; m < opts.perRoom; m++) {
    for (let r = 0; r < opts.rooms; r++) clients.push({ id: id++, role: 'raw', url: opts.urlPrefix + `${opts.roomPrefix}-note${r}` })
  }
  const placement = new Map()
  const clientsByWorker = Array.from({ length: opts.procs }, () => [])
  clients.forEach((c, i) => { placement.set(c.id, i % opts.procs); clientsByWorker[i % opts.procs].push(c) })
  const workers = await startWorkers(opts.procs, clientsByWorker, { connectTimeoutMs: opts.connectTimeoutMs, textName: 'content', expectLength: null })
  emit.workers = workers
  const lines = createInterface({ input: process.stdin })
  const pending = []
  let stdinClosed = false
  const waiters = []
  lines.on('line', (line) => { if (waiters.length) waiters.shift()(line); else pending.push(line) })
  lines.on('close', () => { stdinClosed = true; while (waiters.length) waiters.shift()(null) })
  const measure = async (stage, sockets) => {
    emit({ event: 'measure', stage, sockets })
    const line = pending.length ? pending.shift() : stdinClosed ? null : await new Promise((resolve) => waiters.push(resolve))
    if (line === null) await sleep(opts.measureWaitS * 1000)
  }
  emit({ event: 'phase', phase: 'run' })
  const cpuBefore = selfCpuUs()
  const t0 = nowUs()
  await measure('idle', 0)
  await connectInWaves(workers, placement, clients.slice(0, opts.rooms).map((c) => c.id), opts)
  await measure('first', opts.rooms)
  await connectInWaves(workers, placement, clients.slice(opts.rooms).map((c) => c.id), opts)
  await measure('all', clients.length)
  const rep = await collectReports(workers)
  lines.close()
  const metrics = {
    clients: clients.length,
    rooms: opts.rooms,
    phase_s: (nowUs() - t0) / 1e6,
    connect_sync_p50_ms: quantile(rep.syncTimes, 0.5),
    disconnects: rep.disconnects.length,
    loadgen_cpu_s: (rep.cpuUs + selfCpuUs() - cpuBefore) / 1e6
  }
  if (rep.disconnects.length) return { status: 'failed', error: `${rep.disconnects.length} idle sockets were closed by the server`, metrics }
  return { status: 'ok', metrics }
}

const main = async () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'url-prefix': { type: 'string' },
      'reader-url-prefix': { type: 'string' },
      'room-prefix': { type: 'string', default: `bench${Date.now() % 100000}` },
      procs: { type: 'string', default: '2' },
      'wave-size': { type: 'string', default: '10' },
      'wave-ms': { type: 'string', default: '100' },
      'connect-timeout-s': { type: 'string', default: '20' },
      'drain-timeout-s': { type: 'string', default: '20' },
      readers: { type: 'string', default: '100' },
      rooms: { type: 'string', default: '200' },
      'per-room': { type: 'string', default: '4' },
      'interval-ms': { type: 'string', default: '10' },
      'duration-s': { type: 'string', default: '10' },
      trace: { type: 'string' },
      batch: { type: 'string', default: '100' },
      limit: { type: 'string', default: '0' },
      'timeout-s': { type: 'string', default: '120' },
      seed: { type: 'string' },
      clients: { type: 'string', default: '100' },
      'text-name': { type: 'string', default: 'text' },
      'expect-length': { type: 'string' },
      writers: { type: 'string', default: '4' },
      updates: { type: 'string', default: '5000' },
      chunk: { type: 'string', default: '20' },
      'measure-wait-s': { type: 'string', default: '3' },
      stateless: { type: 'boolean', default: false }
    }
  })
  const scenario = positionals[0]
  const opts = {
    urlPrefix: values['url-prefix'],
    readerUrlPrefix: values['reader-url-prefix'],
    roomPrefix: values['room-prefix'],
    procs: Math.max(1, Number(values.procs)),
    waveSize: Number(values['wave-size']),
    waveMs: Number(values['wave-ms']),
    connectTimeoutMs: Number(values['connect-timeout-s']) * 1000,
    drainTimeoutS: Number(values['drain-timeout-s']),
    readers: Number(values.readers),
    rooms: Number(values.rooms),
    perRoom: Number(values['per-room']),
    intervalMs: Number(values['interval-ms']),
    durationS: Number(values['duration-s']),
    trace: values.trace,
    batch: Number(values.batch),
    limit: Number(values.limit),
    timeoutS: Number(values['timeout-s']),
    seed: values.seed,
    clients: Number(values.clients),
    textName: values['text-name'],
    expectLength: values['expect-length'] === undefined ? null : Number(values['expect-length']),
    writers: Number(values.writers),
    updates: Number(values.updates),
    chunk: Math.max(1, Number(values.chunk)),
    measureWaitS: Number(values['measure-wait-s']),
    stateless: values.stateless
  }
  if (!opts.urlPrefix) throw new Error('--url-prefix is required')
  const require = createRequire(import.meta.url)
  const versions = { node: process.versions.node }
  for (const p of ['yjs', 'y-protocols', 'lib0', 'ws']) versions[p] = require(`${p}/package.json`).version
  let result
  try {
    if (scenario === 'fanout' || scenario === 'rooms') result = await runWriteScenario(opts, scenario)
    else if (scenario === 'trace') result = await runTrace(opts)
    else if (scenario === 'join') result = await runJoin(opts)
    else if (scenario === 'burst') result = await runBurst(opts)
    else if (scenario === 'idle') result = await runIdle(opts)
    else throw new Error(`unknown scenario ${scenario}`)
  } catch (err) {
    result = { status: err instanceof ScenarioError ? err.status : 'failed', error: String(err.message || err), metrics: {} }
  }
  emit({ event: 'result', scenario, versions, ...result })
  if (emit.clients) for (const c of emit.clients) { if (c.stats) c.stats.closing = true; c.close() }
  if (emit.workers) await stopWorkers(emit.workers)
  process.exit(0)
}

if (process.argv.includes('--worker')) runWorker()
else main().catch((err) => { log(err.stack || String(err)); process.exit(1) })
