// Plain words for what the server calls things. Pure.

/** A time as people read it: the hour today, the date otherwise. */
export function shortTime (iso, now = new Date()) {
  if (!iso) return ''
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return String(iso)
  return d.toDateString() === now.toDateString()
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString()
}

export function longTime (iso) {
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString()
}

/** What a version is, in words: labels the server writes, and its kinds. */
export function versionWhat (version) {
  const label = (version.label || '').trim()
  // Written by the server's restore: "before restoring version 3 [by NAME]", "restored version 3 [by NAME]".
  let m = /^before restoring version (\d+)( by .+)?$/.exec(label)
  if (m) return `The text just before version ${m[1]} was restored${m[2] || ''}`
  m = /^restored version (\d+)( by .+)?$/.exec(label)
  if (m) return `Version ${m[1]} restored${m[2] || ''}`
  if (label) return label
  return {
    manual: 'Saved',
    auto: 'Saved automatically while people were editing',
    compaction: 'Saved automatically',
    restore: 'Restored',
  }[version.kind] || 'Saved'
}

/** "Alice", "Alice and Bob", "Alice, Bob and Carol". */
export function names (list) {
  const unique = [...new Set(list.filter(Boolean))]
  if (unique.length <= 1) return unique[0] || ''
  return `${unique.slice(0, -1).join(', ')} and ${unique[unique.length - 1]}`
}
