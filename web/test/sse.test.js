import { expect, test } from 'vitest'
import { createSseParser, reconnectDelay } from '../src/sse.js'

function parse (chunks, options = {}) {
  const events = []
  const retries = []
  const comments = []
  const parser = createSseParser({ ...options, onEvent: (e) => events.push(e), onRetry: (ms) => retries.push(ms), onComment: (c) => comments.push(c) })
  for (const chunk of chunks) parser.push(chunk)
  return { events, retries, comments, parser }
}

test('messages with id, event and data, as the change feed sends them', () => {
  const { events, retries, parser } = parse(['retry: 2000\n\nid: 1\nevent: created\ndata: {"id":1,"title":"A"}\n\n', 'id: 2\nevent: renamed\ndata: {"id":2}\n\n'])
  expect(retries).toEqual([2000])
  expect(events).toEqual([
    { type: 'created', data: '{"id":1,"title":"A"}', id: '1' },
    { type: 'renamed', data: '{"id":2}', id: '2' },
  ])
  expect(parser.lastEventId).toBe('2')
})

test('chunks cut anywhere, also between CR and LF, give the same messages', () => {
  const text = 'id: 7\r\nevent: deleted\r\ndata: {"x":"é"}\r\n\r\n: keepalive\r\n\r\nid: 8\revent: restored\rdata: 1\r\r'
  const whole = parse([text]).events
  expect(whole).toEqual([{ type: 'deleted', data: '{"x":"é"}', id: '7' }, { type: 'restored', data: '1', id: '8' }])
  for (let cut = 1; cut < text.length; cut++) {
    expect(parse([text.slice(0, cut), text.slice(cut)]).events).toEqual(whole)
  }
  expect(parse([...text]).events).toEqual(whole) // one character at a time
})

test('comments are keepalives, not messages', () => {
  const { events, comments } = parse([': keepalive\n\n:no space\n\n'])
  expect(events).toEqual([])
  expect(comments).toEqual(['keepalive', 'no space'])
})

test('the format details: multi-line data, default type, unknown fields, bad retry, BOM', () => {
  const { events, retries } = parse(['\uFEFFdata: a\ndata:b\ndata\nfoo: bar\nretry: 1s\n\n'])
  expect(events).toEqual([{ type: 'message', data: 'a\nb\n', id: '' }])
  expect(retries).toEqual([])
})

test('a blank line without data sends nothing but ends the message (its id counts)', () => {
  const { events, parser } = parse(['id: 5\nevent: ignored\n\ndata: x\n\n'])
  expect(events).toEqual([{ type: 'message', data: 'x', id: '5' }])
  expect(parser.lastEventId).toBe('5')
})

test('an id whose message was cut off is not the last event id; the last one carries over', () => {
  const { events, parser } = parse(['id: 3\ndata: x\n\nid: 4\ndata: cut'], { lastEventId: '2' })
  expect(events).toEqual([{ type: 'message', data: 'x', id: '3' }])
  expect(parser.lastEventId).toBe('3')
  expect(parse([''], { lastEventId: '2' }).parser.lastEventId).toBe('2')
  expect(parse(['data: y\n\n'], { lastEventId: '9' }).events[0].id).toBe('9')
})

test('an id holding NUL is ignored', () => {
  expect(parse(['id: 1\0\ndata: x\n\n']).events[0].id).toBe('')
})

test('reconnecting: the server\'s delay, doubled per failure, capped, with jitter', () => {
  const mid = () => 0.5
  expect(reconnectDelay(0, 2000, 30000, mid)).toBe(2000)
  expect(reconnectDelay(1, 2000, 30000, mid)).toBe(2000)
  expect(reconnectDelay(2, 2000, 30000, mid)).toBe(4000)
  expect(reconnectDelay(3, 2000, 30000, mid)).toBe(8000)
  expect(reconnectDelay(10, 2000, 30000, mid)).toBe(30000)
  expect(reconnectDelay(1, 2000, 30000, () => 0)).toBe(1600)
  expect(reconnectDelay(1, 2000, 30000, () => 0.999999)).toBe(2400)
})
