// A readable line diff, for showing a version against the current text. Pure.

// Past this many cells of the comparison table, the changed middle is shown as a whole
// block removed and a block added rather than matched line by line.
const MAX_CELLS = 4_000_000

/**
 * Lines of `before` and `after` as runs: [{ op: 'same' | 'del' | 'add', lines: [...] }].
 * 'del' lines are only in `before`, 'add' lines only in `after`.
 */
export function lineDiff (before, after) {
  const a = before.split('\n')
  const b = after.split('\n')
  let start = 0
  while (start < a.length && start < b.length && a[start] === b[start]) start++
  let end = 0
  while (end < a.length - start && end < b.length - start && a[a.length - 1 - end] === b[b.length - 1 - end]) end++
  const midA = a.slice(start, a.length - end)
  const midB = b.slice(start, b.length - end)
  const ops = []
  const push = (op, line) => {
    const last = ops[ops.length - 1]
    if (last && last.op === op) last.lines.push(line)
    else ops.push({ op, lines: [line] })
  }
  for (const line of a.slice(0, start)) push('same', line)
  if (midA.length * midB.length > MAX_CELLS) {
    for (const line of midA) push('del', line)
    for (const line of midB) push('add', line)
  } else {
    middle(midA, midB, push)
  }
  for (const line of a.slice(a.length - end)) push('same', line)
  return ops
}

// Longest common subsequence over lines, walked from the start.
function middle (a, b, push) {
  const n = a.length
  const m = b.length
  const width = m + 1
  const lcs = new Uint32Array((n + 1) * width)
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * width + j] = a[i] === b[j]
        ? lcs[(i + 1) * width + j + 1] + 1
        : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1])
    }
  }
  let i = 0
  let j = 0
  while (i < n && j < m) {
    if (a[i] === b[j]) { push('same', a[i]); i++; j++ } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) { push('del', a[i]); i++ } else { push('add', b[j]); j++ }
  }
  while (i < n) push('del', a[i++])
  while (j < m) push('add', b[j++])
}

/** "2 lines added, 1 removed", or "No difference". */
export function diffSummary (ops) {
  let added = 0
  let removed = 0
  for (const { op, lines } of ops) {
    if (op === 'add') added += lines.length
    if (op === 'del') removed += lines.length
  }
  if (!added && !removed) return 'No difference'
  const parts = []
  if (added) parts.push(`${added} ${added === 1 ? 'line' : 'lines'} added`)
  if (removed) parts.push(`${removed} ${removed === 1 ? 'line' : 'lines'} removed`)
  return parts.join(', ')
}
