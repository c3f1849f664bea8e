import { expect, test } from 'vitest'
import { markedParts, matchRange, unitIndex } from '../src/highlight.js'

test('highlights cut the snippet into marked and plain pieces', () => {
  expect(markedParts('some café words', [[5, 4]])).toEqual([
    { text: 'some ', mark: false }, { text: 'café', mark: true }, { text: ' words', mark: false },
  ])
  expect(markedParts('a b', [[2, 1], [0, 1]])).toEqual([{ text: 'a', mark: true }, { text: ' ', mark: false }, { text: 'b', mark: true }])
  expect(markedParts('plain', [])).toEqual([{ text: 'plain', mark: false }])
  expect(markedParts('', [])).toEqual([{ text: '', mark: false }])
})

test('offsets are code points: a character outside the BMP counts once', () => {
  // '🦓' is two UTF-16 units, one code point.
  expect(markedParts('🦓 zebra 東京タワー', [[2, 5], [8, 2]])).toEqual([
    { text: '🦓 ', mark: false }, { text: 'zebra', mark: true }, { text: ' ', mark: false }, { text: '東京', mark: true }, { text: 'タワー', mark: false },
  ])
})

test('highlights out of range, overlapping or malformed are skipped, never thrown on', () => {
  expect(markedParts('abc', [[1, 5], [0, 2], [1, 1], [-1, 1], ['x', 1], null, [2, 0]])).toEqual([
    { text: 'ab', mark: true }, { text: 'c', mark: false },
  ])
  expect(markedParts('abc', undefined)).toEqual([{ text: 'abc', mark: false }])
})

test('the markup in a snippet stays text', () => {
  const parts = markedParts('<img src=x onerror=alert(1)> periscope', [[29, 9]])
  expect(parts.map((p) => p.text).join('')).toBe('<img src=x onerror=alert(1)> periscope')
  expect(parts.at(-1)).toEqual({ text: 'periscope', mark: true })
})

test('code points to UTF-16 units', () => {
  expect(unitIndex('a🦓b', 0)).toBe(0)
  expect(unitIndex('a🦓b', 2)).toBe(3)
  expect(unitIndex('a🦓b', 3)).toBe(4)
  expect(unitIndex('a🦓b', 4)).toBeNull()
})

test('the match in the note: where the snippet is, in editor (UTF-16) offsets', () => {
  const body = 'Intro 🦓.\nRemember the periscope, and the periscope again.'
  const snippet = 'the periscope, and the periscope again.'
  const range = matchRange(body, snippet, [[4, 9], [23, 9]])
  expect(body.slice(range.from, range.to)).toBe('periscope')
  expect(range.from).toBe(body.indexOf('periscope'))
  // The snippet's own first match, not just the first occurrence of the word in the note.
  const later = matchRange('periscope first. Later: the periscope.', 'Later: the periscope.', [[11, 9]])
  expect(later).toEqual({ from: 28, to: 37 })
})

test('the text changed since the search: the first occurrence of the word, any case; else null', () => {
  expect(matchRange('Now the PERISCOPE moved.', 'the periscope stays', [[4, 9]])).toEqual({ from: 8, to: 17 })
  expect(matchRange('Nothing left (a+b).', 'the periscope stays', [[4, 9]])).toBeNull()
  expect(matchRange('x (a+b) y', 'z (a+b) w', [[3, 3]])).toEqual({ from: 3, to: 6 }) // regex characters are literal
  expect(matchRange('a title-only hit', 'a title-only hit', [])).toBeNull()
  expect(matchRange('', 'x', [[0, 1]])).toBeNull()
})
