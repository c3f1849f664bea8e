// Search hits (pure): the server's `snippet` and `highlights` ([start, length] in code points)
// as pieces of text to show, marked or not, and where the first match is in a note's text.
// The page builds DOM from these pieces (text nodes and <mark>), never from HTML.

/** `text` cut into `{ text, mark }` pieces; highlights out of range or overlapping are skipped. */
export function markedParts (text, highlights = []) {
  const points = Array.from(text ?? '')
  const parts = []
  let at = 0
  const sorted = [...(highlights || [])].filter((h) => Array.isArray(h) && Number.isInteger(h[0]) && Number.isInteger(h[1]))
    .sort((x, y) => x[0] - y[0])
  for (const [start, length] of sorted) {
    if (start < at || length <= 0 || start + length > points.length) continue
    if (start > at) parts.push({ text: points.slice(at, start).join(''), mark: false })
    parts.push({ text: points.slice(start, start + length).join(''), mark: true })
    at = start + length
  }
  if (at < points.length || !parts.length) parts.push({ text: points.slice(at).join(''), mark: false })
  return parts.filter((p) => p.text !== '' || parts.length === 1)
}

/** The UTF-16 index of code point `index` of `text` (null past its end). */
export function unitIndex (text, index) {
  let units = 0
  let points = 0
  for (const ch of text) {
    if (points === index) return units
    units += ch.length
    points++
  }
  return points === index ? units : null
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/**
 * Where a hit's first match is in `body` (the note's text now), as `{ from, to }` in UTF-16
 * units (what the editor counts), or null. The snippet is a slice of the body as it was
 * indexed: found as it is, the match is exactly where the snippet says; otherwise (the text
 * changed since) the first occurrence of the matched word, ignoring case.
 */
export function matchRange (body, snippet, highlights) {
  if (!body || !snippet || !highlights?.length) return null
  const [start, length] = highlights[0]
  const from = unitIndex(snippet, start)
  const to = unitIndex(snippet, start + length)
  if (from === null || to === null || to <= from) return null
  const at = body.indexOf(snippet)
  if (at !== -1) return { from: at + from, to: at + to }
  const found = new RegExp(escapeRegExp(snippet.slice(from, to)), 'iu').exec(body)
  return found ? { from: found.index, to: found.index + found[0].length } : null
}
