import { describe, expect, test } from 'vitest'
import { PALETTE, distinctColor, randomColor } from '../src/colors.js'

const hex = (c) => parseInt(c.slice(1), 16)
const rgb = (c) => [hex(c) >> 16, (hex(c) >> 8) & 255, hex(c) & 255]

describe('presence colours', () => {
  test('twelve colours, all different and far apart', () => {
    expect(new Set(PALETTE).size).toBe(12)
    for (const [i, a] of PALETTE.entries()) {
      for (const b of PALETTE.slice(i + 1)) {
        const [x, y] = [rgb(a), rgb(b)]
        const distance = Math.hypot(x[0] - y[0], x[1] - y[1], x[2] - y[2])
        expect(distance, `${a} vs ${b}`).toBeGreaterThan(60)
      }
    }
  })
  test('a random colour is one of the palette', () => {
    expect(PALETTE).toContain(randomColor(() => 0.99))
    expect(randomColor(() => 0)).toBe(PALETTE[0])
  })
  test('the lower client id keeps a shared colour; the other moves to a free one', () => {
    expect(distinctColor(5, PALETTE[0], [[9, PALETTE[0]]])).toBe(PALETTE[0])
    expect(distinctColor(9, PALETTE[0], [[5, PALETTE[0].toUpperCase()]])).toBe(PALETTE[1])
    expect(distinctColor(9, PALETTE[0], [[5, PALETTE[0]], [7, PALETTE[1]]])).toBe(PALETTE[2])
  })
  test('twelve people who all start with the same colour end with twelve colours', () => {
    const ids = [40, 3, 17, 8, 99, 23, 61, 5, 12, 77, 30, 2]
    const colors = new Map(ids.map((id) => [id, PALETTE[4]]))
    // Each one applies the rule to what it sees, in turns, until nobody changes.
    for (let round = 0; round < 20; round++) {
      let changed = false
      for (const id of ids) {
        const others = ids.filter((o) => o !== id).map((o) => [o, colors.get(o)])
        const next = distinctColor(id, colors.get(id), others)
        if (next !== colors.get(id)) { colors.set(id, next); changed = true }
      }
      if (!changed) break
    }
    expect(new Set(colors.values()).size).toBe(12)
  })
})
