import { expect, test } from 'vitest'
import { followEvents } from '../src/feed.js'

// A fake server: each call to fetch takes the next planned answer (a function of the request).
function fakeServer (answers) {
  const requests = []
  const fetch = async (url, init) => {
    requests.push({ url, headers: { ...init.headers } })
    const answer = answers.shift()
    if (!answer) return new Promise((resolve, reject) => init.signal.addEventListener('abort', () => reject(new Error('aborted'))))
    return answer(init)
  }
  return { fetch, requests }
}

function stream (text, { end = true } = {}) {
  return () => new Response(new ReadableStream({
    start (controller) {
      controller.enqueue(new TextEncoder().encode(text))
      if (end) controller.close()
    },
  }), { headers: { 'content-type': 'text/event-stream; charset=utf-8' } })
}
const problem = (status, detail) => () => new Response(JSON.stringify({ status, detail }), { status, headers: { 'content-type': 'application/problem+json' } })

function follow (server, extra = {}) {
  const events = []
  const states = []
  const follower = followEvents({
    url: '/api/events?workspace_id=w',
    token: () => 'cs_secret',
    retryMs: 5,
    fetch: server.fetch,
    onEvent: (e) => events.push(e),
    onState: (s, info) => states.push([s, info]),
    ...extra,
  })
  return { follower, events, states }
}
const until = async (cond) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  expect(cond()).toBe(true)
}

test('the token goes in the Authorization header, and a lost stream resumes with Last-Event-ID', async () => {
  const server = fakeServer([
    stream('retry: 5\n\nid: 1\nevent: created\ndata: {"note_id":"a"}\n\nid: 2\nevent: renamed\ndata: {}\n\n'),
    stream('id: 3\nevent: deleted\ndata: {}\n\n', { end: false }),
  ])
  const { follower, events, states } = follow(server)
  await until(() => events.length === 3)
  expect(events.map((e) => [e.type, e.id])).toEqual([['created', '1'], ['renamed', '2'], ['deleted', '3']])
  expect(server.requests[0].url).toBe('/api/events?workspace_id=w')
  expect(server.requests[0].headers).toEqual({ Accept: 'text/event-stream', Authorization: 'Bearer cs_secret' })
  expect(server.requests[1].headers['Last-Event-ID']).toBe('2')
  expect(states.filter(([s]) => s === 'open').map(([, info]) => info.resumed)).toEqual([false, true])
  expect(follower.lastEventId).toBe('3')
  follower.close()
})

test('unreachable: it retries, and reconnectNow() does not wait for the delay', async () => {
  const down = () => { throw new TypeError('Failed to fetch') }
  const server = fakeServer([down, down, stream('id: 9\ndata: x\n\n', { end: false })])
  const { follower, events, states } = follow(server, { retryMs: 60000 })
  await until(() => states.some(([s]) => s === 'retrying'))
  expect(states.find(([s]) => s === 'retrying')[1]).toMatchObject({ reason: 'the server cannot be reached', failures: 1 })
  follower.reconnectNow()
  await until(() => states.filter(([s]) => s === 'retrying').length === 2)
  expect(states.filter(([s]) => s === 'retrying')[1][1]).toMatchObject({ failures: 1, delay: expect.any(Number) })
  follower.reconnectNow()
  await until(() => events.length === 1)
  follower.close()
})

test('401 and 403 stop following: the caller finds out why', async () => {
  for (const status of [401, 403]) {
    const server = fakeServer([problem(status, 'no'), stream('data: never\n\n')])
    const { events, states } = follow(server)
    await until(() => states.some(([s]) => s === 'refused'))
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(server.requests.length).toBe(1)
    expect(events).toEqual([])
    expect(states.at(-1)).toEqual(['refused', { status }])
  }
})

test('an answer that is not a stream is "unavailable", with the problem\'s detail', async () => {
  const server = fakeServer([problem(404, 'not found')])
  const { follower, states } = follow(server)
  await until(() => states.some(([s]) => s === 'unavailable'))
  expect(states.at(-1)[1].reason).toBe('HTTP 404: not found')
  follower.close()
  const html = fakeServer([() => new Response('<html>', { headers: { 'content-type': 'text/html' } })])
  const other = follow(html)
  await until(() => other.states.some(([s]) => s === 'unavailable'))
  expect(other.states.at(-1)[1].reason).toBe('the server did not answer with an event stream')
  other.follower.close()
})

test('a silent stream (no keepalive) is taken as lost and reopened', async () => {
  const server = fakeServer([stream('id: 1\ndata: x\n\n', { end: false }), stream('id: 2\ndata: y\n\n', { end: false })])
  const { follower, events, states } = follow(server, { idleMs: 40 })
  await until(() => events.length === 2)
  expect(states.find(([s]) => s === 'retrying')[1].reason).toBe('the stream went silent')
  expect(server.requests[1].headers['Last-Event-ID']).toBe('1')
  follower.close()
})

test('close() stops it for good', async () => {
  const server = fakeServer([stream('data: x\n\n')])
  const { follower, states } = follow(server)
  follower.close()
  await new Promise((resolve) => setTimeout(resolve, 40))
  expect(server.requests.length).toBeLessThanOrEqual(1)
  expect(states.some(([s]) => s === 'retrying')).toBe(false)
})
