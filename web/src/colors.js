// Presence colours: twelve that people tell apart on a white page, and the rule that keeps
// the colours of the people in one note distinct. Pure.

export const PALETTE = [
  '#e6194b', // red
  '#3cb44b', // green
  '#4363d8', // blue
  '#f58231', // orange
  '#911eb4', // purple
  '#0f9fb8', // cyan
  '#f032e6', // magenta
  '#808000', // olive
  '#6d3b1f', // brown
  '#000075', // navy
  '#800000', // maroon
  '#707070', // grey
]

const same = (a, b) => String(a).toLowerCase() === String(b).toLowerCase()

/** A colour of the palette for someone new, chosen at random. */
export function randomColor (random = Math.random) {
  return PALETTE[Math.floor(random() * PALETTE.length)]
}

/**
 * The colour this client should show. The client with the lower id keeps a colour both have;
 * the other takes the first palette colour nobody else shows (its own, while all are taken).
 * `others` are [clientId, colour] of everyone else in the note.
 */
export function distinctColor (myId, myColor, others) {
  if (!others.some(([id, color]) => id < myId && same(color, myColor))) return myColor
  const taken = others.map(([, color]) => color)
  return PALETTE.find((color) => !taken.some((t) => same(t, color))) || myColor
}
