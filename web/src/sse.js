// Server-Sent Events, read by hand: the page follows `GET /api/events` with fetch() so that the
// token rides in the Authorization header (an EventSource can send no header, and the token
// must never be in a URL). This module is the pure part: the parser of the text/event-stream
// format (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)
// and the reconnection delay. feed.js does the fetching.

/**
 * A parser fed with decoded text, in chunks cut anywhere (even between CR and LF).
 * `onEvent({ type, data, id })` for each message (type `message` when the stream names none;
 * `id` is the last event id as of that message), `onRetry(ms)` for a `retry:` field,
 * `onComment(text)` for a comment line (a keepalive). `lastEventId` carries over from an
 * earlier connection, as an EventSource does.
 */
export function createSseParser ({ onEvent = () => {}, onRetry = () => {}, onComment = () => {}, lastEventId = '' } = {}) {
  let buffer = ''
  let first = true // a byte order mark at the very start is dropped
  let skipLf = false // the last chunk ended with CR: a LF starting the next one ends nothing
  let data = ''
  let hasData = false
  let type = ''
  let id = lastEventId // the id buffer: set by `id:` lines
  let dispatchedId = lastEventId // its value as of the last message (blank line)

  function line (text) {
    if (text === '') return dispatch()
    if (text[0] === ':') return onComment(text.slice(1).replace(/^ /, ''))
    const colon = text.indexOf(':')
    const field = colon === -1 ? text : text.slice(0, colon)
    let value = colon === -1 ? '' : text.slice(colon + 1)
    if (value[0] === ' ') value = value.slice(1)
    if (field === 'event') type = value
    else if (field === 'data') {
      data += (hasData ? '\n' : '') + value
      hasData = true
    } else if (field === 'id') {
      if (!value.includes('\0')) id = value
    } else if (field === 'retry') {
      if (/^\d+$/.test(value)) onRetry(Number(value))
    }
    // Any other field is ignored.
  }

  function dispatch () {
    dispatchedId = id
    const event = { type: type || 'message', data, id }
    const had = hasData
    data = ''
    hasData = false
    type = ''
    if (had) onEvent(event)
  }

  return {
    /** Feed the next piece of text. */
    push (chunk) {
      if (first && chunk.length) {
        first = false
        if (chunk[0] === '\uFEFF') chunk = chunk.slice(1)
      }
      if (!chunk.length) return
      if (skipLf && chunk[0] === '\n') chunk = chunk.slice(1)
      skipLf = false
      buffer += chunk
      let start = 0
      for (;;) {
        const m = /\r\n|\r|\n/g
        m.lastIndex = start
        const found = m.exec(buffer)
        if (!found) break
        // A CR at the very end may be the first half of CRLF: the next chunk says.
        if (found[0] === '\r' && found.index === buffer.length - 1) skipLf = true
        line(buffer.slice(start, found.index))
        start = found.index + found[0].length
      }
      buffer = buffer.slice(start)
    },
    /** The last event id as of the last complete message (what to send as Last-Event-ID when
     * reconnecting: an id whose message was cut off is not one). */
    get lastEventId () { return dispatchedId },
  }
}

/**
 * How long to wait before reconnecting after `failures` failed attempts in a row (0: the
 * stream ended after working, so wait what the server asked): the server's `retry` doubled
 * with each failure, at most `maxMs`, give or take 20% so that pages do not all come back at
 * the same instant after a restart.
 */
export function reconnectDelay (failures, retryMs, maxMs = 30000, random = Math.random) {
  const base = Math.min(maxMs, retryMs * 2 ** Math.max(0, failures - 1))
  return Math.round(base * (0.8 + 0.4 * random()))
}
