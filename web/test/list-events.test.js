import { expect, test } from 'vitest'
import { applyEvent } from '../src/list-events.js'

const notes = [
  { id: 'b', title: 'B', updated_at: '2026-01-02T00:00:00Z' },
  { id: 'a', title: 'A', updated_at: '2026-01-01T00:00:00Z' },
]
const at = '2026-01-03T00:00:00+00:00'
const ev = (type, id, more = {}) => ({ type, note_id: id, workspace_id: 'w', at, ...more })

test('a new note goes first, once', () => {
  const next = applyEvent(notes, ev('created', 'c', { title: 'C' }))
  expect(next.map((n) => [n.id, n.title, n.updated_at])).toEqual([['c', 'C', at], ['b', 'B', notes[0].updated_at], ['a', 'A', notes[1].updated_at]])
  expect(applyEvent(next, ev('created', 'c', { title: 'C' }))).toBe(next)
})

test('a rename changes the title and moves the note first; a change moves it first', () => {
  expect(applyEvent(notes, ev('renamed', 'a', { title: 'New A', previous_title: 'A' })).map((n) => [n.id, n.title, n.updated_at]))
    .toEqual([['a', 'New A', at], ['b', 'B', notes[0].updated_at]])
  expect(applyEvent(notes, ev('changed', 'a', { version: 3 })).map((n) => [n.id, n.title])).toEqual([['a', 'A'], ['b', 'B']])
})

test('a deleted note leaves the list; an unknown one changes nothing', () => {
  expect(applyEvent(notes, ev('deleted', 'b')).map((n) => n.id)).toEqual(['a'])
  expect(applyEvent(notes, ev('deleted', 'zz'))).toBe(notes)
})

test('what the event cannot place means reading the list again (null)', () => {
  expect(applyEvent(notes, ev('restored', 'z', { title: 'Z' }))).toBeNull()
  expect(applyEvent(notes, ev('renamed', 'z', { title: 'Z' }))).toBeNull()
  expect(applyEvent(notes, ev('changed', 'z'))).toBeNull()
})

test('in the trash: an undeleted note leaves, a deleted one means reading it again', () => {
  expect(applyEvent(notes, ev('restored', 'a'), { trash: true }).map((n) => n.id)).toEqual(['b'])
  expect(applyEvent(notes, ev('deleted', 'c'), { trash: true })).toBeNull()
  expect(applyEvent(notes, ev('renamed', 'a', { title: 'x' }), { trash: true })).toBe(notes)
  expect(applyEvent(notes, ev('created', 'c'), { trash: true })).toBe(notes)
})
