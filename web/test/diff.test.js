import { describe, expect, test } from 'vitest'
import { diffSummary, lineDiff } from '../src/diff.js'

const rebuild = (ops, keep) => ops.filter((o) => o.op === 'same' || o.op === keep).flatMap((o) => o.lines).join('\n')

describe('line diff', () => {
  test('same text: one run, no difference', () => {
    const ops = lineDiff('a\nb', 'a\nb')
    expect(ops).toEqual([{ op: 'same', lines: ['a', 'b'] }])
    expect(diffSummary(ops)).toBe('No difference')
  })
  test('a changed line in the middle', () => {
    const ops = lineDiff('one\ntwo\nthree', 'one\n2\nthree')
    expect(ops).toEqual([
      { op: 'same', lines: ['one'] },
      { op: 'del', lines: ['two'] },
      { op: 'add', lines: ['2'] },
      { op: 'same', lines: ['three'] },
    ])
    expect(diffSummary(ops)).toBe('1 line added, 1 line removed')
  })
  test('both texts can be rebuilt from the runs', () => {
    const a = 'x\n# Title\nkeep\nold line\nmore\nend'
    const b = '# Title\nnew\nkeep\nmore\nadded 1\nadded 2\nend'
    const ops = lineDiff(a, b)
    expect(rebuild(ops, 'del')).toBe(a)
    expect(rebuild(ops, 'add')).toBe(b)
    expect(diffSummary(ops)).toBe('3 lines added, 2 lines removed')
  })
  test('whole texts that share nothing', () => {
    const ops = lineDiff('The quick brown fox jumps over the lazy dog.', 'Completely different text, typed later.')
    expect(ops.map((o) => o.op)).toEqual(['del', 'add'])
  })
  test('very long changed middles fall back to one block each way', () => {
    const a = Array.from({ length: 3000 }, (_, i) => `a${i}`).join('\n')
    const b = Array.from({ length: 3000 }, (_, i) => `b${i}`).join('\n')
    const ops = lineDiff(a, b)
    expect(ops.map((o) => [o.op, o.lines.length])).toEqual([['del', 3000], ['add', 3000]])
  })
})
