// Following the change feed (`GET /api/events`, Server-Sent Events) with fetch(), so that the
// token goes in the Authorization header and never in a URL. Reconnects by itself, resuming
// with Last-Event-ID (the server replays what was missed, or says `resync`); a stream that
// sends nothing, not even the server's keepalive comment, for `idleMs` is taken as lost.
import { createSseParser, reconnectDelay } from './sse.js'

const IDLE_MS = 45000 // three of the server's keepalives (COSCRIBE_FEED_KEEPALIVE_S, 15 s)
const UNAVAILABLE_RETRY_MS = 60000 // a stream that cannot be opened is tried again this often

/**
 * Follow `url` until close(). `token()` gives the current token. `onEvent({ type, data, id })`
 * for each message (data as sent: a JSON string for the change feed). `onState(state, info)`:
 * - `connecting`;
 * - `open` `{ resumed }` (resumed: sent with Last-Event-ID, so nothing was missed);
 * - `retrying` `{ delay, reason, failures }`: lost or not reachable, trying again in `delay` ms;
 * - `unavailable` `{ reason, delay }`: the server answered, but not with a stream (an old server,
 *   a proxy in the way): tried again in `delay` ms, the caller should poll meanwhile;
 * - `refused` `{ status }` (401, 403): stopped; the caller finds out why over REST.
 */
export function followEvents ({
  url,
  token = () => null,
  onEvent = () => {},
  onState = () => {},
  lastEventId = '',
  retryMs = 2000,
  idleMs = IDLE_MS,
  fetch: fetchImpl = (...args) => globalThis.fetch(...args),
}) {
  let closed = false
  let controller = null
  let timer = null
  let failures = 0
  let retry = retryMs
  let last = lastEventId

  function later (delay) {
    clearTimeout(timer)
    timer = setTimeout(connect, delay)
  }

  function again (reason, failed = true) {
    if (closed) return
    if (failed) failures++
    const delay = reconnectDelay(failures, retry)
    onState('retrying', { delay, reason, failures })
    later(delay)
  }

  function unavailable (reason) {
    if (closed) return
    onState('unavailable', { reason, delay: UNAVAILABLE_RETRY_MS })
    later(UNAVAILABLE_RETRY_MS)
  }

  async function connect () {
    timer = null
    if (closed) return
    controller?.abort()
    const mine = new AbortController()
    controller = mine
    const current = () => !closed && controller === mine
    const headers = { Accept: 'text/event-stream' }
    const used = token()
    if (used) headers.Authorization = `Bearer ${used}`
    const resumed = last !== ''
    if (resumed) headers['Last-Event-ID'] = last
    onState('connecting')
    // Silence (no answer, no bytes) for idleMs: the connection is taken as lost.
    let idle = null
    let silent = false
    const watch = () => {
      clearTimeout(idle)
      idle = setTimeout(() => { silent = true; mine.abort() }, idleMs)
    }
    watch()
    let response
    try {
      response = await fetchImpl(url, { headers, signal: mine.signal, cache: 'no-store' })
    } catch {
      if (current()) again(silent ? 'the server does not answer' : 'the server cannot be reached')
      return
    } finally {
      clearTimeout(idle)
    }
    if (!current()) return mine.abort()
    if (response.status === 401 || response.status === 403) {
      closed = true
      onState('refused', { status: response.status })
      return
    }
    if (!response.ok) {
      let detail = ''
      try { detail = (await response.json()).detail || '' } catch { /* not JSON */ }
      if (!current()) return
      const reason = `HTTP ${response.status}${detail ? `: ${detail}` : ''}`
      return response.status >= 500 || response.status === 429 ? again(reason) : unavailable(reason)
    }
    if (!(response.headers.get('content-type') || '').startsWith('text/event-stream')) {
      mine.abort()
      return unavailable('the server did not answer with an event stream')
    }
    if (!response.body) return unavailable('this browser cannot read a stream')
    failures = 0
    onState('open', { resumed })
    const parser = createSseParser({
      lastEventId: last,
      onRetry: (ms) => { retry = ms },
      onEvent: (event) => {
        last = event.id
        if (current()) onEvent(event)
      },
    })
    const reader = response.body.getReader()
    mine.signal.addEventListener('abort', () => reader.cancel().catch(() => {}))
    const decoder = new TextDecoder()
    watch()
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done || !current()) break
        watch()
        parser.push(decoder.decode(value, { stream: true }))
      }
    } catch { /* cut off, or aborted */ } finally {
      clearTimeout(idle)
    }
    last = parser.lastEventId
    if (!current()) return
    // It worked: reconnect after what the server asked (`retry:`), resuming where it ended.
    again(silent ? 'the stream went silent' : 'the stream ended', silent)
  }

  connect()
  return {
    /** Stop following (and never reconnect). */
    close () {
      closed = true
      clearTimeout(timer)
      controller?.abort()
    },
    /** Waiting to reconnect: do it now (the network or the server is back), counting the
     * failures from zero again. */
    reconnectNow () {
      if (closed || timer === null) return
      clearTimeout(timer)
      failures = 0
      connect()
    },
    get lastEventId () { return last },
  }
}
