import { describe, expect, test } from 'vitest'
import { names, shortTime, versionWhat } from '../src/words.js'

describe('plain words', () => {
  test('versions say what they are, never internal words', () => {
    expect(versionWhat({ kind: 'compaction', label: null })).toBe('Saved automatically')
    expect(versionWhat({ kind: 'auto', label: null })).toMatch(/^Saved automatically/)
    expect(versionWhat({ kind: 'restore', label: 'restored version 3' })).toBe('Version 3 restored')
    expect(versionWhat({ kind: 'restore', label: 'before restoring version 3' })).toBe('The text just before version 3 was restored')
    expect(versionWhat({ kind: 'restore', label: 'restored version 3 by agent-7' })).toBe('Version 3 restored by agent-7')
    expect(versionWhat({ kind: 'restore', label: 'before restoring version 12 by Ann' })).toBe('The text just before version 12 was restored by Ann')
    expect(versionWhat({ kind: 'manual', label: 'Saved by Alice' })).toBe('Saved by Alice')
    expect(versionWhat({ kind: 'manual', label: '' })).toBe('Saved')
  })
  test('names read as a list', () => {
    expect(names([])).toBe('')
    expect(names(['Alice'])).toBe('Alice')
    expect(names(['Alice', 'Bob'])).toBe('Alice and Bob')
    expect(names(['Alice', 'Bob', 'Carol', 'Bob'])).toBe('Alice, Bob and Carol')
  })
  test('times: the hour today, the date before', () => {
    const now = new Date('2026-03-04T12:00:00')
    expect(shortTime('2026-03-04T09:30:00', now)).toMatch(/09|9/)
    expect(shortTime('2025-01-02T09:30:00', now)).toContain('2025')
    expect(shortTime('not a time', now)).toBe('not a time')
    expect(shortTime(null, now)).toBe('')
  })
})
